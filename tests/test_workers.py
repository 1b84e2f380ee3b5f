"""Real worker processes on one queue: exclusivity, SIGKILL recovery, SIGTERM, NOTIFY."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ingestflow.config import Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real, worker_env
from provider_support import write_docs as provider_docs
from support import settings_env, sql, start_worker, submit


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def all_complete(settings: Settings) -> bool:
    return sql(settings, "SELECT count(*) FILTER (WHERE stage <> 'complete') FROM documents")[0][0] == 0


def write_docs(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:02}.md").write_text(
            f"# Document {i}\n\n" + " ".join(f"Fact {i}-{j}: item {j} of document {i}." for j in range(200))
        )


def big_doc(path: Path, paragraphs: int = 900) -> None:
    path.write_text("# Big\n\n" + "\n\n".join(
        f"Paragraph {i} describes specimen {i} in careful detail for the archive." for i in range(paragraphs)))


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_two_workers_never_do_the_same_job(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 16)
    submit(settings, [tmp_path / "docs"])
    workers = [start_worker(settings, tmp_path / f"w{i}.log", "--concurrency", "2") for i in range(2)]
    try:
        wait_for(lambda: all_complete(settings), 120, "all documents complete")
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    claims = sql(settings, "SELECT document_id, count(*) FROM events WHERE kind = 'claimed' GROUP BY document_id")
    assert len(claims) == 16 and all(n == 1 for _, n in claims)
    done = sql(settings, "SELECT document_id, stage, count(*) FROM events WHERE kind = 'stage_done'"
                         " GROUP BY document_id, stage")
    assert len(done) == 16 * 4 and all(n == 1 for *_, n in done)
    owners = {r[0] for r in sql(settings, "SELECT detail->>'owner' FROM events WHERE kind = 'claimed'")}
    # Each slot is its own lease holder: "<worker>/<slot>", two workers of two slots.
    assert all(o.rsplit("/", 1)[1] in ("0", "1") for o in owners)
    assert 1 <= len({o.rsplit("/", 1)[0] for o in owners}) <= 2 and len(owners) <= 4
    assert sql(settings, "SELECT count(*) FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id"
                         " WHERE e.chunk_id IS NULL")[0][0] == 0


def test_sigkill_mid_embedding_is_resumed_by_another_worker(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"embedding_batch_size": 1, "chunk_max_tokens": 32,
                                           "chunk_overlap_tokens": 0})
    big_doc(tmp_path / "big.md")
    (sub,) = submit(settings, [tmp_path / "big.md"])
    doc = sub.registration.document_id

    def vectors() -> int:
        return sql(settings, "SELECT count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id"
                             " WHERE c.document_id = %s", (doc,))[0][0]

    first = start_worker(settings, tmp_path / "first.log")
    wait_for(lambda: vectors() >= 50, 60, "embedding under way")
    first.kill()  # SIGKILL: no cleanup, the lease simply stops being renewed
    first.wait(timeout=10)
    partial = vectors()
    total = sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (doc,))[0][0]
    assert sql(settings, "SELECT stage FROM documents WHERE id = %s", (doc,))[0][0] == "embedding"
    assert 50 <= partial < total

    second = start_worker(settings, tmp_path / "second.log")
    try:
        wait_for(lambda: all_complete(settings), 90, "the second worker to finish")
    finally:
        assert stop(second) == 0
    assert vectors() == total
    assert sql(settings, "SELECT count(DISTINCT ordinal), min(ordinal), max(ordinal) FROM chunks"
                         " WHERE document_id = %s", (doc,))[0] == (total, 0, total - 1)
    (detail,) = [r[0] for r in sql(settings, "SELECT detail FROM events WHERE document_id = %s"
                                   " AND kind = 'stage_done' AND stage = 'embedded'", (doc,))]
    assert detail["embedded"] == total - partial  # resumed at the first chunk without a vector
    owners = [r[0] for r in sql(settings, "SELECT detail->>'owner' FROM events WHERE document_id = %s"
                                " AND kind = 'claimed' ORDER BY id", (doc,))]
    assert len(owners) == 2 and owners[0] != owners[1]


def test_sigterm_releases_the_job_for_another_worker(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"embedding_batch_size": 1, "chunk_max_tokens": 32,
                                           "chunk_overlap_tokens": 0, "lease_seconds": 600.0})
    big_doc(tmp_path / "big.md")
    (sub,) = submit(settings, [tmp_path / "big.md"])
    first = start_worker(settings, tmp_path / "first.log")
    wait_for(lambda: sql(settings, "SELECT stage FROM documents")[0][0] == "embedding", 60, "embedding")
    assert stop(first) == 0
    state, owner = sql(settings, "SELECT state, owner FROM jobs")[0]
    assert (state, owner) == ("ready", None)  # released at once, not left to a 600 s lease
    second = start_worker(settings, tmp_path / "second.log")
    try:
        wait_for(lambda: all_complete(settings), 90, "completion after release")
    finally:
        stop(second)


def test_idle_worker_is_woken_by_notify(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"poll_interval_seconds": 120.0})
    log = tmp_path / "w.log"
    worker = start_worker(settings, log)
    try:
        wait_for(lambda: "worker_started" in log.read_text(), 30, "worker start")
        time.sleep(0.5)  # let it claim nothing and go to sleep on LISTEN
        write_docs(tmp_path / "docs", 1)
        submit(settings, [tmp_path / "docs"])
        # far sooner than the 120 s poll: only NOTIFY can have woken it
        wait_for(lambda: all_complete(settings), 30, "NOTIFY to wake the worker")
    finally:
        stop(worker)


def test_worker_config_error_names_the_variable(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingestflow", "worker"], capture_output=True, text=True, timeout=60,
        env=settings_env(settings, SERVICE_MODE="REAL", EMBEDDINGS_PROVIDER="openai"),
    )
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stdout + result.stderr


def test_worker_builds_the_hnsw_index_when_the_space_is_big_enough(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 2)
    submit(settings, [tmp_path / "docs"])
    worker = start_worker(settings, tmp_path / "w.log", HNSW_MIN_VECTORS="3", INDEX_CHECK_SECONDS="0.2")
    try:
        wait_for(lambda: all_complete(settings), 60, "ingest")
        # CREATE INDEX CONCURRENTLY lists the index before it is built: wait for it to be
        # valid, and for the worker to say so, before stopping it.
        wait_for(lambda: sql(settings, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                                       " WHERE c.relname = 'embeddings_hnsw_space_1' AND i.indisvalid")[0][0] == 1,
                 30, "the index")
        wait_for(lambda: "hnsw_index_built" in (tmp_path / "w.log").read_text(), 30, "the worker to log the build")
    finally:
        assert stop(worker) == 0
    assert "hnsw_index_built" in (tmp_path / "w.log").read_text()


def test_a_slot_whose_lease_ran_out_is_fenced_out_by_its_sibling(settings: Settings, tmp_path: Path) -> None:
    """Two slots of one worker are two lease holders. A job whose lease ran out during one
    slot's long batch and that the other slot claimed again fences the first out; with one
    owner for both, both fences passed, both wrote (two fences of one job deadlocked at
    100k chunks) and, with a paid provider, both would have paid."""
    import asyncio

    from ingestflow.runtime import open_runtime
    from ingestflow.store import jobs

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "one.md").write_text("# One\n\nA single document.\n")
    submit(settings, [tmp_path / "docs"])

    async def main() -> None:
        async with open_runtime(settings.model_copy(update={"lease_seconds": 0.5, "batch_fill_seconds": 0.0})) as rt:
            worker = rt.worker(concurrency=2)
            first, second = f"{worker.owner}/0", f"{worker.owner}/1"
            [held] = await worker._claim(first)
            await asyncio.sleep(1.0)  # its lease runs out mid-batch
            [again] = await worker._claim(second)
            assert (again.id, again.attempts) == (held.id, held.attempts + 1)
            async with rt.db.pool.connection() as conn:
                assert await jobs.fence_many(conn, [held.id], first, 30) == {}
                assert list(await jobs.fence_many(conn, [held.id], second, 30)) == [held.id]

    asyncio.run(main())


def test_a_claim_is_bounded_by_jobs_and_by_bytes(settings: Settings, tmp_path: Path) -> None:
    """Batches of small documents fill up; a batch of big files stops at CLAIM_BATCH_BYTES,
    though a single file bigger than that is still taken on its own."""
    import asyncio

    from ingestflow.runtime import open_runtime
    from ingestflow.store import jobs

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        (folder / f"big{i}.md").write_text(f"# Big {i}\n\n" + "word " * 2000)  # ~10 KB each
    (folder / "huge.md").write_text("# Huge\n\n" + "word " * 20_000)  # ~100 KB
    submit(settings, [folder])
    sizes = dict(sql(settings, "SELECT source_name, size_bytes FROM documents"))

    async def claims() -> list[list[str]]:
        async with open_runtime(settings) as rt, rt.db.pool.connection() as conn:
            taken = []
            for limit, max_bytes in ((2, 10**9), (10, 3 * sizes["big3.md"]), (10, 1), (10, 10**9)):
                async with conn.transaction():
                    claimed = await jobs.claim(conn, "tester", 60, limit, max_bytes)
                names = []
                for c in claimed:
                    cur = await conn.execute("SELECT source_name FROM documents WHERE id = %s", (c.document_id,))
                    names.append((await cur.fetchone())[0])
                taken.append(names)
            async with conn.transaction():
                none = await jobs.claim(conn, "tester", 60, 10, 1, at_least_one=False)
            assert none == []
            return taken

    by_count, by_bytes, oversized, rest = asyncio.run(claims())
    assert len(by_count) == 2  # the job limit
    assert len(by_bytes) == 3 and sum(sizes[n] for n in by_bytes) <= 3 * sizes["big3.md"]  # the bytes limit
    assert len(oversized) == 1  # bigger than the limit alone: still taken, alone
    assert sorted(by_count + by_bytes + oversized + rest) == sorted(sizes)


def test_statistics_refresh_skips_a_table_being_indexed(settings: Settings) -> None:
    """An index build CONCURRENTLY holds a lock ANALYZE needs for minutes: the refresh must
    skip that table, not wait holding its transaction (the build then dies as a deadlock)."""
    import asyncio

    import psycopg

    from ingestflow.store import statistics

    url = settings.database_url.get_secret_value()
    sql(settings, "INSERT INTO documents (id, tenant, source_name, version, mime, size_bytes, sha256, correlation_id)"
                  " SELECT gen_random_uuid(), 't', 'n' || i, 1, 'text/plain', 1, 'x', gen_random_uuid()"
                  " FROM generate_series(1, 2000) i")
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE embeddings IN SHARE UPDATE EXCLUSIVE MODE")  # what CIC holds

        async def refresh() -> list[str]:
            async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '20s'")
                return await statistics.refresh(conn)

        assert "documents" in asyncio.run(asyncio.wait_for(refresh(), 15))
        holder.rollback()


def test_ctrl_c_on_ingest_hands_its_jobs_back(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    """Ctrl-C on `ingestflow ingest` stops its in-process worker as `ingestflow worker`
    stops: exit 130, every unfinished job back in the queue with its attempt given back,
    no worker row left, nothing logged about a closed pool. Before, the jobs stayed
    `running` under a dead worker until their leases expired."""
    fake.faults.set_rate(1.0, ["slow:0.2"])
    s = real(settings, fake, lease_seconds=600.0, embedding_batch_size=2)
    provider_docs(tmp_path / "docs", 30, sentences=12)
    env = settings_env(s, **worker_env(s), EMBEDDING_BATCH_SIZE="2", LOG_LEVEL="INFO", LEASE_SECONDS="600")
    with open(tmp_path / "ingest.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ingestflow", "ingest", str(tmp_path / "docs")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: fake.stats["requests"] >= 2, 60, "embedding under way")
        assert sql(s, "SELECT count(*) FROM jobs WHERE state = 'running'")[0][0] > 0
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "ingest.log").read_text()
    assert code == 130, output[-3000:]
    assert "worker_leave_failed" not in output and "Interrupted" in output
    assert sql(s, "SELECT count(*) FROM jobs WHERE state = 'running'")[0][0] == 0
    assert sql(s, "SELECT count(*) FROM workers")[0][0] == 0
    unfinished = sql(s, "SELECT j.state, j.attempts, j.owner FROM jobs j JOIN documents d ON d.id = j.document_id"
                        " WHERE d.stage <> 'complete'")
    assert unfinished and all(row == ("ready", 0, None) for row in unfinished), unfinished


def test_a_document_that_kills_its_worker_fails_alone(settings: Settings, tmp_path: Path) -> None:
    """Whenever a worker holds the poison document's job, it is SIGKILLed (as a document
    that crashes its parser would). The batch it was in is retried in halves until the
    poison runs alone; only crashes alone are charged, so it fails (worker_lost) after
    MAX_ATTEMPTS of them and every other document completes at its first attempt. Before,
    every crash charged the whole batch and all of it failed together."""
    # A lease long enough that a busy two-core machine renews it in time: a lease lost without
    # a crash is charged too (seen once with 2 s: 5 attempts where 3 crashes alone give 4).
    settings = settings.model_copy(update={"embedding_batch_size": 1, "chunk_max_tokens": 32,
                                           "chunk_overlap_tokens": 0, "lease_seconds": 5.0})
    write_docs(tmp_path / "docs", 15)
    big_doc(tmp_path / "docs" / "poison.md")
    submit(settings, [tmp_path / "docs"])
    poison = sql(settings, "SELECT id FROM documents WHERE source_name = 'poison.md'")[0][0]
    env = {"MAX_ATTEMPTS": "3"}
    procs = {}

    def spawn() -> None:
        proc = start_worker(settings, tmp_path / f"w{len(procs)}.log", "--concurrency", "1", **env)
        procs[proc.pid] = proc

    def holder() -> int | None:
        """The pid of the worker running the poison's job once it has started its batch."""
        rows = sql(settings, "SELECT j.owner FROM jobs j WHERE j.document_id = %s AND j.state = 'running'"
                             " AND j.lease_until > now() AND EXISTS (SELECT 1 FROM events e WHERE e.document_id"
                             " = j.document_id AND e.kind = 'claimed' AND e.detail->>'owner' = j.owner)", (poison,))
        return int(rows[0][0].split(":")[1]) if rows else None

    for _ in range(2):
        spawn()
    kills = 0
    try:
        deadline = time.monotonic() + 180
        while sql(settings, "SELECT stage FROM documents WHERE id = %s", (poison,))[0][0] != "failed":
            assert time.monotonic() < deadline, "the poison document never failed"
            if (pid := holder()) in procs:
                procs.pop(pid).kill()
                kills += 1
                spawn()
            time.sleep(0.05)
        wait_for(lambda: sql(settings, "SELECT count(*) FROM documents WHERE stage = 'complete'")[0][0] == 15, 90,
                 "the other documents to complete")
    finally:
        for proc in procs.values():
            stop(proc)
    assert sql(settings, "SELECT error_code FROM documents WHERE id = %s", (poison,)) == [("worker_lost",)]
    assert sql(settings, "SELECT attempts FROM jobs WHERE document_id = %s", (poison,)) == [(4,)]
    others = sql(settings, "SELECT j.attempts, count(*) FROM jobs j WHERE j.document_id <> %s GROUP BY 1", (poison,))
    assert others == [(1, 15)]
    assert 4 <= kills <= 3 + 4  # three crashes alone, and at most log2(16) halvings before them


