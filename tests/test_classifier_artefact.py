"""Model files: safe loading, version stamps, and refusal of anything suspicious."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

import classifiers
from classifiers.artefact import metadata_path, save_artefact, sha256_file
from classifiers.data import load_examples
from classifiers.errors import ClassifierError, ModelLoadError
from classifiers.keywords import KeywordLexicon
from classifiers.train import fit_pipeline

PROBES = ["Pyongyang ships shells to Moscow", "Seoul stocks close higher"]
HINT = "python -m monitor train"


class NotAnEstimator:
    """A type no model of ours contains: stands in for a smuggled payload."""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    examples = load_examples()
    few = [e for e in examples if e.label == 1][:40] + [e for e in examples if e.label == 0][:60]
    pipe = fit_pipeline(few, "logreg", lexicon=KeywordLexicon.from_toml().to_dict())
    path = tmp_path_factory.mktemp("model") / "m.skops"
    save_artefact({"classifier": pipe, "event_model": None}, path,
                  {"model_version": "test-1", "threshold": 0.5, "kind": "logreg"})
    return path


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.skops"
    target.write_bytes(saved.read_bytes())
    metadata_path(target).write_text(metadata_path(saved).read_text())
    return target


def _edit_metadata(path: Path, **changes: object) -> None:
    meta = json.loads(metadata_path(path).read_text())
    meta.update(changes)
    metadata_path(path).write_text(json.dumps(meta))


def test_round_trip(saved: Path) -> None:
    model = classifiers.load(saved)
    assert model.version == "test-1" and model.threshold == 0.5
    meta = model.metadata
    assert meta["artefact_sha256"] == sha256_file(saved)
    assert set(meta["versions"]) == {"scikit-learn", "skops", "python"}
    assert "classifiers.features.Annotator" in meta["trusted_types"]
    again = classifiers.load(saved)
    assert np.array_equal(model.predict_proba(PROBES), again.predict_proba(PROBES))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o644


def test_other_scikit_learn_version_is_refused(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    meta = json.loads(metadata_path(path).read_text())
    _edit_metadata(path, versions={**meta["versions"], "scikit-learn": "0.24.2"})
    with pytest.raises(ModelLoadError, match=r"scikit-learn 0\.24\.2") as info:
        classifiers.load(path)
    assert HINT in str(info.value)


def test_tampered_file_is_refused(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum") as info:
        classifiers.load(path)
    assert HINT in str(info.value)


def test_corrupt_file_is_refused_even_with_a_matching_checksum(saved: Path,
                                                               tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    path.write_bytes(b"PK\x03\x04 this is not a model")
    _edit_metadata(path, artefact_sha256=sha256_file(path))
    with pytest.raises(ModelLoadError, match="corrupt") as info:
        classifiers.load(path)
    assert HINT in str(info.value)


def test_untrusted_types_are_never_loaded(tmp_path: Path, saved: Path) -> None:
    path = _copy(saved, tmp_path)
    sio.dump({"classifier": NotAnEstimator()}, path)
    _edit_metadata(path, artefact_sha256=sha256_file(path))
    with pytest.raises(ModelLoadError, match=r"untrusted types .*NotAnEstimator"):
        classifiers.load(path)


def test_saving_unreviewed_types_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "evil.skops"
    with pytest.raises(ClassifierError, match="unreviewed types"):
        save_artefact({"classifier": NotAnEstimator()}, target,
                      {"model_version": "x", "threshold": 0.5})
    assert not target.exists() and not list(tmp_path.iterdir())


def test_missing_files_are_reported(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found") as info:
        classifiers.load(tmp_path / "absent.skops")
    assert HINT in str(info.value)
    path = _copy(saved, tmp_path)
    metadata_path(path).unlink()
    with pytest.raises(ModelLoadError, match="metadata"):
        classifiers.load(path)
    metadata_path(path).write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        classifiers.load(path)
