"""`feeds import-opml` / `export-opml` through the real CLI, on a copy of the shipped config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    for name in ("monitor.toml", "keywords.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / name)
    return tmp_path / "monitor.toml"


def test_export_then_import_round_trip(config: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "feeds.opml"
    assert main(["feeds", "export-opml", "--config", str(config), "--output", str(out)]) == 0
    before = config.read_bytes()
    assert main(["feeds", "import-opml", str(out), "--config", str(config)]) == 0
    assert config.read_bytes() == before  # every feed already present: nothing rewritten
    assert "0 feed(s) added" in capsys.readouterr().out


def test_import_adds_new_feeds_and_keeps_config_valid(config: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    opml = REPO / "tests" / "fixtures" / "opml" / "reader_export.opml"
    count = len(load_settings(config, env={}).feeds)
    assert main(["feeds", "import-opml", str(opml), "--config", str(config)]) == 0
    captured = capsys.readouterr()
    settings = load_settings(config, env={})
    assert len(settings.feeds) > count
    assert "skipped" in captured.err  # the ftp:// and file:// outlines are reported
    assert "# Default configuration" in config.read_text()  # comments kept


def test_hostile_opml_is_refused_with_exit_1(config: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    opml = REPO / "tests" / "fixtures" / "opml" / "billion_laughs.opml"
    before = config.read_bytes()
    assert main(["feeds", "import-opml", str(opml), "--config", str(config)]) == 1
    assert "error" in capsys.readouterr().err
    assert config.read_bytes() == before
