"""Poll benchmark: the real pipeline against a local feed server, next to a naive baseline.

Run from the repository root:

    python bench/poll.py                 # 2,000 feeds, 3 repeats (about half an hour on 2 cores)
    python bench/poll.py --quick         # 200 feeds, 1 repeat (CI)
    python bench/poll.py --feeds 500 --repeats 5 --json out.json

What it does: starts ``bench.server`` (aiohttp, 127.0.0.1, its own process, so
its CPU is not counted) serving N generated feeds of 20–100 items with ETags.
Then, each in a fresh process and each repeated: (a) a cold cycle (empty
store, every feed a 200) and (b) a warm cycle (validators stored; ``--bump``
of the feeds got a new item, so mostly 304s) through ``monitor.pipeline.run_feed``
with the real store and classifier, once with parsing in a thread and once in
``monitor.parse_pool`` (if present); plus an all-304 cycle; and the naive
baseline (sequential ``httpx.get`` + ``feedparser.parse``, conditional on its
warm cycle) on a sample of the feeds, extrapolated to N. Then a fetch-only
micro benchmark per HTTP client stack and a profiled cold cycle. Figures are
medians over repeats; CPU is process CPU (all threads and child processes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import cpu_count  # noqa: E402
from bench.micro import KINDS  # noqa: E402

MICRO_LABELS = {
    "httpx": "httpx AsyncClient, default transport",
    "httpx+aiohttp": "httpx AsyncClient + httpx-aiohttp",
    "fetch_feed": "monitor fetch_feed (build_client)",
    "fetch_feed[httpx]": "monitor fetch_feed, httpx transport",
    "aiohttp": "raw aiohttp ClientSession",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def feed_server(feeds: int, items_min: int, items_max: int) -> Iterator[str]:
    """The benchmark server in its own process; yields its base URL, stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.server", "--feeds", str(feeds),
         "--items-min", str(items_min), "--items-max", str(items_max)],
        cwd=ROOT, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"the benchmark server did not start (said {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server exits when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_json(args: list[str], timeout: float = 7200) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(args)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _summarise(runs: list[dict[str, Any]], cycle: str, feeds: int, per_feed_of: int
               ) -> dict[str, Any]:
    """Medians over repeats of one cycle; ``per_feed_of`` is how many feeds were timed."""
    phases = [r[cycle] for r in runs]
    wall = _median([p["wall_s"] for p in phases]) or 0.0
    return {
        "feeds_per_s": per_feed_of / wall if wall else 0.0,
        "wall_s": wall * feeds / per_feed_of,
        "cpu_ms_per_feed": 1000 * (_median([p["cpu_s"] for p in phases]) or 0.0) / per_feed_of,
        "peak_rss_mb": _median([p["peak_rss_mb"] for p in phases]),
        "loop_lag_ms": _median([p["loop_lag_ms"] for p in phases]),
        "lifetime_rss": any(p.get("rss_is_lifetime_peak") for p in phases),
    }


DEFAULT_MODE = "workers"


