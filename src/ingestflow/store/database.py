"""Where the database is, how to connect, and how the schema gets there.

With ``DATABASE_URL`` unset, ingestflow uses the embedded server (``store/embedded.py``)
under ``INGESTFLOW_HOME``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from ingestflow.config import ConfigError, Settings
from ingestflow.store import chunks, documents, embedded
from ingestflow.store.outage import until_reachable
from ingestflow.store.replicas import Replicas
from ingestflow.store.sql import query

MIGRATION_LOCK = 7_203_118_415  # pg_advisory_lock key: one migrator at a time
T = TypeVar("T")
RECONNECT_SECONDS = 3600.0  # the pool keeps trying to reconnect through an outage this long


def database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded.url(settings)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in store/migrations, in order."""
    folder = resources.files("ingestflow.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(url: str, *, through: int | None = None) -> list[str]:
    """Apply pending migrations; safe to call from many processes at once.

    Each migration and its record commit together, under an advisory lock, so a crash
    leaves either both or neither. ``through``: stop after that version (a test of a
    migration writes data into the schema before it). Returns the names applied now.
    """
    applied_now = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("migrations_lock"), {"key": MIGRATION_LOCK})
        try:
            conn.execute(query("migrations_table"))
            done = {row[0] for row in conn.execute(query("migrations_applied"))}
            for version, name, sql in migrations():
                if version in done or (through is not None and version > through):
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(query("migrations_record"), {"version": version, "name": name})
                applied_now.append(name)
            wanted = documents.transition_rows()
            current = set(conn.execute(query("transitions_current")).fetchall())
            if current != set(zip(*wanted.values(), strict=True)):  # rewritten only when changed
                with conn.transaction():  # the stage trigger's table, from ingestflow.lifecycle
                    conn.execute(query("clear_transitions"))
                    conn.execute(query("sync_transitions"), wanted)
        finally:
            conn.execute(query("migrations_unlock"), {"key": MIGRATION_LOCK})
    return applied_now


async def ping(conn: psycopg.AsyncConnection) -> None:
    """A round trip: raises if the database cannot answer."""
    await conn.execute(query("ping"))


async def server_info(conn: psycopg.AsyncConnection) -> tuple[str, str]:
    """(PostgreSQL version, pgvector version installed in this database), for doctor."""
    cur = await conn.execute(query("server_info"))
    server, pgvector = await cur.fetchone()
    return server, pgvector or "not installed"


class Database:
    """An async connection pool on a migrated database, and the standbys reads may use."""

    def __init__(self, url: str, *, max_size: int = 8, replicas: Replicas | None = None) -> None:
        self.url = url
        self.replicas = replicas
        # ``check``: a connection that died with the server (restart, failover) is
        # replaced when taken from the pool instead of failing the caller's first query.
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False,
            check=AsyncConnectionPool.check_connection, reconnect_timeout=RECONNECT_SECONDS,
        )

    @classmethod
    async def open(cls, settings: Settings, *, max_size: int, wait_seconds: float = 0.0) -> Database:
        """Migrate and open the pool. ``wait_seconds``: how long a long-running process
        (worker, API server) waits for an unreachable database at start, instead of exiting;
        short CLI commands pass 0 and report a wrong DATABASE_URL at once."""
        url = database_url(settings)
        await until_reachable(lambda: asyncio.to_thread(migrate, url), seconds=wait_seconds,
                              what="migrate the schema")
        replicas = None
        if settings.read_urls:
            replicas = Replicas(settings.read_urls, max_lag_seconds=settings.replica_max_lag_seconds,
                                max_size=max_size)
        db = cls(url, max_size=max_size, replicas=replicas)
        await db.pool.open(wait=True)
        if replicas is not None:
            await replicas.open()
        try:
            async with db.pool.connection() as conn:
                await chunks.check_search_config(conn, settings.search_language)
        except ConfigError:
            await db.close()
            raise
        return db

    async def read(self, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """``fn`` on a standby of DATABASE_READ_URLS that is up and current enough, else on
        the primary. ``fn`` only reads: it may run twice, if a standby fails under it."""
        if self.replicas is not None:
            answered, answer = await self.replicas.read(fn)
            if answered:
                return answer  # type: ignore[return-value]
        async with self.pool.connection() as conn:
            return await fn(conn)

    async def close(self) -> None:
        if self.replicas is not None:
            await self.replicas.close()
        await self.pool.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:  # the URL may hold a password
        return "Database(<url hidden>)"
