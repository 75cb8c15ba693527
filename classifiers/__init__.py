"""North Korea–Russia cooperation classifier: text in, scores and explanations out.

Public API::

    import classifiers
    model = classifiers.load()            # packaged default, or load(path)
    model.predict_proba(texts)            # np.ndarray of P(about DPRK–Russia cooperation)
    model.score(texts)                    # list[Scored]: score, match, reason, event_type, keywords
    model.explain(text)                   # Explanation with aliases and top features
    model.threshold, model.version, model.metadata

Training and evaluation live in ``classifiers.train`` and ``classifiers.evaluate``.
This package never imports the daemon (``monitor``).
"""

from __future__ import annotations

from classifiers.errors import ClassifierError, ModelLoadError
from classifiers.model import Explanation, Model, Scored, load

__all__ = ["ClassifierError", "Explanation", "Model", "ModelLoadError", "Scored", "load"]
