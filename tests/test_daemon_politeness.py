"""The daemon's own polls, as a publisher sees them: spaced, limited per host, identified.

Runs ``monitor once`` against one local server holding several feeds (one host),
and checks the request log the server kept, not the client's intentions.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.sqlite import SqliteStore
from tests.support.feed_server import FeedServer, RecordedRequest, _Route

REPO = Path(__file__).resolve().parent.parent
BODY = (REPO / "tests" / "fixtures" / "integration" / "desk_rss.xml").read_bytes()
GAP = 0.3


class ArrivalServer(FeedServer):
    """Notes when each request arrived and how many were being served at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    def _record(self, request: RecordedRequest) -> _Route | None:
        self.arrivals.append((time.monotonic(), request.path))
        return super()._record(request)


def write_config(tmp_path: Path, feeds: dict[str, str], **fetch: object) -> Path:
    fetch_lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in fetch.items())
    body = f"""
[fetch]
{fetch_lines}
[storage]
database_url = "sqlite:///{tmp_path}/state.db"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
[alerts]
max_article_age_hours = 0
"""
    body += "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds.items())
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path


@pytest.fixture(autouse=True)
def console_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)


def test_one_host_is_polled_one_at_a_time_with_gaps_and_a_contact(tmp_path: Path) -> None:
    with ArrivalServer() as server:
        feeds = {f"Section {i}": server.add_file(f"/s{i}.xml", BODY) for i in range(4)}
        config = write_config(
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
    with ArrivalServer() as server:
        feeds = {
            "Limited": server.add_status("/limited.xml", 429, headers={"Retry-After": "3600"}),
            "Sibling": server.add_file("/sibling.xml", BODY),
        }
        config = write_config(tmp_path, feeds, per_host_concurrency=1, min_host_gap_seconds=0)
        assert main(["once", "--config", str(config)]) == 0
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
