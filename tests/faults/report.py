"""Print the fault suite's results as the README's reliability table (Markdown).

    python -m tests.faults.report            # tests/faults/results/results.json
    python -m tests.faults.report FILE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.faults.harness import RESULTS

ORDER = (
    "read-only database",
    "full filesystem",
    "write lock > busy timeout",
    "SIGTERM mid-drain, backlog > look-up window",
    "SIGINT mid-drain, backlog > look-up window",
    "Slack refused, 500, recovered",
    "redirects to internal addresses",
)


def table(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "| scenario | expected | delivered | duplicates | lost | longest gap (s) "
        "| fault log lines | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    names = [n for n in ORDER if n in results] + sorted(set(results) - set(ORDER))
    for name in names:
        row = results[name]
        gap = row.get("longest_gap")
        gap_text = "–" if gap is None else f"{float(gap):.1f}"  # type: ignore[arg-type]
        verdict = "pass" if row.get("passed") else "FAIL"
        lines.append(
            f"| {name} | {row.get('expected')} | {row.get('delivered')} | "
            f"{row.get('duplicates')} | {row.get('lost')} | {gap_text} | "
            f"{row.get('fault_log_lines')} | {verdict} ({row.get('form')}, "
            f"{row.get('seconds')} s) |"
        )
    failures = [(n, results[n].get("problems") or []) for n in names
                if not results[n].get("passed")]
    if failures:
        lines.append("")
        for name, problems in failures:
            for problem in problems:  # type: ignore[union-attr]
                lines.append(f"- {name}: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS
    if not path.exists():
        print(f"no results at {path}; run: python -m pytest -q -m slow tests/faults",
              file=sys.stderr)
        return 1
    print(table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
