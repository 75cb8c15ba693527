"""PostgreSQL for tests: a fresh schema per test on the server named by
``MONITOR_TEST_DATABASE_URL``, dropped afterwards.

Tests that need PostgreSQL take the ``pg_url`` fixture (import it into the test
module) or call ``pg_schema()``; without the variable they are skipped with a
message saying how to run them, so a laptop without PostgreSQL still runs the
rest of the suite, while ``.ci/run`` sets the variable and they run in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

ENV = "MONITOR_TEST_DATABASE_URL"
HOW_TO_RUN = (f"PostgreSQL tests need {ENV}; run them with "
              f"{ENV}=postgresql://postgres@127.0.0.1:5432/test python -m pytest ...")


def base_url() -> str | None:
    """The server's URL, or None when PostgreSQL tests are not configured here."""
    return os.environ.get(ENV, "").strip() or None


def require_base_url() -> str:
    """The server's URL; skips the calling test when it is not configured."""
    url = base_url()
    if url is None:
        pytest.skip(HOW_TO_RUN)
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``?schema=NAME`` (the store creates it and sets its search_path)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    query.append(("schema", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def server_url(url: str) -> str:
    """``url`` without the ``schema`` parameter, as libpq accepts it."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it, ending sessions that still use it first
    (a daemon process killed by a test may leave one behind)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url(url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() "
            "AND application_name = %s", (f"monitor:{schema}",))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def pg_schema(prefix: str = "t") -> Iterator[str]:
    """A URL naming a new, unique schema on the test server; the schema is dropped after."""
    url = require_base_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(url, schema)
    finally:
        drop_schema(url, schema)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of the test's own (skipped without the server)."""
    with pg_schema() as url:
        yield url
