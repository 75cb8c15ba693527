"""The measured processes: the real pipeline, the naive baseline, and a profiled cold cycle.

Each runs in a fresh process started by ``bench/poll.py`` and prints one JSON
line, so that every repeat starts from a cold interpreter, an empty database and
its own memory high-water mark.

``pipeline``: ``monitor.pipeline.run_feed`` for every feed, concurrently under a
semaphore as ``monitor/app.py`` does, with a real SQLite store in a temporary
directory and the real classifier (or a keyword stand-in when no model file is
installed, reported as such). A cold cycle (empty store: every feed is a 200),
then ``bump`` feeds get a new item, then a warm cycle (validators stored: mostly
304). ``baseline``: a sequential loop of ``httpx.get`` + ``feedparser.parse``
over a sample of the same feeds, cold and then warm (with If-None-Match, so its
warm cycle is mostly 304 too). ``profile``: one cold (or all-304) pipeline cycle under
cProfile with a per-thread CPU clock, reduced to fetch / parse / store / classify.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import pstats
import random
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import Meter, Phase, cpu_count

if TYPE_CHECKING:
    from monitor.classify import ArticleClassifier
    from monitor.models import Feed, ParsedFeed
    from monitor.pipeline import FeedReport, PipelineDeps

# The daemon's modules (and the classifier's scikit-learn) are imported inside the
# functions: parser worker processes re-import this module as their __main__, and
# should not each spend seconds importing what they never use.

USER_AGENT = "dprk-russia-news-monitor-bench/0.1 (+https://example.invalid/bench)"


# -- the classifier, or a stand-in --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Score:
    score: float
    match: bool
    reason: str
    event_type: str | None
    keywords: tuple[str, ...]


class KeywordScorer:
    """Stand-in model for machines without a trained model file: both countries named = match."""

    threshold = 0.5
    version = "bench-keyword-stand-in"

    def score(self, texts: Sequence[str], *, threshold: float | None = None) -> list[_Score]:
        cut = self.threshold if threshold is None else threshold
        out = []
        for text in texts:
            low = text.lower()
            hits = tuple(k for k in ("north korea", "pyongyang", "russia", "moscow") if k in low)
            both = bool({"north korea", "pyongyang"} & set(hits)) and bool(
                {"russia", "moscow"} & set(hits))
            value = 0.9 if both else 0.05
            out.append(_Score(value, value >= cut, "keywords: " + ", ".join(hits),
                              "cooperation" if both else None, hits))
        return out


def load_classifier() -> tuple[ArticleClassifier, str]:
    from monitor.classify import ArticleClassifier
    from monitor.countries import load_prefilter_terms
    from monitor.errors import ClassifyError

    try:
        # With the pre-filter, as monitor/app.py builds it by default.
        prefilter = load_prefilter_terms(Path(__file__).resolve().parent.parent / "config"
                                         / "keywords.toml")
        classifier = ArticleClassifier.load(None, prefilter=prefilter)
        return classifier, f"model {classifier.version} with pre-filter"
    except ClassifyError as exc:
        reason = str(exc).split(";")[0]
        return ArticleClassifier(KeywordScorer()), f"KEYWORD STAND-IN (no model: {reason})"


# -- the pipeline -------------------------------------------------------------------------------


def feeds_for(base: str, count: int) -> list[Feed]:
    from monitor.models import Feed

    return [Feed(name=f"bench-{i:05d}", url=f"{base}/feed/{i}.xml") for i in range(count)]


def bump(base: str, count: int, seed: int) -> None:
    """Give ``count`` feeds one new item (outside any measured phase)."""
    request = urllib.request.Request(f"{base}/control/bump?count={count}&seed={seed}",
                                     method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


async def _cycle(
    feeds: list[Feed], deps: PipelineDeps, concurrency: int
) -> tuple[Phase, dict[str, Any]]:
    from monitor.pipeline import run_feed

    semaphore = asyncio.Semaphore(concurrency)

    async def poll(feed: Feed) -> FeedReport:
        async with semaphore:
            return await run_feed(feed, deps)

    with Meter() as meter:
        meter.watch_loop()
        reports = await asyncio.gather(*(poll(f) for f in feeds))
    statuses = Counter(r.status for r in reports)
    errors = sorted({r.error or "" for r in reports if r.error})[:3]
    summary = {"statuses": dict(statuses), "new_items": sum(r.new_items for r in reports),
               "alerts": sum(r.alerts for r in reports), "errors": errors}
    return meter.phase, summary


async def _parse_in_thread(feed_name: str, body: bytes, **kwargs: Any) -> ParsedFeed:
    from monitor.parse import parse_feed

    return await asyncio.to_thread(parse_feed, feed_name, body, **kwargs)


def _deps(parse_fn: Any, classify_fn: Any, **given: Any) -> PipelineDeps:
    """PipelineDeps from what this version of it accepts (the pipeline is still growing)."""
    from monitor.pipeline import PipelineDeps

    accepted = {f.name for f in dataclasses.fields(PipelineDeps)}
    if "parse" in accepted:
        given["parse"] = parse_fn
    if "classify" in accepted:
        given["classify"] = classify_fn
    return PipelineDeps(**{k: v for k, v in given.items() if k in accepted})


async def _feed_states(store: Any) -> Any:
    """The daemon's write-through feed-state cache, loaded as ``monitor/app.py`` does
    (None on versions of the pipeline that have none)."""
    try:
        from monitor.feeds import FeedStates
    except ImportError:
        return None
    states = FeedStates(store)
    await states.load()
    return states


def _story_stage(rules: Any) -> Any:
    """The daemon's stories stage (``monitor/app.py``), with the repository's keyword file."""
    from monitor.stories import StoryIndex, StorySettings, load_names
    from monitor.stories.stage import StoryStage

    keywords = Path(__file__).resolve().parent.parent / "config" / "keywords.toml"
    return StoryStage(StoryIndex(StorySettings(), load_names(keywords)), rules=rules,
                      now=lambda: datetime.now(UTC))


async def build_deps(stack: AsyncExitStack, concurrency: int, *, parse: str,
                     classify_workers: int,
                     stories: bool = True) -> tuple[PipelineDeps, str, str]:
    """The pipeline's dependencies as ``monitor/app.py`` builds them, in ``stack``:
    (deps, classifier note, where parsing and classification run)."""
    from monitor import app
    from monitor.http import FetchLimits, build_client
    from monitor.settings import Settings
    from monitor.store.sqlite import SqliteStore

    classifier, classifier_note = load_classifier()
    limits = FetchLimits(user_agent=USER_AGENT, max_connections=max(concurrency, 10))
    if parse == "pool":
        from monitor.parse_pool import ParserPool

        pool = await stack.enter_async_context(ParserPool(workers=cpu_count()))
        parse_fn: Any = pool.parse
        parse_note = f"process pool ({pool.workers} workers)"
    else:
        parse_fn = getattr(app, "parse_in_thread", _parse_in_thread)
        parse_note = "thread (asyncio.to_thread)"
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-poll-"))
    store = SqliteStore(Path(tmp) / "bench.db")
    stack.callback(store.close)
    store.migrate()
    client = await stack.enter_async_context(build_client(limits))
    classify_fn: Any = getattr(classifier, "classify_in_thread", None)
    classify_note = "thread"
    if classify_workers > 0 and classify_fn is not None:
        from monitor.classify_pool import ClassifierPool

        classify_pool = await stack.enter_async_context(
            ClassifierPool(classifier, model_path=None, workers=classify_workers))
        classify_fn = classify_pool.classify
        classify_note = f"process pool ({classify_workers} workers)"
    rules = replace(app.alert_rules(Settings()), destination="console")
    deps = _deps(
        parse_fn, classify_fn,
        client=client, store=store, classifier=classifier, fetch_limits=limits,
        stories=_story_stage(rules).link if stories else None,
        rules=rules, max_items=500,
        lifecycle=app.lifecycle_policy(Settings()),
        now=lambda: datetime.now(UTC), states=await _feed_states(store),
    )
    return deps, classifier_note, f"{parse_note}; classify in {classify_note}"


async def run_pipeline(base: str, count: int, concurrency: int, bump_count: int, seed: int,
                       *, parse: str = "thread", profile: str | None = None,
                       warm_repeats: int = 0, classify_workers: int = 0,
                       stories: bool = True) -> dict[str, Any]:
    """Cold, warm and all-304 cycles; with ``profile`` ("cold" or "all304") only that
    cycle is profiled (after an unprofiled cold one for "all304") and then it stops.

    With ``warm_repeats`` R > 0: one cold cycle, then R rounds of (bump, warm, all-304)
    in this same process, returned as lists. A 2,000-feed cold cycle costs minutes, a
    warm one seconds, so this is how the warm path is measured repeatedly in one run."""
    from monitor import app

    feeds = feeds_for(base, count)
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        deps, classifier_note, parse_note = await build_deps(
            stack, concurrency, parse=parse, classify_workers=classify_workers,
            stories=stories)
        limits = deps.fetch_limits
        freeze = getattr(app, "freeze_startup_heap", None)
        if freeze is not None:  # as monitor/app.py does once everything is built
            freeze()
        quiet = dataclasses.replace(  # no random unconditional polls: pure 304 cost
            deps, fetch_limits=dataclasses.replace(limits, unconditional_probability=0.0))
        if profile is not None:
            if profile == "all304":
                plain = ThreadPoolExecutor(thread_name_prefix="bench-plain")
                loop.set_default_executor(plain)
                await _cycle(feeds, deps, concurrency)
                plain.shutdown(wait=True)  # fresh, profiled threads from here on
            profiles = _ThreadProfiles()
            profiled = profiles.executor()
            loop.set_default_executor(profiled)
            profiles.start_main()
            phase, summary = await _cycle(feeds, quiet if profile == "all304" else deps,
                                          concurrency)
            profiles.stop_main()
            profiled.shutdown(wait=True)
            return {"classifier": classifier_note, "parse": parse_note, "cycle": profile,
                    "phase": phase.as_dict(), "summary": summary,
                    "profile": profiles.breakdown()}
        cold, cold_summary = await _cycle(feeds, deps, concurrency)
        if warm_repeats:
            rounds: dict[str, Any] = {"warm": [], "all304": []}
            for round_ in range(warm_repeats):
                await asyncio.to_thread(bump, base, bump_count, seed + round_)
                for name, cycle_deps in (("warm", deps), ("all304", quiet)):
                    phase, summary = await _cycle(feeds, cycle_deps, concurrency)
                    rounds[name].append({"phase": phase.as_dict(), "summary": summary})
            return {"classifier": classifier_note, "parse": parse_note,
                    "cold": cold.as_dict(), "cold_summary": cold_summary, **rounds}
        await asyncio.to_thread(bump, base, bump_count, seed)
        warm, warm_summary = await _cycle(feeds, deps, concurrency)
        still, still_summary = await _cycle(feeds, quiet, concurrency)
    return {"classifier": classifier_note, "parse": parse_note,
            "cold": cold.as_dict(), "cold_summary": cold_summary,
            "warm": warm.as_dict(), "warm_summary": warm_summary,
            "all304": still.as_dict(), "all304_summary": still_summary}


# -- the naive baseline -------------------------------------------------------------------------


def run_baseline(base: str, count: int, sample: int, bump_count: int, seed: int
                 ) -> dict[str, Any]:
    import feedparser  # imported here so the pipeline process never pays for it twice
    import httpx

    chosen = sorted(random.Random(seed).sample(range(count), k=min(sample, count)))
    urls = [f"{base}/feed/{i}.xml" for i in chosen]
    etags: dict[str, str | None] = {}
    with Meter() as cold:
        for url in urls:
            response = httpx.get(url)
            feedparser.parse(response.content)
            etags[url] = response.headers.get("etag")
    bump(base, bump_count, seed + 1)
    statuses: Counter[int] = Counter()
    with Meter() as warm:
        for url in urls:
            etag = etags[url]
            response = httpx.get(url, headers={"If-None-Match": etag} if etag else None)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                feedparser.parse(response.content)
    return {"sample": len(urls), "cold": cold.phase.as_dict(), "warm": warm.phase.as_dict(),
            "warm_statuses": {str(k): v for k, v in statuses.items()}}


# -- profiling ----------------------------------------------------------------------------------

# Stage → the source files that are that stage. A stage's CPU is the cumulative time of
# calls *into* those files from anywhere else (so a stage calling itself is not counted
# twice). Fetch also gets the event loop's socket callbacks, where aiohttp reads responses.
_STAGES: dict[str, tuple[str, ...]] = {
    "fetch": ("monitor/fetch.py", "monitor/http/client.py", "monitor/http/transport.py",
              "monitor/http/decode.py", "monitor/http/headers.py", "monitor/http/errors.py",
              "monitor/http/redirects.py", "monitor/http/politeness.py"),
    "parse": ("monitor/parse.py", "monitor/xmlguard.py", "monitor/parse_pool.py"),
    "normalise+dedupe": ("monitor/normalise.py", "monitor/dedupe.py"),
    "classify": ("monitor/classify.py",),
    "store": ("monitor/store/sqlite.py",),
    "decide+lifecycle": ("monitor/decide.py", "monitor/feeds/lifecycle.py",
                         "monitor/feeds/cadence.py"),
}
_LOOP_IO = (("asyncio/selector_events.py", "_read_ready"),
            ("asyncio/selector_events.py", "_write_ready"))


def _stage_seconds(table: dict[tuple[str, int, str], tuple[Any, ...]], files: tuple[str, ...]
                   ) -> float:
    def inside(file: str) -> bool:
        return file.replace("\\", "/").endswith(files)

    total = 0.0
    for (file, _line, _func), entry in table.items():
        if not inside(file):
            continue
        for (caller_file, _l, _f), caller_stats in entry[4].items():
            if not inside(caller_file):
                total += caller_stats[3]
    return total


class _ThreadProfiles:
    """cProfile on the event-loop thread and on every executor thread, on a CPU clock.

    A wall clock would bill a thread for the time it waits for the GIL; with
    ``time.thread_time`` each thread is charged only for what it computed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: list[cProfile.Profile] = []
        self._main = cProfile.Profile(time.thread_time)

    def executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(thread_name_prefix="bench-profiled",
                                  initializer=self._thread_started)

    def _thread_started(self) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def start_main(self) -> None:
        self._main.enable()

    def stop_main(self) -> None:
        self._main.disable()

    def breakdown(self) -> dict[str, Any]:
        stats = pstats.Stats(self._main)
        for profile in self._profiles:  # their threads have exited (executor shut down)
            profile.create_stats()
            stats.add(profile)
        table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
        total = sum(entry[2] for entry in table.values())  # every function's own time
        shares = {stage: _stage_seconds(table, files) for stage, files in _STAGES.items()}
        shares["fetch"] += sum(
            entry[3] for (file, _line, func), entry in table.items()
            if any(file.endswith(suffix) and func == name for suffix, name in _LOOP_IO)
        )
        shares["other (event loop, threads, glue)"] = max(0.0, total - sum(shares.values()))
        return {"total_cpu_s": total, "stages_s": shares, "threads": 1 + len(self._profiles)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("pipeline", "baseline", "profile", "warm"))
    parser.add_argument("--base", required=True)
    parser.add_argument("--feeds", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--bump", type=int, default=0)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parse", choices=("thread", "pool"), default="thread")
    parser.add_argument("--classify-workers", type=int, default=0,
                        help="classifier worker processes (0: score in a thread)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="warm mode: rounds of (bump, warm, all-304) after one cold cycle")
    parser.add_argument("--no-stories", action="store_true",
                        help="leave the stories stage out (to measure what it costs)")
    parser.add_argument("--cycle", choices=("cold", "all304"), default="cold",
                        help="which cycle the profile mode profiles")
    args = parser.parse_args(argv)
    if args.mode == "baseline":
        result = run_baseline(args.base, args.feeds, args.sample, args.bump, args.seed)
    else:
        result = asyncio.run(run_pipeline(args.base, args.feeds, args.concurrency, args.bump,
                                          args.seed, parse=args.parse,
                                          classify_workers=args.classify_workers,
                                          stories=not args.no_stories,
                                          profile=args.cycle if args.mode == "profile" else None,
                                          warm_repeats=args.repeats if args.mode == "warm" else 0))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
