"""`ingestflow db backup` / `db restore`: a round trip gives the same documents, searches
and costs; a backup taken while a worker ingests restores to a home whose queue drains;
a stored file's removal waits for a backup that is copying files."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from conftest import TEMPLATE, new_database
from ingestflow.config import Settings
from ingestflow.store.files import FILES_LOCK
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY, real, wait_for, worker_env, write_docs
from support import SAMPLES, ingest, run_cli, search, sql, start_worker, submit


@pytest.fixture
def second(pg_server: str, settings: Settings, tmp_path: Path):
    """Another home with its own (migrated, empty) database: where a backup is restored."""
    with new_database(pg_server, TEMPLATE) as url:
        yield settings.model_copy(update={"database_url": SecretStr(url), "ingestflow_home": tmp_path / "second"})


def _snapshot(settings: Settings) -> dict:
    return {
        "documents": sql(settings, "SELECT tenant, source_name, version, stage, sha256 FROM documents ORDER BY 1, 2, 3"),
        "chunks": sql(settings, "SELECT count(*) FROM chunks")[0][0],
        "vectors": sql(settings, "SELECT count(*) FROM embeddings")[0][0],
        "ledger": sql(settings, "SELECT service, sum(units), sum(cost_usd) FROM ledger GROUP BY 1 ORDER BY 1"),
        "keys": sql(settings, "SELECT tenant, prefix FROM api_keys ORDER BY 1, 2"),
    }


def test_a_round_trip_gives_the_same_documents_searches_costs_and_files(settings: Settings, second: Settings,
                                                                          tmp_path: Path) -> None:
    ingest(settings, sorted(SAMPLES.iterdir()))
    assert run_cli(settings, "keys", "create", "--tenant", "acme").returncode == 0
    archive = tmp_path / "out" / "home.backup"
    done = run_cli(settings, "db", "backup", str(archive), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files"] == len(list(SAMPLES.iterdir())) and archive.stat().st_size == report["bytes"]

    restored = run_cli(second, "db", "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert _snapshot(second) == _snapshot(settings)
    for question in ("what causes the aurora borealis", "how long should the dough rest"):
        assert [(h.source_name, h.ordinal, h.score) for h in search(second, question)] == \
               [(h.source_name, h.ordinal, h.score) for h in search(settings, question)]
    for (key,) in sql(settings, "SELECT DISTINCT sha256 FROM documents"):
        assert (second.home / "files" / key[:2] / key).read_bytes() == \
               (settings.home / "files" / key[:2] / key).read_bytes()

    again = run_cli(second, "db", "restore", str(archive), "--json")
    assert again.returncode == 1 and json.loads(again.stderr.splitlines()[-1])["error"]["code"] == "home_not_empty"
    assert _snapshot(second) == _snapshot(settings)  # a refused restore changed nothing


def test_a_backup_taken_while_a_worker_ingests_restores_to_a_home_that_finishes(
        settings: Settings, second: Settings, tmp_path: Path) -> None:
    with FakeOpenAI(api_key=KEY, rpm=120) as slow:  # two documents a second: the backup lands mid-run
        source, target = real(settings, slow), real(second, slow)
        write_docs(tmp_path / "docs", 40)
        submit(source, [tmp_path / "docs"])
        env = {**worker_env(source), "CLAIM_BATCH_SIZE": "1"}
        worker = start_worker(source, tmp_path / "worker.log", "--concurrency", "2", **env)
        try:
            wait_for(lambda: sql(source, "SELECT count(*) FROM documents WHERE stage = 'complete'")[0][0] > 0,
                     60, "a first complete document")
            done = run_cli(source, "db", "backup", str(tmp_path / "mid.backup"), **env)
            assert done.returncode == 0, done.stderr
        finally:
            worker.terminate()
            worker.wait(30)
        assert run_cli(target, "db", "restore", str(tmp_path / "mid.backup"), **env).returncode == 0
        at_backup = dict(sql(target, "SELECT stage, count(*) FROM documents GROUP BY 1"))
        assert sum(at_backup.values()) == 40 and at_backup.get("complete", 0) < 40, at_backup
        # Every vector the backup holds belongs to a chunk it holds: one snapshot, not a torn copy.
        assert sql(target, "SELECT count(*) FROM embeddings e LEFT JOIN chunks c ON c.id = e.chunk_id "
                           "WHERE c.id IS NULL")[0][0] == 0
        drain = start_worker(target, tmp_path / "drain.log", "--concurrency", "2", **worker_env(target))
        try:
            wait_for(lambda: sql(target, "SELECT count(*) FROM documents WHERE stage <> 'complete'")[0][0] == 0,
                     120, "the restored queue to drain")
        finally:
            drain.terminate()
            drain.wait(30)
    assert dict(sql(target, "SELECT stage, count(*) FROM documents GROUP BY 1")) == {"complete": 40}


def test_a_stored_file_is_removed_only_after_a_backup_has_copied_it(settings: Settings) -> None:
    from ingestflow.operations.documents import delete
    from ingestflow.runtime import open_runtime

    (submitted,), _ = ingest(settings, [SAMPLES / "notes.txt"])
    document = submitted.registration.document_id
    ((key,),) = sql(settings, "SELECT sha256 FROM documents WHERE id = %s", (document,))
    stored = settings.home / "files" / key[:2] / key
    url = settings.database_url.get_secret_value()
    deleted = threading.Event()

    def delete_it() -> None:
        async def main() -> None:
            async with open_runtime(settings) as rt:
                await delete(rt, "default", document)
        asyncio.run(main())
        deleted.set()

    with psycopg.connect(url, autocommit=True) as backup:
        backup.execute("SELECT pg_advisory_lock(%s)", (FILES_LOCK,))  # what a backup copying files holds
        thread = threading.Thread(target=delete_it)
        thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while not backup.execute(waiting).fetchone()[0]:
            assert thread.is_alive(), "the delete finished without waiting for the backup"
            time.sleep(0.02)
        assert stored.exists() and not deleted.is_set()
        assert sql(settings, "SELECT count(*) FROM documents WHERE id = %s", (document,)) == [(0,)]
        backup.execute("SELECT pg_advisory_unlock(%s)", (FILES_LOCK,))
    thread.join(30)
    assert deleted.is_set() and not stored.exists()


@pytest.mark.parametrize("content", [b"", b"not a tar at all", b"\x00" * 1024])
def test_restore_of_a_file_that_is_not_a_backup_is_a_clear_refusal(second: Settings, tmp_path: Path,
                                                                   content: bytes) -> None:
    bad = tmp_path / f"bad-{uuid.uuid4().hex[:6]}.backup"
    bad.write_bytes(content)
    done = run_cli(second, "db", "restore", str(bad), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stderr.splitlines()[-1])["error"]["code"] == "invalid_backup"
    missing = run_cli(second, "db", "restore", str(tmp_path / "nowhere.backup"), "--json")
    assert missing.returncode == 1 and json.loads(missing.stderr.splitlines()[-1])["error"]["code"] == "not_found"
