"""North Korea–Russia cooperation classifier: text in, scores and explanations out.

Public API::

    import classifiers
    model = classifiers.load()            # packaged default, or load(path)
    model.predict_proba(texts)            # np.ndarray of P(about DPRK–Russia cooperation)
    model.score(texts)                    # list[Scored]: score, match, reason, event_type, keywords
    model.explain(text)                   # Explanation with aliases and top features
    model.threshold, model.version, model.metadata
    classifiers.article_text(title, summary)   # the text every caller feeds the model

``Scorer`` is what a caller may rely on (``monitor`` holds nothing more specific), and
``tests/test_classifier_contract.py`` checks that a model honours it.

Training and evaluation live in ``classifiers.train`` and ``classifiers.evaluate``.
This package never imports the daemon (``monitor``).

The model classes are imported on first use (PEP 562 ``__getattr__``): importing
``classifiers`` for ``article_text`` or ``Scorer`` must not load scikit-learn, because
the daemon's feed-parser processes share ``monitor.models`` and run under a memory limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from classifiers.errors import ClassifierError, ModelLoadError
from classifiers.text import article_text

if TYPE_CHECKING:
    from classifiers.model import Explanation, Model, Scored, load


@runtime_checkable
class Scorer(Protocol):
    """What the daemon needs from a model: batch scores with a verdict and a reason.

    ``score`` returns one ``Scored`` per text, in order, with ``score`` in [0, 1] and
    ``match`` meaning ``score >= threshold`` (the model's own threshold unless one is
    passed). It is deterministic, a batch scores each text as it would alone, and
    empty or non-Latin text is scored, not refused. ``explain`` gives the same score
    for one text with the evidence behind it.
    """

    threshold: float
    version: str

    def score(self, texts: Sequence[str], *, threshold: float | None = None) -> list[Scored]:
        ...

    def explain(self, text: str, *, threshold: float | None = None) -> Explanation:
        ...


_LAZY = {"Explanation", "Model", "Scored", "load"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from classifiers import model

        value = getattr(model, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'classifiers' has no attribute {name!r}")


__all__ = ["ClassifierError", "Explanation", "Model", "ModelLoadError", "Scored", "Scorer",
           "article_text", "load"]
