"""Duplicates within one fetched batch.

Feeds repeat themselves: the same item twice with different tracking links, or
an updated copy under the same guid. Removing those before the store and the
classifier see the batch saves work and keeps one batch from alerting twice.
Duplicates *across* polls and outlets are the store's job (unique id and URL).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.models import Article


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
    return kept
