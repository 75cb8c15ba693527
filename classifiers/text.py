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
