"""Saving and loading model artefacts safely.

A model is two files side by side: ``NAME.skops`` (the fitted estimators, in
skops' format, which unlike pickle does not execute code on load) and
``NAME.json`` (who made it, from what, with which library versions, at which
threshold and with which measured quality).

Loading refuses, with a ``ModelLoadError`` that says how to fix it:
- a file whose sha256 differs from the one recorded at save time (corrupt or
  edited after training);
- a model pickled by another scikit-learn major.minor (estimator internals change
  between minor releases; silently wrong scores are worse than no scores);
- any type in the file outside ``TRUSTED_TYPES`` (never ``trusted=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sklearn
import skops
import skops.io as sio

from classifiers.errors import RETRAIN_HINT, ClassifierError, ModelLoadError

MODELS_DIR = Path(__file__).resolve().parent / "models"
FORMAT_VERSION = 1

#: Types skops does not trust by default that our artefacts legitimately contain.
#: Computed from real artefacts (``untrusted_types``) and reviewed by hand: our own
#: transformers, plus scikit-learn internals skops has no explicit allow-list for.
#: Anything else in a file means it was not made by ``classifiers.train``.
TRUSTED_TYPES = frozenset({
    "classifiers.features.Annotator",
    "classifiers.features.CompactTfidfVectorizer",
    "classifiers.features.HashedCharNgrams",
    "classifiers.features.MentionText",
    "classifiers.features.RuleFeatures",
    "classifiers.features.TailColumns",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils._bunch.Bunch",
})


def default_model_path() -> Path:
    """The packaged default model (``classifiers/models/default.skops``)."""
    return MODELS_DIR / "default.skops"


def metadata_path(model_path: Path | str) -> Path:
    return Path(model_path).with_suffix(".json")


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    return {"scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "python": platform.python_version()}


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def untrusted_types(path: Path | str) -> list[str]:
    """The types skops would refuse to load from ``path`` without being told to trust them."""
    return sorted(sio.get_untrusted_types(file=Path(path)))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artefact(bundle: Mapping[str, Any], path: Path | str,
                  metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``bundle`` (a dict of estimators) and its metadata; returns the metadata written.

    The skops file is written first and checked against ``TRUSTED_TYPES`` before
    it replaces anything, so a model that could not be loaded is never installed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".skops")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        sio.dump(dict(bundle), tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        unexpected = sorted(set(untrusted_types(tmp)) - TRUSTED_TYPES)
        if unexpected:
            raise ClassifierError(
                f"refusing to save a model containing unreviewed types: {', '.join(unexpected)}"
            )
        meta = dict(metadata)
        meta.update({
            "format_version": FORMAT_VERSION,
            "artefact_file": path.name,
            "artefact_sha256": sha256_file(tmp),
            "artefact_bytes": tmp.stat().st_size,
            "trusted_types": sorted(set(untrusted_types(tmp))),
            "versions": library_versions(),
        })
        tmp.chmod(0o644)  # mkstemp makes 0600; a model is package data, not a secret
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _atomic_write_bytes(
        metadata_path(path),
        (json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"),
    )
    return meta


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The JSON beside a model file, validated enough to decide whether to load it."""
    meta_file = metadata_path(path)
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"model metadata {meta_file} is missing; {RETRAIN_HINT}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model metadata {meta_file} is unreadable ({exc}); "
                             f"{RETRAIN_HINT}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("versions"), dict):
        raise ModelLoadError(f"model metadata {meta_file} has no version stamp; {RETRAIN_HINT}")
    return meta


def check_compatible(meta: Mapping[str, Any], where: str) -> None:
    built = str(meta["versions"].get("scikit-learn", "unknown"))
    if _major_minor(built) != _major_minor(sklearn.__version__):
        raise ModelLoadError(
            f"model {where} was built with scikit-learn {built} but this installation has "
            f"{sklearn.__version__}; {RETRAIN_HINT}"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"model {where} has artefact format {meta.get('format_version')!r}, "
                             f"expected {FORMAT_VERSION}; {RETRAIN_HINT}")


def load_artefact(path: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bundle, metadata) from a model file, or ``ModelLoadError`` saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} not found; {RETRAIN_HINT}")
    meta = read_metadata(path)
    check_compatible(meta, str(path))
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from exc
    if actual != meta.get("artefact_sha256"):
        raise ModelLoadError(f"model file {path} does not match the checksum in its metadata "
                             f"(corrupt or modified after training); {RETRAIN_HINT}")
    try:
        found = untrusted_types(path)
    except Exception as exc:  # skops raises assorted errors on damaged archives
        raise ModelLoadError(f"model file {path} is corrupt ({exc}); {RETRAIN_HINT}") from exc
    unexpected = sorted(set(found) - TRUSTED_TYPES)
    if unexpected:
        raise ModelLoadError(f"model file {path} contains untrusted types "
                             f"{', '.join(unexpected)}; refusing to load it. {RETRAIN_HINT}")
    try:
        bundle = sio.load(path, trusted=found)
    except Exception as exc:
        raise ModelLoadError(f"model file {path} could not be loaded ({exc}); "
                             f"{RETRAIN_HINT}") from exc
    if not isinstance(bundle, dict) or "classifier" not in bundle:
        raise ModelLoadError(f"model file {path} does not hold a classifier; {RETRAIN_HINT}")
    return bundle, meta
