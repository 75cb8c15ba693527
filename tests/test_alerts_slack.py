"""Slack and webhook deliverers against a local fake of the Slack API, over real HTTP.

slack-sdk's real WebClient/WebhookClient talk to ``FakeSlack``; what is checked
is how each answer (success, 5xx, rate limit, Slack error codes, a connection
dropped after the post) becomes a receipt or a typed ``DeliveryError``, and
that the token or webhook URL never shows up in an error or a log line.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.alerts.base import Deliverer
from monitor.alerts.console import ConsoleDeliverer
from monitor.alerts.slack import SlackDeliverer
from monitor.alerts.webhook import WebhookDeliverer
from monitor.errors import DeliveryError
from monitor.http import parse_retry_after
from monitor.models import Alert
from tests.support.fake_slack import WEBHOOK_SECRET, FakeSlack

TOKEN = "xoxb-1111-2222-SecretTokenValue"


def make_alert(n: int = 1, **changes: Any) -> Alert:
    base: dict[str, Any] = dict(
        id=f"al-{n}",
        article_id=f"art-{n}",
        destination="slack:alerts",
        title=f"Story {n}: <!channel> Pyongyang and Moscow sign accord",
        url=f"https://news.example/{n}",
        source="Example Wire",
        published_at=datetime.now(UTC),
        score=0.87,
        reason="both countries named; treaty terms",
        snippet="The agreement covers mutual assistance.",
        event_type="diplomacy",
    )
    base.update(changes)
    return Alert(**base)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def deliverer(slack: FakeSlack) -> SlackDeliverer:
    return SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, timeout=2.0)


async def failure(deliverer: Deliverer, alert: Alert | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await deliverer.deliver(alert or make_alert())
    assert TOKEN not in str(info.value) and WEBHOOK_SECRET not in str(info.value)
    return info.value


def test_deliverers_satisfy_the_protocol(deliverer: SlackDeliverer, slack: FakeSlack) -> None:
    for d in (deliverer, WebhookDeliverer(slack.webhook_url), ConsoleDeliverer(io.StringIO())):
        assert isinstance(d, Deliverer)
    assert TOKEN not in repr(deliverer)
    assert WEBHOOK_SECRET not in repr(WebhookDeliverer(slack.webhook_url))


# --- success -----------------------------------------------------------------------------
async def test_post_returns_receipt_with_ts_and_channel(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    alert = make_alert()
    receipt = await deliverer.deliver(alert)
    [message] = slack.messages
    assert receipt.alert_id == "al-1" and receipt.destination == "slack:alerts"
    assert receipt.message_id == message.ts
    assert receipt.details["channel"] == "C0ALERTS1"
    assert message.metadata == {
        "event_type": "news_monitor_alert",
        "event_payload": {"alert_id": "al-1", "article_id": "art-1"},
    }
    assert message.blocks and message.blocks[0]["type"] == "header"
    assert "<!channel>" not in (message.text or "")
    [call] = slack.calls
    assert call.authorization == f"Bearer {TOKEN}"
    assert call.params["unfurl_links"] is False


async def test_channel_name_is_accepted_and_resolved_for_lookups(slack: FakeSlack) -> None:
    by_name = SlackDeliverer(TOKEN, "#alerts", base_url=slack.base_url)
    alert = make_alert()
    await SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url).deliver(alert)
    found = await by_name.find_delivered(alert)  # history needs the ID: resolved via list
    assert found is not None and found.message_id == slack.messages[0].ts
    assert [c.method for c in slack.calls][-2:] == ["conversations.list", "conversations.history"]


async def test_hostile_long_alert_is_within_slacks_limits(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    huge = "&<>" * 5000
    await deliverer.deliver(make_alert(title=huge, snippet=huge, reason=huge, source=huge))
    assert len(slack.messages) == 1  # the fake enforces the Block Kit limits


# --- failures ----------------------------------------------------------------------------
async def test_wrong_token_is_parked_without_leaking_it(slack: FakeSlack) -> None:
    wrong = "xoxb-9999-wrong-token"
    err = await failure(SlackDeliverer(wrong, "C0ALERTS1", base_url=slack.base_url))
    assert not err.retryable and "invalid_auth" in str(err) and "SLACK_BOT_TOKEN" in str(err)
    assert wrong not in str(err)
    assert slack.messages == []
    assert slack.calls[0].authorization == f"Bearer {wrong}"


async def test_server_error_is_retryable_and_not_retried_by_the_sdk(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    slack.fail_next(status=500)
    err = await failure(deliverer)
    assert err.retryable and err.retry_after is None
    assert err.ambiguous  # Slack says the operation may have partly happened
    assert len(slack.calls) == 1 and slack.messages == []


async def test_rate_limit_carries_retry_after(deliverer: SlackDeliverer, slack: FakeSlack) -> None:
    slack.fail_next(error="ratelimited", retry_after=7)
    err = await failure(deliverer)
    assert err.retryable and err.retry_after == 7.0 and not err.ambiguous
    assert len(slack.calls) == 1  # slack-sdk's rate-limit handler is off: the outbox waits


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("invalid_auth", "SLACK_BOT_TOKEN"),
        ("not_authed", "SLACK_BOT_TOKEN"),
        ("account_inactive", "reinstall"),
        ("token_revoked", "reinstall"),
        ("channel_not_found", "SLACK_CHANNEL"),
        ("not_in_channel", "/invite @"),
        ("is_archived", "archived"),
        ("invalid_blocks", "bug"),
        ("msg_too_long", "bug"),
        ("missing_scope", "chat:write"),
        ("some_future_error", "refused"),
    ],
)
async def test_permanent_errors_are_parked_with_a_fix(
    deliverer: SlackDeliverer, slack: FakeSlack, code: str, hint: str
) -> None:
    slack.fail_next(error=code)
    err = await failure(deliverer)
    assert not err.retryable and code in str(err) and hint in str(err)


@pytest.mark.parametrize(
    ("code", "ambiguous"),
    [
        ("internal_error", True),
        ("fatal_error", True),
        ("service_unavailable", False),
        ("request_timeout", False),
    ],
)
async def test_temporary_errors_are_retryable(
    deliverer: SlackDeliverer, slack: FakeSlack, code: str, ambiguous: bool
) -> None:
    slack.fail_next(error=code)
    err = await failure(deliverer)
    assert err.retryable and err.ambiguous is ambiguous


async def test_unknown_channel_is_parked(slack: FakeSlack) -> None:
    err = await failure(SlackDeliverer(TOKEN, "C0NOSUCH99", base_url=slack.base_url))
    assert not err.retryable and "channel_not_found" in str(err)


async def test_dropped_connection_is_ambiguous_and_lookup_finds_the_post(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    alert = make_alert()
    slack.drop_after_post_next()
    err = await failure(deliverer, alert)
    assert err.retryable and err.ambiguous
    assert len(slack.calls_to("chat.postMessage")) == 1  # no automatic re-send after the reset
    [message] = slack.messages
    found = await deliverer.find_delivered(alert)
    assert found is not None and found.message_id == message.ts
    assert found.details == {"channel": "C0ALERTS1", "found_by": "history"}
    [history] = slack.calls_to("conversations.history")
    assert history.params["include_all_metadata"] == "1"
    assert history.params["limit"] == "200"


async def test_timeout_is_ambiguous(slack: FakeSlack) -> None:
    slow = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, timeout=0.2)
    slack.stall_next(0.6)
    err = await failure(slow)
    assert err.retryable and err.ambiguous and "Timeout" in str(err)


async def test_refused_connection_is_retryable_but_not_ambiguous() -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    d = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=f"http://127.0.0.1:{port}/api/")
    err = await failure(d)
    assert err.retryable and not err.ambiguous and "nothing was sent" in str(err)


# --- lookup ------------------------------------------------------------------------------
async def test_lookup_ignores_other_alerts_and_foreign_metadata(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    await deliverer.deliver(make_alert(2))
    slack.add_message("C0ALERTS1", "someone else", metadata={
        "event_type": "other_app_event", "event_payload": {"alert_id": "al-1"}})
    slack.add_message("C0OTHER22", "wrong channel", metadata={
        "event_type": "news_monitor_alert", "event_payload": {"alert_id": "al-1"}})
    assert await deliverer.find_delivered(make_alert(1)) is None
    assert await deliverer.find_delivered(make_alert(2)) is not None


async def test_lookup_follows_the_cursor_within_the_window() -> None:
    with FakeSlack(token=TOKEN, history_page_size=3) as slack:
        d = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, lookup_window=10)
        await d.deliver(make_alert(1))
        for i in range(7):
            slack.add_message("C0ALERTS1", f"chatter {i}")
        found = await d.find_delivered(make_alert(1))  # 8th newest: third page
        assert found is not None and len(slack.calls_to("conversations.history")) == 3
        for i in range(5):
            slack.add_message("C0ALERTS1", f"more chatter {i}")
        assert await d.find_delivered(make_alert(1)) is None  # 13th newest: outside the window


async def test_lookup_failure_raises_instead_of_saying_not_found(
    deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    slack.fail_next(error="missing_scope", method="conversations.history")
    with pytest.raises(DeliveryError) as info:
        await deliverer.find_delivered(make_alert())
    assert not info.value.retryable and "channels:history" in str(info.value)
    slack.fail_next(status=503, method="conversations.history")
    with pytest.raises(DeliveryError) as info:
        await deliverer.find_delivered(make_alert())
    assert info.value.retryable


# --- secrets -----------------------------------------------------------------------------
async def test_token_never_reaches_the_logs(
    deliverer: SlackDeliverer, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.fail_next(status=500)
    slack.fail_next(error="invalid_auth")
    slack.drop_after_post_next()
    for _ in range(3):
        await failure(deliverer)
    await deliverer.deliver(make_alert())
    await deliverer.find_delivered(make_alert())
    assert TOKEN not in caplog.text
    # slack-sdk's own failure lines are silenced: the outbox writes the one line per failure.
    assert [r.name for r in caplog.records if r.name.startswith("slack_sdk")] == []


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"Retry-After": "30"}) == 30.0
    assert parse_retry_after({"retry-after": ["5"]}) == 5.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


# --- webhook -----------------------------------------------------------------------------
async def test_webhook_posts_without_metadata(slack: FakeSlack) -> None:
    d = WebhookDeliverer(slack.webhook_url)
    receipt = await d.deliver(make_alert())
    assert receipt.message_id == "webhook:al-1"
    [message] = slack.messages
    assert message.metadata is None and message.blocks
    assert not d.supports_lookup and await d.find_delivered(make_alert()) is None


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [(404, "no_service", False), (403, "invalid_token", False), (410, "channel_is_archived", False),
     (500, "internal_error", True), (429, "rate_limited", True)],
)
async def test_webhook_errors(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture, status: int, error: str, retryable: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.fail_next(status=status, error=error, method="webhook")
    err = await failure(WebhookDeliverer(slack.webhook_url))
    assert err.retryable is retryable and error in str(err)
    if status == 429:
        assert err.retry_after == 1.0
    assert WEBHOOK_SECRET not in caplog.text


async def test_webhook_dropped_connection_is_ambiguous(slack: FakeSlack) -> None:
    slack.drop_after_post_next(method="webhook")
    err = await failure(WebhookDeliverer(slack.webhook_url))
    assert err.retryable and err.ambiguous and len(slack.messages) == 1


async def test_webhook_wrong_secret_is_parked(slack: FakeSlack) -> None:
    url = slack.webhook_url.replace(WEBHOOK_SECRET, "guessed")
    err = await failure(WebhookDeliverer(url))
    assert not err.retryable and "invalid_token" in str(err) and "guessed" not in str(err)


# --- console -----------------------------------------------------------------------------
async def test_console_prints_and_returns_a_receipt() -> None:
    out = io.StringIO()
    d = ConsoleDeliverer(out)
    receipt = await d.deliver(make_alert(title="\x1b[2JWiped?"))
    assert receipt.message_id == "console:al-1" and not d.supports_lookup
    assert "[2JWiped?" in out.getvalue() and "\x1b" not in out.getvalue()
    assert await d.find_delivered(make_alert()) is None
