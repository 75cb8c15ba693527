"""StoryIndex: what joins, what stays apart, and what keeps it bounded."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.stories import StoryIndex, StoryItem, StorySettings, item_time, load_names
from monitor.stories.text import content_words, normalise, stem, words

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stories"
T0 = datetime(2023, 9, 12, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def names():  # type: ignore[no-untyped-def]
    return load_names()


def item(article_id: str, title: str, summary: str = "", hours: float | None = 0.0,
         source: str = "Outlet", seen_hours: float | None = None) -> StoryItem:
    published = None if hours is None else T0 + timedelta(hours=hours)
    seen = T0 + timedelta(hours=seen_hours if seen_hours is not None else (hours or 0.0))
    return StoryItem(article_id, title, summary, published, source, seen)


SUMMIT = ("Vladimir Putin met Kim Jong Un at the Vostochny space launch site in the Amur "
          "region, showing him rocket facilities before talks that lasted more than four hours.")


def test_syndicated_copy_at_another_url_joins(names) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    first = index.assign(item("a1", "Putin and Kim hold talks at Vostochny Cosmodrome", SUMMIT))
    copy = index.assign(item("a2", "Putin, Kim hold talks at Vostochny space base", SUMMIT,
                             hours=0.5, source="Other outlet"))
    assert first.is_new and first.how == "new" and first.story_id == "s-a1"
    assert copy.story_id == "s-a1" and not copy.is_new
    assert copy.how == "near_duplicate" and copy.near_duplicate_of == "a1"
    assert copy.score >= StorySettings().duplicate_threshold


def test_an_outlets_updated_headline_joins(names) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    index.assign(item("b1", "Putin and Kim begin talks at Russian spaceport",
                      "The two leaders met at the Vostochny cosmodrome in the Amur region."))
    updated = index.assign(item(
        "b2", "Putin and Kim end talks at Vostochny after four hours, toast friendship",
        "The two leaders met at the Vostochny cosmodrome in the Amur region and talked for "
        "more than four hours before a banquet.", hours=3))
    assert updated.story_id == "s-b1" and updated.how in ("near_duplicate", "similar")


def _event_rows(event: str) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (FIXTURES / "dev_sample.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == event and r["lang"] == "en"]


def _replay_trip(names) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """Predicted story → labelled developments, for the English reports of the 2023 trip."""
    rows = sorted(_event_rows("2023-09-vostochny"), key=lambda r: str(r["published"]))
    index = StoryIndex(StorySettings(), names)
    stories_of: dict[str, set[str]] = {}
    for row in rows:
        published = datetime.fromisoformat(str(row["published"]).replace("Z", "+00:00"))
        got = index.assign(StoryItem(str(row["id"]), str(row["title"]), str(row["summary"]),
                                     published, str(row["outlet"]), published))
        stories_of.setdefault(got.story_id, set()).add(str(row["story"]))
    return stories_of


def test_separate_developments_of_one_trip_stay_apart(names) -> None:  # type: ignore[no-untyped-def]
    # Border crossing, summit, factory visit, invitation: stories of one trip whose reports
    # share Kim, Putin, Russia, summit, and each reported by two or three outlets.
    stories_of = _replay_trip(names)
    developments = ("train-border", "summit", "factory", "invitation", "us-warning")
    for a, b in itertools.combinations(developments, 2):
        if {a, b} != {"summit", "us-warning"}:  # see the xfail test below
            assert not any({a, b} <= labels for labels in stories_of.values()), (a, b)
    # Each development is one story (the wire copies and rewrites joined).
    for label in ("train-border", "factory", "invitation", "us-warning"):
        assert sum(label in labels for labels in stories_of.values()) == 1, label


@pytest.mark.xfail(strict=True, reason="known limit at the tuned thresholds: a summit report "
                   "that mentions 'US warnings of an arms deal' pulls the US sanctions warning "
                   "(same day, same names) into the summit story")
def test_a_third_countrys_warning_stays_apart_from_the_summit(names) -> None:  # type: ignore[no-untyped-def]
    stories_of = _replay_trip(names)
    assert not any({"summit", "us-warning"} <= labels for labels in stories_of.values())


def test_items_further_apart_than_the_window_never_join(names) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(window_hours=36), names)
    index.assign(item("c1", "Kim's armoured train crosses into Russia at Khasan", SUMMIT))
    late = index.assign(item("c2", "Kim's armoured train crosses into Russia at Khasan", SUMMIT,
                             hours=37))
    assert late.is_new  # not expired yet, but outside the window between published times
    assert index.expire(T0 + timedelta(hours=36.5)) == 1
    assert len(index) == 1 and index.open_stories == 1
    assert index.expire(T0 + timedelta(hours=80)) == 1
    assert len(index) == 0 and index.open_stories == 0
    assert all(v == 0 for k, v in index.sizes().items() if k != "heap")


def test_restore_then_assign_gives_the_same_story(names) -> None:  # type: ignore[no-untyped-def]
    first = [item("d1", "Putin accepts Kim's invitation to visit Pyongyang",
                  "The Kremlin said Putin accepted an invitation from Kim Jong Un to visit North "
                  "Korea at a convenient time."),
             item("d2", "US warns of sanctions over any Russia-North Korea arms deal",
                  "The State Department said weapons transfers would violate UN resolutions.",
                  hours=1)]
    later = item("d3", "Kim invites Putin to North Korea; Kremlin says he accepted the invitation",
                 "North Korean state media said Kim invited the Russian president to Pyongyang "
                 "and Putin accepted the invitation.", hours=2)
    running = StoryIndex(StorySettings(), names)
    assigned = [running.assign(i) for i in first]
    expected = running.assign(later)
    assert expected.story_id == "s-d1"

    restarted = StoryIndex(StorySettings(), names)
    for i, a in zip(first, assigned, strict=True):
        restarted.restore(i, a.story_id)
    assert len(restarted) == 2
    assert restarted.assign(later) == expected


def test_assign_many_is_assign_in_order(names) -> None:  # type: ignore[no-untyped-def]
    rows = [json.loads(line) for line in (FIXTURES / "dev_sample.jsonl").read_text().splitlines()]
    items = [StoryItem(str(r["id"]), str(r["title"]), str(r["summary"]), T0 + timedelta(minutes=i),
                       str(r["outlet"]), T0 + timedelta(minutes=i)) for i, r in enumerate(rows)]
    one_by_one = StoryIndex(StorySettings(), names)
    batched = StoryIndex(StorySettings(), names)
    assert [one_by_one.assign(i) for i in items] == batched.assign_many(items)
    assert one_by_one.sizes() == batched.sizes()


def test_story_ids_are_deterministic_across_runs(names) -> None:  # type: ignore[no-untyped-def]
    items = [item(f"e{i}", f"Report number {i} about troops shipped to Vladivostok port {i}",
                  f"Some text {i} about ships and soldiers and ports.", hours=i) for i in range(5)]
    runs = [[StoryIndex(StorySettings(), names).assign(i) for i in items] for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("title", ["Live updates", "World news in brief", "LIVE: Updates",
                                   "Morning briefing"])
def test_generic_titles_never_join_on_the_title(names, title: str) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    a = index.assign(item("f1", title, "Putin lands in Pyongyang for his first visit in 24 "
                                       "years; Kim greets him at the airport."))
    b = index.assign(item("f2", title, "Floods in southern Europe: rescue teams search for "
                                       "missing hikers in the Alps.", hours=1))
    c = index.assign(item("f3", title, "", hours=2))
    d = index.assign(item("f4", title, "", hours=3))
    assert len({a.story_id, b.story_id, c.story_id, d.story_id}) == 4
    assert c.is_new and d.is_new


def test_a_generic_title_still_joins_on_its_summary(names) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    index.assign(item("g1", "Putin and Kim hold talks at Vostochny Cosmodrome", SUMMIT))
    live = index.assign(item("g2", "Live updates", SUMMIT, hours=1))
    assert live.story_id == "s-g1"


@pytest.mark.parametrize("title", ["", "Russia", "   ", "!!!", "North Korea"])
def test_empty_and_one_word_titles_start_their_own_unindexed_story(names, title: str) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    a = index.assign(item("h1", title))
    b = index.assign(item("h2", title, hours=1))
    assert a.is_new and b.is_new and a.story_id != b.story_id
    assert len(index) == 0  # too little to judge: nothing may join them either


def test_items_without_a_date_use_when_we_saw_them(names) -> None:  # type: ignore[no-untyped-def]
    index = StoryIndex(StorySettings(), names)
    index.assign(item("i1", "Putin and Kim hold talks at Vostochny Cosmodrome", SUMMIT))
    undated = item("i2", "Putin, Kim hold talks at Vostochny space base", SUMMIT, hours=None,
                   seen_hours=2)
    assert item_time(undated) == (T0 + timedelta(hours=2)).timestamp()
    assert index.assign(undated).story_id == "s-i1"
    seen_much_later = item("i3", "Putin, Kim hold talks at Vostochny space base", SUMMIT,
                           hours=None, seen_hours=60)
    assert index.assign(seen_much_later).is_new


def test_absurd_published_times_fall_back_to_seen_at() -> None:
    future = StoryItem("j1", "t", "", T0 + timedelta(days=400), "o", T0)
    ancient = StoryItem("j2", "t", "", datetime(1970, 1, 1, tzinfo=UTC), "o", T0)
    plausible = StoryItem("j3", "t", "", T0 - timedelta(hours=5), "o", T0)
    assert item_time(future) == item_time(ancient) == T0.timestamp()
    assert item_time(plausible) == (T0 - timedelta(hours=5)).timestamp()


def test_a_10000_item_burst_keeps_every_structure_bounded(names) -> None:  # type: ignore[no-untyped-def]
    settings = StorySettings(max_items=2_000, members_per_story=12, posting_cap=64)
    index = StoryIndex(settings, names)
    five = [("Convoy of trucks seen near Khasan bridge", "Witnesses counted trucks heading to "
             "the Tumen crossing, district officials said."),
            ("Tanker unloads refined oil at Rajin port", "Satellite images show a vessel from "
             "Vostochny port berthed beside fuel tanks."),
            ("Pyongyang marathon welcomes Russian runners", "Amateur athletes from Moscow and "
             "Kazan ran the spring course past Kim Il Sung Square."),
            ("Wonsan resort opens season to Russian tourists", "Tour operators in Vladivostok "
             "sold charter packages for the beach hotels of Kalma."),
            ("Deminers from North Korea arrive in Kursk", "Engineers will clear mines left in "
             "border villages, the regional governor announced.")]
    syllables = ["ba", "de", "fi", "go", "ku", "la", "me", "ni"]

    def letters(n: int) -> str:  # 0 → "aaaa", 1 → "baaa": a word of its own per item
        return "".join("abcdefghijklmnopqrstuvwxyz"[(n // 26**k) % 26] for k in range(4))

    burst = []
    for i in range(10_000):
        if i % 2:  # copies of five stories
            title, summary = five[i % 5]
            burst.append(item(f"k{i}", title, summary, hours=i / 10_000))
        else:  # unrelated items: no word in common with any other item
            own = [f"{syllables[j]}{letters(i)}" for j in range(8)]
            burst.append(item(f"k{i}", " ".join(own[:4]), " ".join(own[4:]), hours=i / 10_000))
    stories = [a.story_id for a in index.assign_many(burst)]
    sizes = index.sizes()
    assert sizes["entries"] <= settings.max_items
    assert sizes["lsh_keys"] == sizes["entries"]
    assert sizes["max_members"] <= settings.members_per_story
    assert sizes["heap"] <= 2 * sizes["entries"] + 1024
    assert max(len(p) for p in index._postings.values()) <= settings.posting_cap
    assert sizes["terms"] <= sizes["df_terms"]
    copies = {stories[i] for i in range(1, 10_000, 2)}
    assert len(copies) == 5  # every copy joined its story, however long the burst
    assert len({stories[i] for i in range(0, 10_000, 2)}) == 5_000


def test_korean_and_cyrillic_are_tokenised(names) -> None:  # type: ignore[no-untyped-def]
    assert words(normalise("김정은 위원장이 블라디보스토크에 도착했다")) == [
        "김정은", "위원장이", "블라디보스토크에", "도착했다"]
    assert stem("саммита") == stem("саммите") and stem("블라디보스토크에") == "블라디보스토크"
    # The gazetteer gives the same units to the same names and nouns in three languages.
    ru = content_words(words(normalise("Ким Чен Ын и Путин провели переговоры")))
    assert ru == ["kim", "jong", "un", "jong", "un", "putin", "провел", "talk"]
    ko = content_words(words(normalise("김정은 위원장이 블라디보스토크에 도착했다")))
    en = content_words(words(normalise("Kim Jong Un arrives in Vladivostok")))
    assert {"kim", "vladivostok", "arriv"} <= set(ko) & set(en)
    index = StoryIndex(StorySettings(), names)
    ru = "Лидер КНДР осмотрел цеха завода имени Гагарина, где собирают истребители Су-35 и Су-57."
    index.assign(item("l1", "Ким Чен Ын посетил авиазавод в Комсомольске-на-Амуре", ru))
    again = index.assign(item("l2", "Ким Чен Ын побывал на авиазаводе в Комсомольске-на-Амуре",
                              ru, hours=1))
    assert again.story_id == "s-l1"


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        StorySettings(window_hours=0)
    with pytest.raises(ValueError):
        StorySettings(lsh_bands=64, num_perm=32)
    with pytest.raises(ValueError):
        StorySettings(similar_threshold=-0.1)
