"""A story's score, event type and quote come from its members, and a thread's parent
shows the strongest evidence once a stronger report joins (issue 12, part 5).

The unit tests pin the rule (``monitor.story_evidence``); the last test runs the real
store and outbox against the fake Slack: a vague first report is posted as the parent,
a precise one from another outlet joins, and the parent's edit (chat.update) carries the
story's score, the stronger report's type and its quoted clause.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.outbox import drain_outbox
from monitor.alerts.slack import SlackDeliverer
from monitor.decide import decide
from monitor.models import Article, MemberEvidence, StoryLink, Verdict
from monitor.store.sqlite import SqliteStore
from monitor.store.sqlite_stories import own_story_id
from monitor.story_evidence import BONUS, MAX_CORROBORATING, story_evidence
from tests.support.defaults import alert_rules, drain_options
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack


def member(score: float, source: str, event: str | None = "diplomacy/summit", *,
           match: bool = True, why: str | None = None) -> MemberEvidence:
    return MemberEvidence(score=score, match=match, event_type=event if match else None,
                          source=source, why=why)


def test_the_strongest_member_sets_the_score_and_other_outlets_add_a_bounded_bonus() -> None:
    alone = story_evidence([member(0.8, "Wire")])
    assert alone is not None and alone.score == pytest.approx(0.8) and alone.outlets == 1
    two = story_evidence([member(0.7, "Wire"), member(0.9, "Herald")])
    assert two is not None and two.best_score == 0.9
    assert two.score == pytest.approx(0.9 + 0.1 * BONUS)
    # The same outlet again, or a report that does not match, corroborates nothing.
    same = story_evidence([member(0.9, "Wire"), member(0.85, "Wire"),
                           member(0.3, "Courier", match=False)])
    assert same is not None and same.score == pytest.approx(0.9) and same.outlets == 1
    many = story_evidence([member(0.95, f"Outlet {i}") for i in range(10)])
    assert many is not None
    assert many.score == pytest.approx(0.95 + 0.05 * BONUS * MAX_CORROBORATING)
    assert many.score < 1.0
    assert story_evidence([]) is None


def test_the_event_type_is_the_score_weighted_vote_and_the_quote_agrees() -> None:
    evidence = story_evidence([
        member(0.9, "Wire", "arms/military", why="Moscow asks Pyongyang for shells."),
        member(0.8, "Herald", why="Kim and Putin to meet at Vostochny."),
        member(0.75, "Courier", why="Putin says he will host Kim."),
    ])
    assert evidence is not None
    assert evidence.event_type == "diplomacy/summit"  # 1.55 against 0.9
    assert (evidence.why, evidence.why_source) == ("Kim and Putin to meet at Vostochny.",
                                                   "Herald")
    tie = story_evidence([member(0.6, "Wire", "economy/labour/trade"),
                          member(0.6, "Herald", "arms/military", why="Rail link carries arms.")])
    assert tie is not None and tie.event_type == "economy/labour/trade"  # earlier, as strong
    assert tie.why == "Rail link carries arms."  # no quote of that type: the strongest one


NOW = datetime.now(UTC).replace(microsecond=0)
VAGUE = ("Kim may travel to Russia this autumn, Seoul says",
         "South Korean officials said a trip by the North Korean leader was possible.")
PRECISE = ("North Korea agrees to ship artillery shells to Russia after Kim–Putin talks",
           "Russia will receive artillery shells from North Korea under a deal agreed at the "
           "summit, officials in Seoul said on Wednesday.")
PRECISE_WHY = ("Russia will receive artillery shells from North Korea under a deal agreed at "
               "the summit, officials in Seoul said on Wednesday.")


def article(i: int, source: str, title: str, summary: str, at: datetime) -> Article:
    return Article(id=f"{i:032x}", feed_name=source, source=source,
                   url=f"https://{source.lower()}.example/{i}", title=title, summary=summary,
                   published_at=at, first_seen_at=at)


async def test_a_stronger_member_lifts_the_parents_score_type_and_quote(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    rules = alert_rules("slack:C0ALERTS1", max_article_age_hours=0)
    story = own_story_id(f"{1:032x}")
    first = article(1, "Wire", *VAGUE, NOW)
    v1 = Verdict(first.id, 0.62, True, 0.5, "DPRK: Kim; Russia: Russia", "m1",
                 "diplomacy/summit", why="Kim may travel to Russia this autumn, Seoul says")
    second = article(2, "Herald", *PRECISE, NOW + timedelta(minutes=30))
    v2 = Verdict(second.id, 0.97, True, 0.5, "DPRK: North Korea; Russia: Russia", "m1",
                 "arms/military", why=PRECISE_WHY)
    log = logging.getLogger("test.story_evidence")
    with FakeSlack() as slack:
        deliverer = SlackDeliverer(DEFAULT_TOKEN, "C0ALERTS1", base_url=slack.base_url)

        async def drain(at: datetime) -> None:
            await drain_outbox(store, deliverer, now=lambda: at, logger=log,
                               rng=random.Random(1), options=drain_options())

        store.record_articles([(first, v1, decide(first, v1, rules, now=NOW).alert,
                                StoryLink(story, True))])
        await drain(NOW + timedelta(minutes=1))
        [parent] = slack.top_level()
        posted = json.dumps(parent.blocks, ensure_ascii=False)
        assert "*Score*\\n0.62" in posted and "diplomacy/summit" in posted
        assert parent.edits == 0

        store.record_articles([(second, v2, decide(second, v2, rules, now=NOW).alert,
                                StoryLink(story, False))])
        await drain(NOW + timedelta(minutes=31))
    store.close()
    assert parent.edits == 1 and len(slack.top_level()) == 1
    edited = json.dumps(parent.blocks, ensure_ascii=False)
    header = parent.blocks[0]["text"]["text"]
    assert header == "DPRK–Russia alert: arms/military"
    assert f"*Story score*\\n{0.97 + 0.03 * BONUS:.2f} (this report 0.62)" in edited
    assert f"“{PRECISE_WHY}” (Herald, strongest report)" in edited
    assert "*Outlet*\\nWire · EN" in edited  # still the parent's own report and link
    [reply] = slack.replies_to(parent.ts)
    assert "*Herald · EN*" in json.dumps(reply.blocks, ensure_ascii=False)
