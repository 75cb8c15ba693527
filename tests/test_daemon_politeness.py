"""The daemon's own polls, as a publisher sees them: spaced, limited per host, identified.

Runs ``monitor once`` against one local server holding several feeds (one host),
and checks the request log the server kept, not the client's intentions.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.feed_server import TimedServer

BODY = (Path(__file__).parent / "fixtures" / "integration" / "desk_rss.xml").read_bytes()
GAP = 0.3


def config_with_fetch(tmp_path: Path, feeds: dict[str, str], **fetch: object) -> Path:
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in fetch.items())
    return write_config(tmp_path, feeds, "[fetch]\n" + lines)


@pytest.fixture(autouse=True)
def console_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)


def test_one_host_is_polled_one_at_a_time_with_gaps_and_a_contact(tmp_path: Path) -> None:
    with TimedServer() as server:
        feeds = {f"Section {i}": server.add_file(f"/s{i}.xml", BODY) for i in range(4)}
        config = config_with_fetch(
            tmp_path, feeds, per_host_concurrency=1, min_host_gap_seconds=GAP,
            contact_url="mailto:desk@example.org",
        )
        assert main(["once", "--config", str(config)]) == 0
        times = sorted(t for t, _ in server.arrivals)
        agents = {r.headers.get("user-agent") for r in server.requests}
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= GAP - 0.02, gaps
    assert len(agents) == 1
    assert "mailto:desk@example.org" in agents.pop()


def test_a_host_that_asks_for_a_long_pause_is_left_alone(tmp_path: Path) -> None:
    with TimedServer() as server:
        feeds = {
            "Limited": server.add_status("/limited.xml", 429, headers={"Retry-After": "3600"}),
            "Sibling": server.add_file("/sibling.xml", BODY),
        }
        config = config_with_fetch(tmp_path, feeds, per_host_concurrency=1,
                                   min_host_gap_seconds=0)
        assert main(["once", "--config", str(config)]) == 4  # every feed failed
        sibling_hits = server.hits("/sibling.xml")

    assert sibling_hits == 0  # same host, asked in the same cycle, after the 429
    store = SqliteStore(tmp_path / "state.db")
    try:
        states = {s.name: s for s in store.all_feed_states()}
    finally:
        store.close()
    sibling = states["Sibling"]
    assert sibling.last_error is not None and sibling.last_error.startswith("host_paused")
    assert (sibling.next_poll_at - sibling.last_attempt_at).total_seconds() >= 3500
