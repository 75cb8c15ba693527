"""Reaching PostgreSQL: the URL, the connection pool, and errors as one line.

One concern, the connection: which server and schema a ``postgresql://`` URL
names, how pooled connections are set up (schema, UTC, lock timeout, a name
that shows in ``pg_stat_activity``), and what a failure says. The SQL lives
in ``postgres.py`` and its ``pg_*`` helpers.

Why a sync pool: the Store protocol is synchronous (the daemon already runs
store calls in worker threads), so one protocol serves both backends;
``psycopg_pool.ConnectionPool`` lets those threads use the database at once,
and its ``check`` replaces a connection the server dropped before handing it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from monitor.errors import StoreError
from monitor.store import safe_url

__all__ = [
    "SCHEMES",
    "PgTarget",
    "cause",
    "make_pool",
    "parse_url",
    "prepare_schema",
    "retryable",
]

SCHEMES = ("postgresql://", "postgres://")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where the store's tables live."""

    conninfo: str
    """What libpq gets: the URL without the ``schema`` parameter."""
    schema: str | None
    """``?schema=NAME``: tables in that schema (created if missing); None: the server's
    default search_path (normally ``public``)."""
    display: str
    """``host:port/db[?schema=…]`` without user or password: safe in messages and logs."""

    @property
    def application_name(self) -> str:
        """Names the store's sessions in ``pg_stat_activity`` (tests end them by it)."""
        return f"monitor:{self.schema}" if self.schema else "monitor"


def parse_url(url: str) -> PgTarget:
    """Split off ``schema`` (not a libpq parameter) and check it is a plain identifier."""
    if not url.startswith(SCHEMES):
        raise StoreError(f"not a PostgreSQL URL: {safe_url(url)}")
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in params if k == "schema"), None)
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise StoreError(f"schema={schema!r} in the database URL is not a plain SQL identifier "
                         "(letters, digits, underscore; not starting with a digit)")
    rest = [(k, v) for k, v in params if k != "schema"]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    display = f"{host}:{port}{parts.path or '/'}" + (f"?schema={schema}" if schema else "")
    return PgTarget(conninfo=conninfo, schema=schema, display=display)


def prepare_schema(target: PgTarget, *, timeout: float) -> None:
    """Connect once directly (a failure here names its real cause, where a pool would
    only time out) and create the schema if the URL names one."""
    try:
        with psycopg.connect(target.conninfo, autocommit=True,
                             connect_timeout=max(1, int(timeout)),
                             application_name=target.application_name) as conn:
            if target.schema:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(target.schema)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot open PostgreSQL database {target.display}: {cause(exc)}") \
            from exc


def make_pool(target: PgTarget, *, timeout: float, max_size: int) -> ConnectionPool:
    """An open pool whose connections autocommit (a transaction is always explicit),
    return rows as dicts, speak UTC and see only the store's schema."""
    lock_timeout_ms = int(timeout * 1000)

    def configure(conn: psycopg.Connection) -> None:
        if target.schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target.schema)))
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout_ms)))

    pool = ConnectionPool(
        target.conninfo,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "row_factory": dict_row,
                "application_name": target.application_name,
                "connect_timeout": max(1, int(min(timeout, 10)))},
        configure=configure,
        check=ConnectionPool.check_connection,
        timeout=timeout,
        name=target.application_name,
        open=False,
    )
    pool.open(wait=False)
    return pool


_RETRY_STATES = ("08", "57", "40")
"""SQLSTATE classes worth another try on a new transaction: connection exception,
operator intervention (terminated backend, server shutting down or restarting), and
transaction rollback (a deadlock with another daemon, a serialization failure)."""


def retryable(exc: BaseException) -> bool:
    """The server rolled the transaction back for a reason that is not the statement's
    fault (the connection broke, or another session won a deadlock): run it again."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state[:2] in _RETRY_STATES


_HINTS = {
    "connection refused": "is the PostgreSQL server running and listening there?",
    "could not translate host name": "check the host in storage.database_url",
    "password authentication failed": "check the user and password in MONITOR_DATABASE_URL",
    "no password supplied": "the server wants a password: put it in MONITOR_DATABASE_URL",
    "database \"": "create the database first (createdb) or fix the URL's database name",
    "role \"": "create the role or fix the URL's user",
    "permission denied": "grant the monitor's role the rights it needs on the schema",
    "read-only transaction": "this server is a read-only standby; point the URL at the primary",
    "no space left": "the database server's disk is full; free space",
    "could not extend": "the database server's disk is full; free space",
    "too many clients": "the server's max_connections is used up; fewer daemons or a "
                        "connection pooler",
    "terminating connection": "the server ended the session (restart or administrator)",
    "lock timeout": "another session held a lock longer than storage.busy_timeout_seconds",
}


def cause(exc: BaseException) -> str:
    """The error's first line, with what to do about it when we know (no secrets: libpq
    never echoes the password)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    lowered = text.lower()
    for needle, hint in _HINTS.items():
        if needle in lowered:
            return f"{text} ({hint})"
    return text
