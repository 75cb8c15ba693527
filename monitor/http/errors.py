"""Every way an HTTP request can fail, as one typed ``FetchError``.

Callers (the feed fetch, article pages) record and back off on an error's
``kind``, never on an exception class of whichever HTTP library is underneath,
so the mapping lives here once: a page that times out is a ``timeout`` for the
same reasons a feed that times out is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from monitor.errors import FetchError
from monitor.http.headers import parse_retry_after


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Inside the block, httpx's exceptions come out as ``FetchError``; a ``FetchError`` passes.

    ``url`` is named in the message of an ``invalid_url`` error.
    """
    try:
        yield
    except FetchError:
        raise
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{type(exc).__name__}: {exc or 'timed out'}") from exc
    except httpx.TooManyRedirects as exc:
        raise FetchError("too_many_redirects", str(exc)) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FetchError("invalid_url", f"{exc}: {url}") from exc
    except httpx.NetworkError as exc:
        # Refused, reset or dropped connections: the server or the network, not the resource.
        raise FetchError("connect", f"{type(exc).__name__}: {exc}") from exc
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise FetchError("protocol", f"{type(exc).__name__}: {exc}") from exc


def status_error(response: httpx.Response) -> FetchError:
    """An unwanted status as ``http_status``, with the server's Retry-After uncapped
    (callers bound it for their own purpose, e.g. the poll schedule)."""
    status = response.status_code
    reason = response.reason_phrase or "error"
    return FetchError(
        "http_status",
        f"HTTP {status} {reason} from {response.url}",
        status=status,
        retry_after=parse_retry_after(response.headers, max_seconds=None),
    )
