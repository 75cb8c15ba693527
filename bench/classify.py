"""Classifier throughput and latency against the keyword-rule baseline.

Run from the repository root: ``python bench/classify.py [--model PATH] [--repeats 3]``.

Builds 10,000 news-sized items by recombining headlines and descriptions from the
training data (a third headline-only, like real feeds), then in one process:
- batch path: ``Model.score`` on all items at once (what a poll of many feeds does);
- per-item path: ``Model.score([item])`` one at a time, as the daemon calls it for a
  trickle of new stories: median and p99 latency;
- the same two measurements for the keyword rule (DPRK alias AND Russia alias),
  the cheapest thing that could possibly work, and the ratios between the two.
Every figure is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sklearn

import classifiers
from classifiers.data import load_examples
from classifiers.keywords import KeywordLexicon


def make_items(n: int, seed: int = 7) -> list[str]:
    """``n`` plausible feed items: a headline, plus another item's description 2 times in 3."""
    examples = load_examples()
    summaries = [e.summary for e in examples if e.summary]
    rng = random.Random(seed)
    items = []
    for i in range(n):
        title = rng.choice(examples).title
        items.append(title if i % 3 == 0 else f"{title}. {rng.choice(summaries)}")
    return items


def batch_rate(fn: Callable[[Sequence[str]], object], items: Sequence[str], repeats: int) -> float:
    """Median items per second for one call over all items."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(items)
        rates.append(len(items) / (time.perf_counter() - started))
    return statistics.median(rates)


def latencies(fn: Callable[[Sequence[str]], object], items: Sequence[str],
              repeats: int) -> tuple[float, float]:
    """Median over repeats of (median, p99) single-item latency in milliseconds."""
    medians, p99s = [], []
    for _ in range(repeats):
        times = []
        for item in items:
            started = time.perf_counter()
            fn([item])
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        medians.append(statistics.median(times))
        p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))])
    return statistics.median(medians), statistics.median(p99s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: packaged)")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=2_000,
                        help="items timed one at a time per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    model = classifiers.load(args.model)
    lexicon = KeywordLexicon.from_toml()
    items = make_items(args.items)
    single = items[: args.single]

    def rule(texts: Sequence[str]) -> list[bool]:
        return [lexicon.find(t).both for t in texts]

    model.score(items[:50])  # warm caches (regex, term lookups) outside the timings
    rule(items[:50])
    matches = sum(s.match for s in model.score(items))

    model_rate = batch_rate(model.score, items, args.repeats)
    rule_rate = batch_rate(rule, items, args.repeats)
    model_med, model_p99 = latencies(model.score, single, args.repeats)
    rule_med, rule_p99 = latencies(rule, single, args.repeats)

    print(f"classifier benchmark: model {model.version} ({model.metadata.get('kind')}), "
          f"python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
          f"{os.cpu_count()} CPUs, one process")
    print(f"{len(items)} items ({sum('. ' not in t for t in items)} headline-only), "
          f"{matches} matches at threshold {model.threshold:.3f}; medians of {args.repeats} "
          f"repeats; per-item latency over {len(single)} items\n")
    print(f"{'':28}{'model':>12}{'keyword rule':>15}{'ratio':>9}")
    print(f"{'batch throughput (items/s)':28}{model_rate:12,.0f}{rule_rate:15,.0f}"
          f"{model_rate / rule_rate:9.2f}")
    print(f"{'10,000 items (s)':28}{10_000 / model_rate:12.2f}{10_000 / rule_rate:15.2f}"
          f"{rule_rate / model_rate:9.2f}")
    print(f"{'per-item median (ms)':28}{model_med:12.3f}{rule_med:15.3f}"
          f"{model_med / rule_med:9.2f}")
    print(f"{'per-item p99 (ms)':28}{model_p99:12.3f}{rule_p99:15.3f}"
          f"{model_p99 / rule_p99:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