def _modes(classify_workers: int) -> dict[str, list[str]]:
    """How the pipeline runs: all in the daemon's process (parse and classify in threads),
    or as the daemon does by default (parser and classifier worker processes), and the
    latter without the stories stage, to show what the stage costs."""
    return {"threads": ["--parse", "thread", "--classify-workers", "0"],
            DEFAULT_MODE: ["--parse", "pool", "--classify-workers", str(classify_workers)],
            "workers-no-stories": ["--parse", "pool", "--classify-workers",
                                   str(classify_workers), "--no-stories"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.feeds
    bump = max(1, round(n * args.bump))
    sample = min(args.baseline_sample, n)
    results: dict[str, Any] = {"feeds": n, "repeats": args.repeats, "bump": bump,
                               "baseline_sample": sample, "pipeline": {}, "baseline": []}
    started = time.monotonic()
    with feed_server(n, args.items_min, args.items_max) as base:
        common = ["--base", base, "--feeds", str(n)]
        for repeat in range(args.repeats):
            for mode, mode_args in _modes(args.classify_workers).items():
                _say(f"repeat {repeat + 1}/{args.repeats}: pipeline, {mode}")
                run_ = _run_json(["bench.workers", "pipeline", *common, *mode_args,
                                  "--concurrency", str(args.concurrency), "--bump", str(bump),
                                  "--seed", str(100 + repeat)])
                results["pipeline"].setdefault(mode, []).append(run_)
            _say(f"repeat {repeat + 1}/{args.repeats}: naive baseline on {sample} feeds")
            results["baseline"].append(_run_json(
                ["bench.workers", "baseline", *common, "--sample", str(sample),
                 "--bump", str(bump), "--seed", str(200 + repeat)]))
        if not args.no_micro:
            results["micro"] = {}
            for kind in KINDS:
                _say(f"fetch micro benchmark: {kind}")
                results["micro"][kind] = _run_json(
                    ["bench.micro", "--kind", kind, "--url", f"{base}/tiny.xml",
                     "--levels", "50,100,200", "--requests", str(args.micro_requests)])["levels"]
        if not args.no_profile:
            results["profile"] = {}
            # A 304 costs far less than a parse: profile more of them (after a cold cycle).
            for cycle, feeds in (("cold", args.profile_feeds),
                                 ("all304", 5 * args.profile_feeds)):
                _say(f"profiling a{'n' if cycle == 'all304' else ''} {cycle} cycle of "
                     f"{min(feeds, n)} feeds")
                results["profile"][cycle] = _run_json(
                    ["bench.workers", "profile", "--cycle", cycle, "--base", base,
                     "--feeds", str(min(feeds, n)), "--concurrency", str(args.concurrency)])
        if args.soak:
            _say(f"soak: {args.soak} warm cycles of {n} feeds in one process")
            try:  # the last step: its failure must not throw away the half hour before it
                results["soak"] = _run_json(
                    ["bench.soak", "--base", base, "--feeds", str(n), "--cycles",
                     str(args.soak), "--concurrency", str(args.concurrency),
                     "--bump", str(bump)])
            except SystemExit as exc:
                results["soak_error"] = str(exc)
    results["elapsed_s"] = time.monotonic() - started
    return results


def run_warm_only(args: argparse.Namespace) -> dict[str, Any]:
    """One cold cycle, then ``repeats`` rounds of (bump, warm, all-304) in one process.

    The full benchmark pays a multi-minute cold cycle per repeat; the warm path (the
    one issue 3's < 2 s target is about) needs only one to fill the store.
    """
    n = args.feeds
    bump = max(1, round(n * args.bump))
    started = time.monotonic()
    with feed_server(n, args.items_min, args.items_max) as base:
        _say(f"warm-only: one cold cycle of {n} feeds, then {args.repeats} x (bump {bump}, "
             f"warm, all-304), parse in {args.parse}")
        result = _run_json(["bench.workers", "warm", "--base", base, "--feeds", str(n),
                            "--parse", args.parse, "--concurrency", str(args.concurrency),
                            "--classify-workers", str(args.classify_workers),
                            "--bump", str(bump), "--repeats", str(args.repeats),
                            "--seed", "100"])
    result.update(feeds=n, bump=bump, elapsed_s=time.monotonic() - started)
    return result


def report_warm_only(result: dict[str, Any]) -> str:
    n = result["feeds"]
    lines = [f"warm-only poll benchmark: {n} feeds, {cpu_count()} CPUs, Python "
             f"{platform.python_version()}, parse in {result['parse']}, classifier: "
             f"{result['classifier']}",
             f"cold (once, fills the store): {result['cold']['wall_s']:.1f} s, loop lag "
             f"{_fmt(result['cold']['loop_lag_ms'], '.0f')} ms; statuses "
             f"{result['cold_summary']['statuses']}",
             f"{'cycle':<8} {'median wall s':>14} {'feeds/s':>8} {'CPU ms/feed':>12} "
             f"{'loop lag ms':>12}  per round (wall s)"]
    for cycle in ("warm", "all304"):
        phases = [r["phase"] for r in result[cycle]]
        wall = _median([p["wall_s"] for p in phases]) or 0.0
        cpu = _median([p["cpu_s"] for p in phases]) or 0.0
        lag = _median([p["loop_lag_ms"] for p in phases])
        lines.append(f"{cycle:<8} {wall:>14.2f} {n / wall if wall else 0:>8.0f} "
                     f"{1000 * cpu / n:>12.2f} {_fmt(lag, '.0f'):>12}  "
                     + " ".join(f"{p['wall_s']:.2f}" for p in phases))
        lines.append(f"         statuses (last round): {result[cycle][-1]['summary']['statuses']}"
                     + (f", errors e.g. {result[cycle][-1]['summary']['errors']}"
                        if result[cycle][-1]["summary"]["errors"] else ""))
    warm = _median([r["phase"]["wall_s"] for r in result["warm"]]) or float("nan")
    lines.append(f"target (issue 3): warm {n} feeds < 2 s: {warm:.2f} s "
                 f"{'OK' if warm < 2 else 'MISS'}")
    return "\n".join(lines)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def report(results: dict[str, Any]) -> str:
    n, sample = results["feeds"], results["baseline_sample"]
    pipeline: dict[str, list[dict[str, Any]]] = results["pipeline"]
    first = next(iter(pipeline.values()))[0]
    lines = [
        f"poll benchmark: {n} feeds of 20-100 items on 127.0.0.1, {cpu_count()} CPUs, "
        f"Python {platform.python_version()}; medians of {results['repeats']} repeat(s)",
        f"pipeline: monitor.pipeline.run_feed per feed, concurrently under a semaphore, "
        f"SQLite store in a temp dir, classifier: {first['classifier']}",
        f"baseline: sequential httpx.get + feedparser.parse, timed on {sample} sampled feeds"
        + (f" and extrapolated to {n}" if sample < n else "")
        + "; its warm cycle sends If-None-Match",
        f"warm cycle: {results['bump']} feeds changed since the cold one, plus the 1 % "
        "random unconditional polls; all-304: nothing changed, no unconditional polls",
        "",
    ]
    header = (f"{'cycle':<9} {'system':<26} {'feeds/s':>8} {'wall s':>8} {'CPU ms/feed':>12} "
              f"{'peak RSS MB':>12} {'loop lag ms':>12} {'speed x':>8} {'CPU x':>7}")
    lines += [header, "-" * len(header)]
    base_rows = {cycle: _summarise(results["baseline"], cycle, n, sample)
                 for cycle in ("cold", "warm")}
    summary_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for cycle in ("cold", "warm", "all304"):
        rows = []
        for mode, runs in pipeline.items():
            row = _summarise(runs, cycle, n, n)
            summary_rows[(cycle, mode)] = row
            rows.append((f"pipeline, {mode}", row))
        if cycle in base_rows:
            rows.append(("naive baseline", base_rows[cycle]))
        base = base_rows.get(cycle) or base_rows["warm"]
        for i, (name, row) in enumerate(rows):
            speed = row["feeds_per_s"] / base["feeds_per_s"] if base["feeds_per_s"] else 0
            cpu = base["cpu_ms_per_feed"] / row["cpu_ms_per_feed"] if row["cpu_ms_per_feed"] else 0
            rss = _fmt(row["peak_rss_mb"], ".0f") + ("*" if row["lifetime_rss"] else "")
            lines.append(
                f"{(cycle if i == 0 else ''):<9} {name:<26} {row['feeds_per_s']:>8.1f} "
                f"{row['wall_s']:>8.2f} {row['cpu_ms_per_feed']:>12.2f} {rss:>12} "
                f"{_fmt(row['loop_lag_ms']):>12} {speed:>7.2f}x {cpu:>6.2f}x"
            )
    lines.append("speed x = feeds/s over the baseline's; CPU x = baseline CPU per feed over ours "
                 "(all-304 rows compare with the baseline's warm cycle)")
    if any(r["lifetime_rss"] for r in summary_rows.values()):
        lines.append("* lifetime peak of the process (per-phase reset not permitted here)")
    lines += _status_lines(pipeline)
    micro = results.get("micro")
    if micro:
        lines += ["", "fetch only, CPU ms per request (requests/s), 1 KB feed, pool = concurrency",
                  f"{'client':<38} {'c=50':>16} {'c=100':>16} {'c=200':>16}"]
        for kind, levels in micro.items():
            cells = [f"{levels[c]['cpu_ms']:.3f} ({levels[c]['rps']:.0f})" for c in
                     ("50", "100", "200")]
            lines.append(f"{MICRO_LABELS.get(kind, kind):<38} "
                         + " ".join(f"{c:>16}" for c in cells))
    for cycle, profile in (results.get("profile") or {}).items():
        p = profile["profile"]
        total = p["total_cpu_s"] or 1.0
        parts = sorted(p["stages_s"].items(), key=lambda kv: -kv[1])
        count = sum(profile["summary"]["statuses"].values())
        article = "an" if cycle == "all304" else "a"
        lines += ["", f"where the CPU goes in {article} {cycle} cycle of {count} feeds "
                      f"({1000 * total / count:.1f} ms/feed under cProfile on a per-thread CPU "
                      f"clock, {p['threads']} threads, parse in {profile['parse']}):",
                  "  " + ", ".join(f"{name} {100 * s / total:.0f}%" for name, s in parts)]
    soak = results.get("soak")
    if soak:
        rss, walls = soak["rss_mb"], soak["wall_s"]
        lines += ["", f"memory across {len(rss) - 1} warm cycles after a cold one (VmRSS of the "
                      f"process and its workers after each cycle, MB): after cold {rss[0]:.0f}, "
                      f"after warm 1 {rss[1]:.0f}, "
                      f"after warm {min(10, len(rss) - 1)} {rss[min(10, len(rss) - 1)]:.0f}, "
                      f"last {rss[-1]:.0f}, max {max(rss):.0f}; "
                      f"warm cycle wall median {statistics.median(walls[1:]):.2f} s"]
    if results.get("soak_error"):
        lines += ["", f"soak: {results['soak_error']} (see the error above)"]
    lines += ["", _targets(summary_rows, base_rows, micro, n)]
    return "\n".join(lines)


def _status_lines(pipeline: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = []
    for mode, runs in pipeline.items():
        last = runs[-1]
        for cycle in ("cold", "warm", "all304"):
            summary = last.get(f"{cycle}_summary") or {}
            out.append(f"  {mode} {cycle}: statuses {summary.get('statuses')}, "
                       f"{summary.get('new_items')} new items, {summary.get('alerts')} alerts"
                       + (f", errors e.g. {summary['errors']}" if summary.get("errors") else ""))
    return out


def _targets(rows: dict[tuple[str, str], dict[str, Any]], base: dict[str, dict[str, Any]],
             micro: dict[str, Any] | None, n: int) -> str:
    def best(cycle: str, key: str, low: bool) -> float:
        """The daemon's default layout; the other only where it was the one measured."""
        mine = [r[key] for (c, m), r in rows.items()
                if c == cycle and m == DEFAULT_MODE and r[key] is not None]
        values = mine or [r[key] for (c, _m), r in rows.items()
                          if c == cycle and r[key] is not None]
        return (min if low else max)(values) if values else float("nan")

    parts = []
    if micro and "fetch_feed" in micro:
        ms = micro["fetch_feed"]["100"]["cpu_ms"]
        parts.append(f"fetch CPU/request @100 <= 0.5 ms: {ms:.2f} {'OK' if ms <= 0.5 else 'MISS'}")
    warm = best("warm", "wall_s", True)
    parts.append(f"warm {n} feeds < 2 s: {warm:.1f} s {'OK' if warm < 2 else 'MISS'}")
    speedup = best("cold", "feeds_per_s", False) / (base["cold"]["feeds_per_s"] or 1)
    parts.append(f"cold >= 10x baseline: {speedup:.1f}x {'OK' if speedup >= 10 else 'MISS'}")
    lag = best("cold", "loop_lag_ms", True)
    parts.append(f"loop lag (cold) < 100 ms: {lag:.0f} ms {'OK' if lag < 100 else 'MISS'}")
    return f"targets (issue 3, pipeline {DEFAULT_MODE}): " + " | ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Poll benchmark (see the module docstring in bench/poll.py).")
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items-min", type=int, default=20)
    parser.add_argument("--items-max", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100,
                        help="feeds in flight at once (the app's max_concurrent_feeds)")
    parser.add_argument("--bump", type=float, default=0.01,
                        help="share of feeds that change between the cold and warm cycle")
    parser.add_argument("--baseline-sample", type=int, default=200)
    parser.add_argument("--micro-requests", type=int, default=1000)
    parser.add_argument("--profile-feeds", type=int, default=60)
    parser.add_argument("--soak", type=int, default=0, metavar="CYCLES",
                        help="also run CYCLES warm cycles in one process and report memory")
    parser.add_argument("--no-micro", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="CI size: 200 feeds, 1 repeat, smaller samples")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the warm and all-304 cycles: one cold cycle to fill the "
                             "store, then --repeats rounds of (bump, warm, all-304) in one "
                             "process; no baseline, micro benchmark or profile")
    parser.add_argument("--parse", choices=("thread", "pool"), default="pool",
                        help="--warm-only: where feeds are parsed (default: the process pool)")
    parser.add_argument("--classify-workers", type=int, default=1,
                        help="classifier worker processes in the 'workers' layout (the "
                             "daemon's classifier.workers; default 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.repeats = 200, 1
        args.baseline_sample = min(args.baseline_sample, 50)
        args.micro_requests = min(args.micro_requests, 200)
        args.profile_feeds = min(args.profile_feeds, 20)
    if args.warm_only:
        result = run_warm_only(args)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        print(report_warm_only(result))
        _say(f"done in {result['elapsed_s']:.0f} s")
        return
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results))
    _say(f"done in {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
