"""Errors raised by the classifier package.

The daemon wraps ``ClassifierError`` into its own ``ClassifyError``; keeping a
single base class here means it never has to know which step failed, while the
message still tells the operator what to do.
"""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class: anything the classifier package reports on purpose."""


class ModelLoadError(ClassifierError):
    """A model artefact is missing, corrupt, tampered with or from another scikit-learn."""


class LexiconError(ClassifierError):
    """The keyword file cannot be read or has the wrong layout."""


class DataError(ClassifierError):
    """A training-data file is malformed (bad JSON, missing field, duplicate id)."""


class TrainingError(ClassifierError):
    """Training cannot proceed (too few examples, only one class, unknown model kind)."""


RETRAIN_HINT = "run `python -m monitor train` to build a model for this installation"
