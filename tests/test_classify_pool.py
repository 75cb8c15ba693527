"""Classifier worker processes: the same verdicts as in the daemon, and no orphans or losses
when a worker (or the daemon itself) is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifiers.data import load_examples
from monitor.classify import UNSCORED_REASON, ArticleClassifier
from monitor.classify_pool import ClassifierPool
from monitor.countries import load_prefilter_terms
from monitor.errors import ClassifyError
from monitor.models import Article
from tests.support.processes import alive, wait_until

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 6, 19, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def classifier() -> ArticleClassifier:
    return ArticleClassifier.load(None, threshold=0.4,
                                  prefilter=load_prefilter_terms(ROOT / "config" / "keywords.toml"))


def as_articles(texts: list[str]) -> list[Article]:
    return [Article(id=f"t{i}", feed_name="F", source="Desk", url=f"https://d.example/{i}",
                    title=text, summary="", published_at=T0, first_seen_at=T0)
            for i, text in enumerate(texts)]


async def test_workers_give_the_daemons_verdicts(classifier: ArticleClassifier) -> None:
    examples = load_examples()[::7]
    articles = as_articles([e.text for e in examples]
                           + ["Tokyo approved the port upgrade on Monday."])  # not scored
    expected = classifier.classify(articles)
    async with ClassifierPool(classifier, model_path=None, workers=2) as pool:
        assert (pool.version, pool.threshold) == (classifier.version, 0.4)
        halves = await asyncio.gather(pool.classify(articles[::2]), pool.classify(articles[1::2]))
        assert await pool.classify([]) == []
    got = {v.article_id: v for half in halves for v in half}
    assert [got[a.id] for a in articles] == expected
    assert expected[-1].reason == UNSCORED_REASON
    assert any(v.match for v in expected) and not all(v.match for v in expected)


async def test_a_killed_worker_is_replaced_and_the_batch_retried(
    classifier: ArticleClassifier,
) -> None:
    articles = as_articles(["North Korea shipped artillery shells to Russia by rail, "
                            "officials in Seoul said."] * 3)
    async with ClassifierPool(classifier, model_path=None, workers=1) as pool:
        [victim] = pool.worker_pids()
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: not alive(victim))
        verdicts = await pool.classify(articles)
        assert pool.replaced == 1
        assert pool.worker_pids() and victim not in pool.worker_pids()
    assert verdicts == classifier.classify(articles)


async def test_a_closed_pool_refuses_work_with_a_typed_error(
    classifier: ArticleClassifier,
) -> None:
    pool = ClassifierPool(classifier, model_path=None, workers=1)
    async with pool:
        pids = pool.worker_pids()
    assert wait_until(lambda: not any(alive(p) for p in pids))
    with pytest.raises(ClassifyError, match="closed"):
        await pool.classify(as_articles(["Putin met Kim in Vostochny."]))


def test_workers_exit_when_the_daemon_is_killed(tmp_path: Path) -> None:
    """SIGKILL gives the daemon no chance to stop its workers: they must notice alone."""
    script = textwrap.dedent("""
        import asyncio, sys
        from monitor.classify import ArticleClassifier
        from monitor.classify_pool import ClassifierPool

        async def main():
            pool = ClassifierPool(ArticleClassifier.load(None), model_path=None, workers=2)
            await pool.__aenter__()
            print(*pool.worker_pids(), flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
    """)
    daemon = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert daemon.stdout is not None
        pids = [int(p) for p in daemon.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        daemon.kill()
        daemon.wait(timeout=10)
        assert wait_until(lambda: not any(alive(p) for p in pids)), "orphaned classifier workers"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()
