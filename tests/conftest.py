"""Fixtures shared by many test files: a real, migrated SQLite store and the shipped model.

Fakes of the outside world (feed servers, Slack) live in ``tests/support`` and are
started by the tests that need them, each with the settings that test is about.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.classify import ArticleClassifier
from monitor.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A new SQLite database in the test's folder, migrated to the current schema."""
    s = SqliteStore(tmp_path / "m.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture(scope="session")
def classifier() -> ArticleClassifier:
    """The model shipped in the package, loaded once per test run (it is read-only)."""
    return ArticleClassifier.load(None)
