"""Duplicates within one fetched batch.

Feeds repeat themselves: the same item twice with different tracking links, or
an updated copy under the same guid. Removing those before the store and the
classifier see the batch saves work and keeps one batch from alerting twice.
Duplicates *across* polls and outlets are the store's job (unique id and URL).

A guid shared by entries with different links is *not* a duplicate: the id
includes the link then (see ``normalise.article_id``), and the feed is named
once in the log so the operator knows its guids cannot be trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitor.models import Article

log = logging.getLogger("monitor.dedupe")

_feeds_reusing_guids: set[str] = set()
"""Feeds already logged for reusing guids: one line per feed per process, not per poll
(bounded by the number of feeds)."""


def dedupe_batch(articles: Sequence[Article]) -> list[Article]:
    """Keep the first article of each id and of each canonical URL, in the original order.

    Articles without a URL are compared by id only: an empty URL says nothing
    about which story it is.
    """
    seen_ids: set[str] = set()
    seen_urls: set[str] = set()
    kept: list[Article] = []
    for article in articles:
        if article.id in seen_ids or (article.url and article.url in seen_urls):
            continue
        seen_ids.add(article.id)
        if article.url:
            seen_urls.add(article.url)
        kept.append(article)
    _log_reused_guids(kept)
    return kept


def reused_guid(articles: Sequence[Article]) -> tuple[str, int] | None:
    """The first guid that the batch gives to more than one link, with how many links."""
    links: dict[str, set[str]] = {}
    for article in articles:
        if article.guid and article.url:
            links.setdefault(article.guid.strip(), set()).add(article.url)
    for guid, urls in links.items():
        if len(urls) > 1:
            return guid, len(urls)
    return None


def _log_reused_guids(articles: Sequence[Article]) -> None:
    if not articles or articles[0].feed_name in _feeds_reusing_guids:
        return
    found = reused_guid(articles)
    if found is None:
        return
    feed = articles[0].feed_name
    _feeds_reusing_guids.add(feed)
    guid, count = found
    log.warning(
        "feed %r reuses guid %r for %d different links: each link is kept as its own item "
        "(logged once per feed)", feed, guid[:200], count,
    )
