"""Typed errors for every stage.

Each stage raises one of these so that the pipeline can catch failures per feed
(or per alert) and record *what kind* of failure happened, instead of catching
bare ``Exception`` and losing the reason. This module imports nothing of ours.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class: anything the daemon knows how to report and survive."""


class SettingsError(MonitorError):
    """The configuration cannot be used; the message names the file, key and fix."""


class FetchError(MonitorError):
    """A feed could not be fetched.

    ``kind`` is a short machine-readable label (``timeout``, ``http_status``,
    ``too_large``, ``too_many_redirects``, ``connect``, ``file``, ``invalid_url``,
    ``host_paused``, ``blocked_address`` for article pages, ``redirect_blocked`` for a
    feed redirect into the internal network)
    so that counters and back-off can tell failure types apart.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class ParseError(MonitorError):
    """The fetched bytes could not be turned into feed entries at all."""


class HostileFeedError(ParseError):
    """A feed was refused, or its parse stopped, by a safety limit rather than for bad syntax.

    ``kind`` tells the limits apart for counters and logs: ``xml_entities`` (entity
    declarations refused before parsing), ``parse_timeout``, ``parse_memory`` and
    ``parse_crashed`` (the parser worker hit its wall-clock or memory limit, or died).
    It is a ``ParseError`` so code that handles parse failures per feed handles these too.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[type[HostileFeedError], tuple[str, str]]:
        # The default reduction would call cls(message) and lose ``kind``; this error
        # crosses a process boundary when it comes from the parser pool.
        return (type(self), (self.kind, str(self)))


class ClassifyError(MonitorError):
    """The model could not score an article (missing or broken model)."""


class StoreError(MonitorError):
    """The database refused a read or a write."""


class DeliveryError(MonitorError):
    """An alert could not be delivered.

    ``retryable`` says whether the outbox should try again later (network error,
    rate limit, 5xx) or park the alert (bad token, unknown channel). ``ambiguous``
    marks failures after which the message may nevertheless have been posted,
    so the next attempt must look for it in the channel before posting again.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.ambiguous = ambiguous
