"""The counts status, the dashboard and /metrics show come from tallies the writes keep
(migration 0022): they must equal a count of the rows themselves after every kind of
write, whatever commits, rolls back, is killed mid-batch or runs concurrently."""

from __future__ import annotations

import asyncio
import operator
import random
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestflow.config import Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY, real, stop, wait_for, worker_env, write_docs
from support import force_stage, ingest, sql, start_worker, submit

# Each tally against a count of its table, in one statement: one snapshot, so it holds
# mid-run too. A passed minute is -infinity on both sides, as a fold leaves it.
DRIFT = """
WITH minute AS (SELECT date_bin('1 minute', now(), TIMESTAMPTZ 'epoch') AS start),
docs_tally AS (SELECT tenant, stage, current, chunking, sum(n)::bigint AS n FROM document_tallies
               GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0),
docs_truth AS (SELECT tenant, stage, is_current, CASE WHEN is_current THEN chunking END, count(*) FROM documents
               GROUP BY 1, 2, 3, 4),
jobs_tally AS (SELECT tenant, state, CASE WHEN due < m.start THEN '-infinity' ELSE due END AS due, sum(n)::bigint
               FROM job_tallies, minute m GROUP BY 1, 2, 3 HAVING sum(n) <> 0),
jobs_truth AS (SELECT tenant, state, CASE WHEN job_due(state, next_attempt_at) < m.start THEN '-infinity'
                                          ELSE job_due(state, next_attempt_at) END, count(*)
               FROM jobs, minute m WHERE state IN ('ready', 'running') GROUP BY 1, 2, 3),
times_tally AS (SELECT stage, sum(runs)::bigint, round(sum(seconds)::numeric, 6) FROM stage_time_tallies
                GROUP BY 1 HAVING sum(runs) <> 0),
times_truth AS (SELECT stage, count(*), round(sum((detail->>'seconds')::float8)::numeric, 6) FROM events
                WHERE kind = 'stage_done' AND detail ? 'seconds' GROUP BY 1),
calls_tally AS (SELECT service, model, unit, outcome, sum(calls)::bigint, sum(units), sum(cost_usd)
                FROM ledger_tallies GROUP BY 1, 2, 3, 4 HAVING sum(calls) <> 0),
calls_truth AS (SELECT service, model, unit, coalesce(outcome, state), count(*),
                       coalesce(sum(units) FILTER (WHERE state <> 'released'), 0),
                       coalesce(sum(cost_usd) FILTER (WHERE state <> 'released'), 0)
                FROM ledger GROUP BY 1, 2, 3, 4)
SELECT 'documents', row_to_json(x)::text FROM ((TABLE docs_tally EXCEPT ALL TABLE docs_truth)
    UNION ALL (TABLE docs_truth EXCEPT ALL TABLE docs_tally)) x
UNION ALL SELECT 'jobs', row_to_json(x)::text FROM ((TABLE jobs_tally EXCEPT ALL TABLE jobs_truth)
    UNION ALL (TABLE jobs_truth EXCEPT ALL TABLE jobs_tally)) x
UNION ALL SELECT 'times', row_to_json(x)::text FROM ((TABLE times_tally EXCEPT ALL TABLE times_truth)
    UNION ALL (TABLE times_truth EXCEPT ALL TABLE times_tally)) x
UNION ALL SELECT 'ledger', row_to_json(x)::text FROM ((TABLE calls_tally EXCEPT ALL TABLE calls_truth)
    UNION ALL (TABLE calls_truth EXCEPT ALL TABLE calls_tally)) x
"""

# The queue as queue_depth.sql counted it before the tallies: every queued job read.
QUEUE_TRUTH = """
SELECT count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at <= now()) AS runnable,
       count(*) FILTER (WHERE j.state = 'ready' AND j.next_attempt_at > now()) AS waiting,
       count(*) FILTER (WHERE j.state = 'running') AS running
FROM jobs j JOIN documents d ON d.id = j.document_id
WHERE j.state IN ('ready', 'running') AND (%(tenant)s::text IS NULL OR d.tenant = %(tenant)s)
"""

