"""A rate-limit storm against the paced outbox, in real time (fake Slack on loopback).

Slack answers 429 (Retry-After: 1) to every 9th post. Each alert must go out once, in
publication order, within about 1.2x the paced ideal (one message per second): a 429
is the channel asking for a pause, not the alert failing.
"""

from __future__ import annotations

import logging
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.outbox import drain_outbox
from monitor.alerts.sinks import Sinks
from monitor.alerts.slack import SlackDeliverer
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import drain_options
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.test_outbox_outage import posted_ids, queue_published

LOG = logging.getLogger("test.pacing")


@pytest.mark.slow
async def test_429_storm_delivers_each_alert_once_in_order_near_the_paced_ideal(
    tmp_path: Path,
) -> None:
    count = 45 if os.environ.get("MONITOR_SHORT_SLOW") else 200
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    queue_published(store, [t0 + timedelta(seconds=i) for i in range(count)], seen=t0)
    with FakeSlack() as slack:
        slack.rate_limit_every, slack.rate_limit_retry_after = 9, 1
        sinks = Sinks.build(
            {"slack:alerts": SlackDeliverer(DEFAULT_TOKEN, "C0ALERTS1", base_url=slack.base_url)},
            logger=LOG, rng=random.Random(1), pace_per_second=1.0, pace_burst=1)
        started = time.monotonic()
        while store.outbox_counts()["sent"] < count and time.monotonic() - started < 3 * count:
            await drain_outbox(store, sinks, now=lambda: datetime.now(UTC), logger=LOG,
                               options=drain_options(batch_size=20, lease_seconds=120))
        elapsed = time.monotonic() - started
        assert store.outbox_counts()["sent"] == count
        assert posted_ids(slack) == [f"al-{i}" for i in range(1, count + 1)]  # once, in order
        refused = sum(1 for c in slack.calls_to("chat.postMessage")) - count
        assert refused >= count // 9 - 1
    ideal = count - 1  # one message per second after the first
    print(f"\n{count} alerts, {refused} 429s: {elapsed:.1f} s, {elapsed / ideal:.2f}x the ideal")
    assert elapsed <= 1.2 * ideal + 2
    store.close()