def test_sigterm_stops_between_provider_calls(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    """SIGTERM mid-embedding: no request starts after the signal, what was paid for is
    stored, and every job goes back to the queue with its attempt given back. Before, the
    worker finished the whole batch's embedding first (a platform's grace period then
    SIGKILLs it, charging every job)."""
    fake.faults.set_rate(1.0, ["slow:0.3"])
    # a timeout long enough that no request is retried on a busy machine (the fake would bill both)
    s = real(settings, fake, lease_seconds=600.0, embedding_batch_size=2, openai_timeout_seconds=10.0)
    provider_docs(tmp_path / "docs", 12, sentences=12)
    submit(s, [tmp_path / "docs"])
    worker = start_worker(s, tmp_path / "w.log", "--concurrency", "1", **worker_env(s), EMBEDDING_BATCH_SIZE="2",
                          LEASE_SECONDS="600")
    try:
        wait_for(lambda: fake.stats["requests"] >= 3, 60, "embedding under way")
        worker.send_signal(signal.SIGTERM)
        sent_before = fake.stats["requests"]
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert fake.stats["requests"] <= sent_before + 1  # at most one already on its way
    total = sql(s, "SELECT count(*) FROM chunks")[0][0]
    assert sql(s, "SELECT count(*) FROM embeddings")[0][0] == fake.stats["inputs"] < total
    assert sql(s, "SELECT state, attempts, count(*) FROM jobs GROUP BY 1, 2") == [("ready", 0, 12)]


def test_three_workers_share_the_queue(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    """Three live workers and 60 queued documents: each claim takes a fair share (the
    runnable jobs over the live workers' slots), so every worker gets work. Before, the
    first claim took all 60 (up to CLAIM_BATCH_SIZE) and two workers sat idle."""
    fake.faults.set_rate(1.0, ["slow:0.2"])
    s = real(settings, fake, embedding_batch_size=8)
    procs = [start_worker(s, tmp_path / f"w{i}.log", "--concurrency", "1", **worker_env(s), EMBEDDING_BATCH_SIZE="8")
             for i in range(3)]
    try:
        wait_for(lambda: sql(s, "SELECT count(*) FROM workers")[0][0] == 3, 60, "three live workers")
        provider_docs(tmp_path / "docs", 60, sentences=12)
        submit(s, [tmp_path / "docs"])
        wait_for(lambda: all_complete(s), 120, "all documents complete")
    finally:
        for proc in procs:
            stop(proc)
    per_worker = sql(s, "SELECT split_part(detail->>'owner', '/', 1), count(*) FROM events WHERE kind = 'claimed'"
                        " GROUP BY 1")
    assert len(per_worker) == 3, per_worker
    assert max(n for _, n in per_worker) <= 30, per_worker


def test_a_claim_is_sized_to_the_pace_of_recent_batches(settings: Settings, tmp_path: Path) -> None:
    """A worker whose batches have taken 10 s a job claims about BATCH_TARGET_SECONDS of
    work (3 jobs), not all 10 runnable ones: a worker joining later finds the rest. Its
    pace comes from the batches it ran."""
    import asyncio

    from ingestflow.runtime import open_runtime
    from ingestflow.worker import BATCH_TARGET_SECONDS

    write_docs(tmp_path / "docs", 10)
    submit(settings, [tmp_path / "docs"])

    async def main() -> None:
        async with open_runtime(settings.model_copy(update={"batch_fill_seconds": 0.0})) as rt:
            worker = rt.worker(concurrency=1)
            assert worker.claim_limit() == settings.claim_batch_size
            worker.seconds_per_job = BATCH_TARGET_SECONDS / 3
            owner = f"{worker.owner}/0"
            claimed = await worker._claim(owner)
            assert len(claimed) == 3
            await worker.process(claimed, owner)
            assert worker.seconds_per_job is not None and worker.seconds_per_job < BATCH_TARGET_SECONDS / 3

    asyncio.run(main())
    assert sql(settings, "SELECT count(*) FROM documents WHERE stage = 'complete'") == [(3,)]