# The dashboard's throughput as throughput.sql counted it from the events: completed,
# chunks and failed over the last hour (the 12 five-minute buckets' window).
THROUGHPUT_TRUTH = """
SELECT count(*) FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'complete'),
       coalesce(sum((e.detail->>'chunks')::bigint) FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'chunked'), 0),
       count(*) FILTER (WHERE e.kind = 'failed')
FROM events e JOIN documents d ON d.id = e.document_id
WHERE e.kind IN ('stage_done', 'failed') AND d.tenant = %s
  AND e.created_at >= date_bin('5 minutes', now(), TIMESTAMPTZ 'epoch') - 11 * interval '5 minutes'
"""


def throughput(s: Settings, tenant: str) -> tuple[int, int, int]:
    from ingestflow.store.sql import query

    rows = sql(s, query("throughput").replace("%(tenant)s", "%s").replace("%(buckets)s", "12")
               .replace("%(width)s", "300"), (tenant,))
    return (sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows))


def drift(s: Settings) -> list[tuple[Any, ...]]:
    return sql(s, DRIFT)


def call(s: Settings, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(s) as rt:
            return await fn(rt, *args, **kwargs)

    return asyncio.run(main())


def fold(s: Settings) -> int | None:
    from ingestflow.store import tallies

    async def main() -> int | None:
        async with await psycopg.AsyncConnection.connect(s.database_url.get_secret_value()) as conn:
            return await tallies.fold(conn)

    return asyncio.run(main())


def queue(s: Settings, tenant: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(queue_depth.sql from the tallies, the count of every queued job), one snapshot."""
    from ingestflow.store.sql import query

    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value(), row_factory=dict_row) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tallied = conn.execute(query("queue_depth"), {"tenant": tenant}).fetchone()
        truth = conn.execute(QUEUE_TRUTH, {"tenant": tenant}).fetchone()
    assert tallied is not None and truth is not None
    return {k: tallied[k] for k in truth}, truth


def test_counts_stay_exact_through_ingest_supersede_delete_retry_and_reembed(settings: Settings,
                                                                             tmp_path: Path) -> None:
    from ingestflow.operations import documents, spaces

    write_docs(tmp_path / "a", 5)
    write_docs(tmp_path / "b", 3)
    ingest(settings, [tmp_path / "a"], tenant="acme")
    ingest(settings, [tmp_path / "b"], tenant="beta")
    assert drift(settings) == []
    stages = call(settings, documents.overview, "beta")["stages"]
    assert stages == {"complete": 3}  # the tenant's own, not acme's five
    for tenant, completed in (("acme", 5), ("beta", 3)):
        assert throughput(settings, tenant) == tuple(sql(settings, THROUGHPUT_TRUTH, (tenant,))[0])
        assert throughput(settings, tenant)[0] == completed

    (tmp_path / "a" / "doc00.md").write_text("# Changed\n\nA new version of the first document.")
    ingest(settings, [tmp_path / "a"], tenant="acme")  # supersedes v1
    assert drift(settings) == []
    assert call(settings, documents.count, "acme", stage="superseded") == 1
    assert call(settings, documents.count, "acme", stage=None) == 5

    doc = call(settings, documents.find, "acme", "doc01.md")
    call(settings, documents.delete, "acme", doc["id"])
    assert drift(settings) == []
    assert call(settings, documents.count, "acme", stage=None) == 4

    failed = call(settings, documents.find, "acme", "doc02.md")["id"]
    force_stage(settings, "failed", "id = %s", (failed,), error_code="x")
    sql(settings, "UPDATE jobs SET state = 'failed' WHERE document_id = %s", (failed,))
    assert call(settings, documents.overview, "acme")["stages"]["failed"] == 1
    call(settings, documents.retry, "acme", failed)
    assert drift(settings) == []
    assert queue(settings, "acme")[0] == {"runnable": 1, "waiting": 0, "running": 0}
    assert queue(settings, "beta")[0] == {"runnable": 0, "waiting": 0, "running": 0}

    async def drain(rt: Any) -> None:
        await rt.drain([failed]).run()

    call(settings, drain)
    assert drift(settings) == []
    assert fold(settings)
    assert drift(settings) == []

    new = settings.model_copy(update={"mock_embedding_dimensions": 384})  # a model change
    queued = call(new, spaces.start_reembed, "acme", batch_api=False)
    assert len(queued) == 4 and drift(new) == []
    assert queue(new, "acme")[0]["runnable"] == 4

    async def reembed(rt: Any) -> None:
        await rt.drain(queued).run()

    call(new, reembed)
    assert drift(new) == [] and fold(new) is not None and drift(new) == []
    assert call(new, documents.overview, "acme")["stages"] == {"complete": 4}


def test_queue_split_by_due_time(settings: Settings, tmp_path: Path) -> None:
    """Runnable and waiting jobs, some due later this minute, some in later minutes, some
    past; before and after a fold, against a count of every queued job."""
    write_docs(tmp_path / "docs", 12)
    submit(settings, [tmp_path / "docs"])
    write_docs(tmp_path / "other", 2)
    submit(settings, [tmp_path / "other"], tenant="acme")
    ids = [r[0] for r in sql(settings, "SELECT id FROM jobs ORDER BY id")]
    sql(settings, "UPDATE jobs SET next_attempt_at = now() + interval '2 seconds' WHERE id = ANY(%s)", (ids[:3],))
    sql(settings, "UPDATE jobs SET next_attempt_at = now() + interval '5 minutes' WHERE id = ANY(%s)", (ids[3:5],))
    sql(settings, "UPDATE jobs SET next_attempt_at = now() - interval '3 minutes' WHERE id = ANY(%s)", (ids[5:7],))
    sql(settings, "UPDATE jobs SET state = 'running' WHERE id = %s", (ids[7],))
    sql(settings, "UPDATE jobs SET state = 'done' WHERE id = %s", (ids[8],))
    for _ in range(2):
        tallied, truth = queue(settings, None)
        assert tallied == truth and truth["waiting"] >= 2 and truth["running"] == 1
        for tenant in ("default", "acme", "nobody"):
            assert operator.eq(*queue(settings, tenant))
        assert drift(settings) == []
        fold(settings)
    time.sleep(2.5)  # the three due in 2 s are runnable now
    tallied, truth = queue(settings, None)
    assert tallied == truth == {"runnable": 14 - 1 - 1 - 2, "waiting": 2, "running": 1}


def _workers(s: Settings, tmp_path: Path, n: int) -> list[Any]:
    env = {**worker_env(s), "EMBEDDING_BATCH_SIZE": "2", "LEASE_SECONDS": "2"}
    return [start_worker(s, tmp_path / f"w{uuid.uuid4().hex[:6]}.log", **env) for _ in range(n)]


def _settled(s: Settings) -> bool:
    left = sql(s, "SELECT count(*) FROM documents WHERE stage NOT IN ('complete', 'failed', 'superseded')")[0][0]
    return left == 0 and sql(s, "SELECT count(*) FROM ledger WHERE state = 'reserved'")[0][0] == 0


def test_counts_stay_exact_with_concurrent_workers_and_sigkills(settings: Settings, tmp_path: Path) -> None:
    """Three worker processes, SIGKILLed at random points and replaced; the tallies match
    the rows at every look (mid-batch included) and at the end."""
    with FakeOpenAI(api_key=KEY, timeout_seconds=3, rpm=None, tpm=None) as fake:
        fake.faults.set_rate(1.0, ["slow:0.15"])
        s = real(settings, fake, daily_cost_limit_openai=None, hourly_rate_limit_openai=None, embedding_batch_size=2)
        write_docs(tmp_path / "docs", 24, sentences=10)
        submit(s, [tmp_path / "docs"])
        procs = _workers(s, tmp_path, 3)
        rng = random.Random(11)
        looks = kills = 0
        try:
            while not _settled(s):
                assert drift(s) == []
                looks += 1
                time.sleep(rng.uniform(0.1, 0.5))
                if kills < 8 and looks % 2 == 0:
                    victim = procs.pop(rng.randrange(len(procs)))
                    victim.kill()
                    victim.wait()
                    kills += 1
                    procs += _workers(s, tmp_path, 1)
            wait_for(lambda: _settled(s), 120, "every document to finish")
        finally:
            for p in procs:
                stop(p)
        assert kills >= 4 and looks >= 4
        assert drift(s) == []
        assert sql(s, "SELECT count(*) FROM ledger")[0][0] > 0  # the ledger tally was exercised
        fold(s)
        assert drift(s) == []
        assert call(s, _stage_counts, "default") == {"complete": 24}


async def _stage_counts(rt: Any, tenant: str) -> dict[str, int]:
    from ingestflow.operations import documents

    return (await documents.overview(rt, tenant, recent=0))["stages"]
