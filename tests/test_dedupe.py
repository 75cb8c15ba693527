"""dedupe_batch: first of each id and of each canonical URL wins, order kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from monitor.dedupe import dedupe_batch
from monitor.models import Article
from monitor.normalise import normalise_entries
from monitor.parse import parse_feed

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def art(id_: str, url: str, title: str = "t") -> Article:
    return Article(
        id=id_, feed_name="f", source="f", url=url, title=title, summary="",
        published_at=NOW, first_seen_at=NOW,
    )


def test_empty_batch() -> None:
    assert dedupe_batch([]) == []


def test_distinct_articles_pass_through_in_order() -> None:
    batch = [art("c", "https://e.example/3"), art("a", "https://e.example/1"),
             art("b", "https://e.example/2")]
    assert dedupe_batch(batch) == batch


def test_same_id_keeps_the_first() -> None:
    first, again = art("a", "https://e.example/1", "first"), art("a", "https://e.example/9", "2nd")
    assert dedupe_batch([first, art("b", "https://e.example/2"), again]) == [
        first, art("b", "https://e.example/2")
    ]


def test_same_url_keeps_the_first() -> None:
    first, copy = art("a", "https://e.example/1"), art("z", "https://e.example/1")
    other = art("b", "https://e.example/2")
    assert dedupe_batch([first, other, copy]) == [first, other]


def test_articles_without_url_are_compared_by_id_only() -> None:
    one, two = art("a", ""), art("b", "")
    assert dedupe_batch([one, two, art("a", "")]) == [one, two]


def test_a_dropped_duplicate_does_not_claim_its_url() -> None:
    # "a" again under a new URL is dropped; that URL must stay free for a later article.
    first = art("a", "https://e.example/1")
    dup = art("a", "https://e.example/2")
    later = art("b", "https://e.example/2")
    assert dedupe_batch([first, dup, later]) == [first, later]


def test_tracking_fixture_collapses_to_two_stories() -> None:
    parsed = parse_feed("tracked", (FIXTURES / "tracking_params.xml").read_bytes())
    articles = normalise_entries(parsed.entries, source="tracked", now=NOW)
    kept = dedupe_batch(articles)
    assert [a.guid for a in kept] == ["tp-1", "tp-3"]


def test_input_is_not_modified() -> None:
    batch = [art("a", "https://e.example/1"), art("a", "https://e.example/1")]
    copy = list(batch)
    dedupe_batch(batch)
    assert batch == copy
