"""Story assignment throughput and memory against a naive all-pairs baseline.

Run from the repository root: ``python bench/stories.py [--items 100000] [--repeats 3]``
(``--quick``: 10,000 items, baseline on 1,000, one repeat: for CI).

Builds N synthetic news items (headline + description, 20-50 words: 40 % from the
story's own words, the rest Zipf-distributed filler; a new topic every few originals), 30 % of them
near-duplicates of a recent item (wire copy at another outlet: a few words changed,
dropped or added), with published times 26 s apart on average, so that the 36 h
window holds ~5,000 items as on a busy real week. Then, in one process:

- **stage**: ``StoryIndex.assign_many`` on batches of 60 items (one feed's poll), with
  ``expire`` before each batch, as the daemon would call it; items/s, CPU µs per item
  (``time.process_time``), and the share of near-duplicates that landed in their
  original's story;
- **stage, one at a time**: ``StoryIndex.assign`` per item (the trickle case);
- **baseline**: every new item against every earlier one (Jaccard of shingle sets, the
  same shingles), joining the best at the same threshold: the first ``--baseline``
  items only, because it is quadratic; the stage is timed on those same items too;
- **memory**: tracemalloc peak while the stage indexes all N items, and what the
  index holds at the end (a separate run: tracemalloc slows everything down).

Every figure is the median of ``--repeats`` runs. The µs per item is to be read
against ~230 µs of CPU per item for a cold poll cycle (bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datasketch

from monitor.stories import StoryIndex, StoryItem, StorySettings, load_names
from monitor.stories.text import content_words, normalise, shingles, wordlist, words

DOMAIN = wordlist("""
kim jong un putin pyongyang moscow kremlin russia north korea korean russian summit
talks visit delegation treaty artillery shells missiles troops kursk vladivostok khasan
tumen bridge rail oil sanctions satellite cosmodrome vostochny komsomolsk aircraft plant
lavrov shoigu belousov choe son hui deminers builders workers tourists wonsan flights
drones ammunition containers rajin port ship tanker refined cap panel experts veto
""")
START = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 60


@dataclass(frozen=True, slots=True)
class Synthetic:
    items: list[StoryItem]
    duplicate_of: dict[str, str]
    """near-duplicate article id → the article it copies."""


def make_items(n: int, seed: int = 11, duplicate_share: float = 0.30) -> Synthetic:
    rng = random.Random(seed)
    filler = [f"w{i}" for i in range(20_000)]
    cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(filler))))
    items: list[StoryItem] = []
    originals: list[StoryItem] = []
    duplicate_of: dict[str, str] = {}
    topic_words: list[str] = []
    t = START
    for i in range(n):
        t += timedelta(seconds=rng.expovariate(1 / 26))
        article_id = f"a{i:07d}"
        if originals and rng.random() < duplicate_share:
            source = rng.choice(originals[-200:])
            words = (source.title + " | " + source.summary).split()
            for _ in range(rng.randint(1, 3)):
                j = rng.randrange(len(words))
                action = rng.random()
                if action < 0.4:
                    words[j] = rng.choice(filler)
                elif action < 0.7 and len(words) > 10:
                    del words[j]
                else:
                    words.insert(j, rng.choice(filler))
            text = " ".join(words)
            title, _, summary = text.partition(" | ")
            duplicate_of[article_id] = source.article_id
        else:
            if not topic_words or rng.random() < 0.3:
                topic_words = rng.sample(filler[2000:], 12) + rng.sample(DOMAIN, 5)
            title, summary = (" ".join(_word(rng, topic_words, filler, cum) for _ in range(k))
                              for k in (rng.randint(6, 12), rng.randint(15, 40)))
        item = StoryItem(article_id, title, summary, t, f"outlet{i % 42}", t)
        items.append(item)
        if article_id not in duplicate_of:
            originals.append(item)
    return Synthetic(items, duplicate_of)


def _word(rng: random.Random, topic: list[str], filler: list[str], cum: list[float]) -> str:
    """A story's own words 40 % of the time, else Zipf-distributed filler (as news text is)."""
    if rng.random() < 0.4:
        return rng.choice(topic)
    return rng.choices(filler, cum_weights=cum)[0]


def run_stage(items: Sequence[StoryItem], settings: StorySettings, names: object,
              batch: int = BATCH) -> tuple[float, float, dict[str, str], StoryIndex]:
    """(wall s, CPU s, article → story, index) for assigning ``items`` in poll-sized batches."""
    index = StoryIndex(settings, names)  # type: ignore[arg-type]
    stories: dict[str, str] = {}
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        index.expire(chunk[0].seen_at)
        if batch == 1:
            stories[chunk[0].article_id] = index.assign(chunk[0]).story_id
        else:
            for item, a in zip(chunk, index.assign_many(chunk), strict=True):
                stories[item.article_id] = a.story_id
    return time.perf_counter() - wall, time.process_time() - cpu, stories, index


