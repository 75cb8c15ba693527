"""Storage: the ``Store`` protocol and its backends, chosen by the database URL's scheme."""

from __future__ import annotations

import re

from monitor.errors import StoreError
from monitor.store.base import Store

__all__ = ["SCHEMES", "Store", "is_postgres", "open_store", "safe_url", "sqlite_path"]

SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
"""URL prefixes with a backend in this version."""


def is_postgres(database_url: str) -> bool:
    """A PostgreSQL URL (several daemons may share it; there is no file to lock)."""
    return database_url.startswith(("postgresql://", "postgres://"))


def safe_url(database_url: str) -> str:
    """The URL without its password, for logs and printed summaries."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", database_url)


def sqlite_path(database_url: str) -> str:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL."""
    return database_url.removeprefix("sqlite:///")


def open_store(database_url: str, *, busy_timeout: float = 30.0, pool_size: int = 6) -> Store:
    """The backend for ``database_url``, opened and migrated (not yet checked for writes).

    A new backend is one more branch here plus its module: the daemon and the CLI
    only see the protocol.
    ``pool_size`` is PostgreSQL's connections per process (SQLite has one).
    """
    store: Store
    if database_url.startswith("sqlite:///"):
        from monitor.store.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(database_url), busy_timeout=busy_timeout)
    elif is_postgres(database_url):
        from monitor.store.postgres import PostgresStore

        store = PostgresStore(database_url, busy_timeout=busy_timeout, max_connections=pool_size)
    else:
        scheme = database_url.split(":", 1)[0]
        raise StoreError(f"no storage backend for {scheme!r} URLs in this version; "
                         f"use one of: {', '.join(SCHEMES)}")
    try:
        store.migrate()
    except StoreError:
        store.close()
        raise
    return store
