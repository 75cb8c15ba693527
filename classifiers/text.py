"""The article text the model sees, owned in one place.

Training (``classifiers.data.Example``), serving (``monitor.models.Article``) and the
CLI (``score``/``eval`` input) all call :func:`article_text`, so the text a model is
trained on and the text it scores in production can never drift apart. This module
imports nothing, so the daemon's light processes (feed parsers) can use it without
loading scikit-learn.
"""

from __future__ import annotations


def article_text(title: str, summary: str) -> str:
    """Headline and description joined as "title. summary"; the headline alone without one."""
    return f"{title}. {summary}".strip() if summary else title


def trim_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters on a word boundary, with an ellipsis.

    One rule for every quote the system shows (the ``why`` clause, Slack alerts):
    a word cut in half reads as a typo; text without spaces nearby (Chinese,
    Japanese) is cut where it must be.
    """
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else a hard cut (CJK)
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"