def run_baseline(items: Sequence[StoryItem], settings: StorySettings) -> tuple[float, float]:
    """Naive all-pairs: exact Jaccard of each new item's shingles with every earlier item."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    seen: list[tuple[frozenset[bytes], int]] = []
    clusters = 0
    for item in items:
        grams = frozenset(shingles(content_words(words(normalise(f"{item.title} {item.summary}"))),
                                   settings.shingle_size))
        best, best_j = -1, settings.duplicate_threshold
        for other, cluster in seen:
            j = len(grams & other) / (len(grams | other) or 1)
            if j >= best_j:
                best, best_j = cluster, j
        if best < 0:
            clusters += 1
            best = clusters
        seen.append((grams, best))
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_memory(items: Sequence[StoryItem], settings: StorySettings,
                   names: object) -> tuple[float, float, dict[str, int]]:
    """(peak MB while indexing, MB held by the index at the end, structure sizes)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    _, _, stories, index = run_stage(items, settings, names)
    del stories
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / 2**20, (current - base) / 2**20, index.sizes()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="10,000 items, baseline on 1,000, one repeat")
    parser.add_argument("--no-names", action="store_true", help="without the keyword file")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.baseline, args.repeats = 10_000, 1_000, 1
    settings = StorySettings()
    names = None if args.no_names else load_names()
    data = make_items(args.items)
    items = data.items
    head = items[: args.baseline]
    run_stage(items[:500], settings, names)  # warm-up: imports, regex and numpy caches

    rows: dict[str, list[tuple[float, float]]] = {"stage": [], "single": [], "stage_head": [],
                                                   "baseline": []}
    joined = []
    for _ in range(args.repeats):
        wall, cpu, stories, _index = run_stage(items, settings, names)
        rows["stage"].append((wall, cpu))
        joined.append(sum(stories[d] == stories[o] for d, o in data.duplicate_of.items())
                      / max(1, len(data.duplicate_of)))
        wall, cpu, _, _ = run_stage(items[: min(len(items), 20_000)], settings, names, batch=1)
        rows["single"].append((wall, cpu))
        wall, cpu, _, _ = run_stage(head, settings, names)
        rows["stage_head"].append((wall, cpu))
        rows["baseline"].append(run_baseline(head, settings))
    peak_mb, held_mb, sizes = measure_memory(items, settings, names)

    def med(key: str, part: int) -> float:
        return statistics.median(r[part] for r in rows[key])

    n_single = min(len(items), 20_000)
    counts = {"stage": len(items), "single": n_single, "stage_head": len(head),
              "baseline": len(head)}
    print(f"stories benchmark: python {platform.python_version()}, datasketch "
          f"{datasketch.__version__}, {os.cpu_count()} CPUs, one process; "
          f"num_perm={settings.num_perm}, window {settings.window_hours:g} h, "
          f"names {'off' if names is None else 'on'}")
    print(f"{len(items):,} synthetic items, {len(data.duplicate_of):,} near-duplicates "
          f"({len(data.duplicate_of) / len(items):.0%}); medians of {args.repeats} repeats\n")
    print(f"{'':40}{'items':>9}{'items/s':>11}{'CPU µs/item':>13}{'wall s':>9}")
    labels = {"stage": f"stage, batches of {BATCH}", "single": "stage, one item at a time",
              "stage_head": f"stage, first {len(head):,}",
              "baseline": f"naive all-pairs, first {len(head):,}"}
    for key, label in labels.items():
        n = counts[key]
        print(f"{label:40}{n:9,}{n / med(key, 0):11,.0f}{med(key, 1) / n * 1e6:13.1f}"
              f"{med(key, 0):9.2f}")
    stage_rate = len(head) / med("stage_head", 0)
    base_rate = len(head) / med("baseline", 0)
    cpu_us = med("stage", 1) / len(items) * 1e6
    print(f"\nspeed vs baseline on the first {len(head):,}: {stage_rate / base_rate:.1f}x; "
          f"the baseline's cost per item grows with the items before it "
          f"(~{len(head) / 2:,.0f} comparisons per item here).")
    print(f"near-duplicates in their original's story: {statistics.median(joined):.1%}")
    print(f"CPU per item {cpu_us:.1f} µs = {cpu_us / 230:.1%} of a cold cycle's ~230 µs/item "
          f"(if every item went through the stage)")
    print(f"memory (tracemalloc, one run of {len(items):,}): peak {peak_mb:.1f} MB while "
          f"indexing, {held_mb:.1f} MB held by the index at the end")
    print(f"index at the end: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
