"""Storage: the ``Store`` protocol and its backends, chosen by the database URL's scheme."""

from __future__ import annotations

from monitor.errors import StoreError
from monitor.store.base import Store

__all__ = ["SCHEMES", "Store", "open_store", "sqlite_path"]

SCHEMES = ("sqlite:///",)
"""URL prefixes with a backend in this version."""


def sqlite_path(database_url: str) -> str:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL."""
    return database_url.removeprefix("sqlite:///")


def open_store(database_url: str, *, busy_timeout: float = 30.0) -> Store:
    """The backend for ``database_url``, opened and migrated (not yet checked for writes).

    A new backend is one more branch here plus its module: the daemon and the CLI
    only see the protocol.
    """
    if database_url.startswith("sqlite:///"):
        from monitor.store.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(database_url), busy_timeout=busy_timeout)
        try:
            store.migrate()
        except StoreError:
            store.close()
            raise
        return store
    scheme = database_url.split(":", 1)[0]
    raise StoreError(f"no storage backend for {scheme!r} URLs in this version; "
                     f"use one of: {', '.join(SCHEMES)}")
