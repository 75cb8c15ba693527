"""Start-up checks shared by ``check-config``, ``run`` and ``once``.

``load_settings`` validates the file's shape; these checks look at what the
settings point to (the model, the keyword file, ``file:`` feeds, optional
extras), so that ``check-config`` passing means ``run`` will start. They are
kept here, apart from ``monitor.app``, so the CLI can run them without building
the daemon; only ``load_model=True`` imports scikit-learn.

The model's JSON sidecar is read directly (``<model>.json``, written by
``classifiers.artefact.save_artefact``) instead of through ``classifiers.artefact``,
which imports scikit-learn at module level: ``status`` shows the model's version
and threshold and must start in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from monitor.errors import ClassifyError, SettingsError
from monitor.settings import Settings

__all__ = ["Finding", "ModelInfo", "keywords_drift", "model_info", "preflight"]

log = logging.getLogger("monitor.preflight")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: an ``error`` stops ``check-config`` (exit 2) and the daemon; a
    ``warning`` is printed or logged and changes nothing."""

    level: Literal["error", "warning"]
    message: str
    stops_daemon: bool = True
    """Whether ``run``/``once`` refuse to start on it (an error that only weakens the
    daemon, such as one missing ``file:`` feed, is logged as a warning there)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the model's sidecar says, without loading the model."""

    path: Path
    version: str | None
    threshold: float | None
    keywords_sha256: str | None
    created_at: str | None


def model_path(settings: Settings) -> Path:
    """The model the daemon would load: configured, else a retrained one beside the
    database (``monitor.retrain.effective_model_file``), else the packaged default."""
    from monitor.retrain import effective_model_file

    chosen = effective_model_file(settings)
    if chosen is not None:
        return chosen
    import classifiers  # light: the package loads scikit-learn only on first model use

    return Path(classifiers.__file__).resolve().parent / "models" / "default.skops"


def model_info(settings: Settings) -> ModelInfo:
    """The sidecar's version, threshold and keyword hash (None for what it lacks).

    Raises ``ClassifyError`` when the sidecar is missing or unreadable: the daemon
    could not load that model either.
    """
    path = model_path(settings)
    meta_file = path.with_suffix(".json")
    try:
        meta: Any = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClassifyError(f"model metadata {meta_file} is missing (model {path}); "
                            "run `python -m monitor train`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClassifyError(f"model metadata {meta_file} is unreadable ({exc}); "
                            "run `python -m monitor train`") from exc
    if not isinstance(meta, dict):
        raise ClassifyError(f"model metadata {meta_file} is not a JSON object; "
                            "run `python -m monitor train`")
    threshold = meta.get("threshold")
    return ModelInfo(
        path=path,
        version=str(meta["model_version"]) if meta.get("model_version") else None,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        keywords_sha256=meta.get("keywords_sha256") or None,
        created_at=meta.get("created_at"),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def keywords_drift(settings: Settings) -> str | None:
    """A warning when the keyword file differs from the one the model was trained with.

    The model's rule features were fitted on the old terms, while the daemon's
    pre-filter and story names read the new file at once: new aliases are looked
    for but not weighted until ``train`` runs. None when they match, or when there
    is nothing to compare (no hash recorded, file or sidecar unreadable: other
    checks report those).
    """
    try:
        info = model_info(settings)
        current = _sha256(settings.keywords_file)
    except (ClassifyError, OSError):
        return None
    if info.keywords_sha256 is None or info.keywords_sha256 == current:
        return None
    return (f"{settings.keywords_file} changed since model {info.version or info.path} was "
            "trained (its hash differs from the one the model records): new terms are not "
            "weighted by the model until you run `python -m monitor train`")


def _file_feed_problems(settings: Settings) -> list[str]:
    problems = []
    for feed in settings.feeds:
        parts = urlsplit(feed.url)
        if not feed.enabled or parts.scheme != "file":
            continue
        path = Path(url2pathname(parts.path))
        if not path.is_file():
            problems.append(f"feed {feed.name!r}: {feed.url} does not exist (or is not a "
                            "file); fix the path (relative file: URLs are relative to the "
                            "config file) or set enabled = false")
    return problems


def _database_problem(settings: Settings) -> str | None:
    """Whether the daemon could create or write its database (never creates it)."""
    import os

    from monitor.store import is_postgres, sqlite_path

    if is_postgres(settings.storage.database_url):
        # A server, not a file: whether it answers is the daemon's own start-up check.
        return None
    raw = sqlite_path(settings.storage.database_url)
    if raw == ":memory:":
        return None
    path = Path(raw)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return f"storage: {path} exists but is not readable and writable by this user"
        return None
    parent = path.parent.resolve()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        return (f"storage: {path} does not exist and {parent} is not writable, so it cannot "
                "be created; fix the permissions or storage.database_url")
    return None


def preflight(settings: Settings, *, load_model: bool) -> list[Finding]:
    """Everything that would stop or weaken ``run``, beyond the file's own validity.

    ``load_model`` loads the model (scikit-learn, about a second) to prove it
    loads; without it only its sidecar is read. Missing ``file:`` feeds are errors
    here; ``run`` logs them as warnings (the feed fails its polls, the rest work).
    """
    from monitor.countries import load_prefilter_terms

    findings: list[Finding] = []
    try:
        load_prefilter_terms(settings.keywords_file)
    except SettingsError as exc:
        findings.append(Finding("error", f"keyword file {settings.keywords_file}: {exc}"))
    try:
        model_info(settings)
        if load_model:
            from monitor.classify import ArticleClassifier

            ArticleClassifier.load(model_path(settings), threshold=settings.classifier.threshold)
    except ClassifyError as exc:
        findings.append(Finding("error", f"model: {exc}"))
    drift = keywords_drift(settings)
    if drift:
        findings.append(Finding("warning", drift))
    if settings.fulltext.enabled:
        from monitor.fulltext import require_extractor

        try:
            require_extractor()
        except SettingsError as exc:
            findings.append(Finding("error", str(exc)))
    findings.extend(Finding("error", p, stops_daemon=False)
                    for p in _file_feed_problems(settings))
    problem = _database_problem(settings)
    if problem:
        # The daemon's own write check reports it (exit 1, "cannot be written at start-up").
        findings.append(Finding("error", problem, stops_daemon=False))
    return findings
