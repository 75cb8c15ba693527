"""B-cubed maths, the ground-truth loader, and floors on the frozen split."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.models import Verdict
from monitor.stories import StorySettings, load_names
from monitor.stories.evaluate import (
    UNDATED_DELAY,
    bcubed,
    evaluate,
    evaluate_as_daemon,
    load,
    main,
    parents_per_story,
    score,
    select,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stories"
GROUND_TRUTH = FIXTURES / "ground_truth.jsonl"

# Floors a little under what the defaults measured on the frozen split (see the README of
# bench/ and the module docstring of monitor/stories/evaluate.py): a regression fails here.
FROZEN_PRECISION_FLOOR = 0.88
FROZEN_RECALL_FLOOR = 0.78


def test_bcubed_on_a_hand_computed_example() -> None:
    gold = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2}
    predicted = {"a": "X", "b": "X", "c": "Y", "d": "Y", "e": "Z"}
    # a, b: cluster {a,b} ⊂ story {a,b,c}: P 1, R 2/3.  c: {c,d} vs {a,b,c}: P 1/2, R 1/3.
    # d: {c,d} vs {d,e}: P 1/2, R 1/2.  e: {e} vs {d,e}: P 1, R 1/2.
    p, r = bcubed(predicted, gold)
    assert p == pytest.approx((1 + 1 + 0.5 + 0.5 + 1) / 5)  # 0.8
    assert r == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2) / 5)  # 8/15
    assert parents_per_story(predicted, gold) == 2.0
    s = score(predicted, gold)
    assert s.f1 == pytest.approx(2 * 0.8 * (8 / 15) / (0.8 + 8 / 15))
    assert (s.items, s.stories, s.predicted) == (5, 2, 3)


def test_bcubed_extremes() -> None:
    gold = {"a": 1, "b": 1, "c": 2}
    assert bcubed({"a": 1, "b": 1, "c": 2}, gold) == (1.0, 1.0)
    p, r = bcubed({"a": "x", "b": "y", "c": "z"}, gold)  # all singletons
    assert p == 1.0 and r == pytest.approx((0.5 + 0.5 + 1) / 3)
    p, r = bcubed({"a": 0, "b": 0, "c": 0}, gold)  # one lump
    assert r == 1.0 and p == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert bcubed({}, {}) == (1.0, 1.0)


def test_loader_sees_undated_items_while_their_story_runs(tmp_path: Path) -> None:
    path = tmp_path / "gt.jsonl"
    path.write_text(
        '{"id": "1", "story": "s", "split": "tune", "published": "2024-06-19T09:00:00Z",'
        ' "title": "A", "summary": ""}\n'
        '{"id": "2", "story": "s", "split": "frozen", "published": null, "title": "B"}\n'
        '{"id": "3", "story": "t", "split": "tune", "publ', encoding="utf-8")  # torn last line
    rows = load(path)
    assert [r.item.article_id for r in rows] == ["1", "2"]
    assert rows[1].item.published_at is None
    assert rows[1].item.seen_at == rows[0].item.published_at + UNDATED_DELAY  # type: ignore[operator]
    assert [r.item.article_id for r in select(rows, "frozen")] == ["2"]


def test_dev_sample_scores() -> None:
    rows = load(FIXTURES / "dev_sample.jsonl")
    scores, assignments = evaluate(rows, StorySettings(), load_names())
    assert len(assignments) == len(rows)
    assert scores.precision >= 0.85 and scores.recall >= 0.9


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--split", "all", str(FIXTURES / "dev_sample.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "B³ precision" in out and "| all |" in out
    assert main([str(FIXTURES / "missing.jsonl")]) == 2


def _verdicts(ids: list[str], score: float, match: bool) -> dict[str, Verdict]:
    return {i: Verdict(i, score, match, 0.4, "test", "test") for i in ids}


def test_as_daemon_indexes_candidates_only_and_scores_the_matches() -> None:
    rows = load(FIXTURES / "dev_sample.jsonl")
    ids = [r.item.article_id for r in rows]
    names = load_names()
    plain, _ = evaluate(rows, StorySettings(), names)
    # Every item matches: the daemon's view is the plain replay's.
    everything, _ = evaluate_as_daemon(rows, StorySettings(), names, _verdicts(ids, 0.9, True))
    assert everything.matching == plain == everything.everything
    assert everything.candidates == everything.matches == len(rows)
    # Near misses (score >= half the threshold) are indexed but not posted: nothing matches.
    near, assignments = evaluate_as_daemon(rows, StorySettings(), names,
                                           _verdicts(ids, 0.25, False))
    assert near.candidates == len(rows) and near.matches == 0 and near.matching.items == 0
    assert near.everything == plain
    # Below half the threshold: each item is a story of its own, as stage.py makes it.
    none, assignments = evaluate_as_daemon(rows, StorySettings(), names,
                                           _verdicts(ids, 0.1, False))
    assert none.candidates == 0
    assert len({a.story_id for a in assignments.values()}) == len(rows)


def test_cli_as_daemon_prints_the_slack_view(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--as-daemon", "--split", "all", str(FIXTURES / "dev_sample.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "| all, matching |" in out and "| all, all items |" in out
    assert "top-level msgs/story" in out and "candidates for the index" in out


def _ground_truth_ready() -> bool:
    if not GROUND_TRUTH.is_file():
        return False
    return len(GROUND_TRUTH.read_text(encoding="utf-8").splitlines()) >= 300


@pytest.mark.skipif(not _ground_truth_ready(), reason="ground_truth.jsonl not there yet")
def test_frozen_split_stays_above_the_floors() -> None:
    rows = select(load(GROUND_TRUTH), "frozen")
    scores, _ = evaluate(rows, StorySettings(), load_names())
    assert scores.precision >= FROZEN_PRECISION_FLOOR, scores
    assert scores.recall >= FROZEN_RECALL_FLOOR, scores
