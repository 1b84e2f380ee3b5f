"""The worker: claims jobs from Postgres and runs them through the pipeline.

Workers share nothing but the database, so any number of them can run on any number of
machines. Idle workers sleep on LISTEN/NOTIFY (a new job wakes them at once) with polling
as a fallback for lost notifications and for jobs whose retry time has come.

The database may go away at any moment (restart, failover, a terminated backend): no
loop here ends the process on that. A job interrupted by it is handed back to the queue
once the database answers again, attempt not counted, and resumes from its last durable
stage; until then its lease keeps others off it, and if the outage outlasts the lease,
any worker may take it.

Each slot claims under its own lease owner (the worker's, plus "/<slot>"): a job whose
lease ran out during a long batch may be claimed again by a sibling slot, and with one
owner for both, the first slot's fence still passed. Both then wrote the same rows (two
fences of one job deadlocked at 100k chunks) and, with a paid provider, would pay twice.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import AsyncConnection

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.lifecycle import TERMINAL, Stage
from ingestflow.logging import get_logger, redact
from ingestflow.pipeline.batch import Batch, Item, Released
from ingestflow.pipeline.stages import Pipeline
from ingestflow.services.base import Embedder
from ingestflow.services.budget import Budget
from ingestflow.services.retry import RetryPolicy
from ingestflow.store import chunks, documents, jobs, statistics, tallies, vectors, workers
from ingestflow.store.database import Database
from ingestflow.store.documents import Event, StageConflict
from ingestflow.store.jobs import ClaimedJob, Fence, LeaseLost
from ingestflow.store.outage import DatabaseUnavailable, backoff, until_reachable

log = get_logger("ingestflow.worker")
# A claim is sized to about this much work, at the pace of this worker's recent batches:
# long enough to share transactions and requests, short enough that a worker joining
# later finds work instead of waiting for one long batch to end.
BATCH_TARGET_SECONDS = 30.0

StopCondition = Callable[[], Awaitable[bool]]


class Worker:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        *,
        concurrency: int,
        claim_size: int,
        claim_bytes: int,
        fill_seconds: float,
        lease_seconds: float,
        poll_interval: float,
        max_attempts: int,
        max_defer_seconds: float,
        backoff: RetryPolicy,
        budget: Budget | None,
        repair: Embedder | None,
        repair_interval: float,
        index_policy: vectors.IndexPolicy | None,
        index_interval: float,
        heartbeat_seconds: float,
        warm_up: Callable[[], None] | None = None,
        owner: str | None = None,
    ) -> None:
        """Every value comes from Settings (runtime.py): this class repeats no default."""
        self.db = db
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.claim_size = claim_size  # jobs claimed (and run as one batch) at once
        self.claim_bytes = claim_bytes  # ...whose documents hold this many bytes at most (memory)
        self.fill_seconds = fill_seconds  # how long a partial batch waits to fill
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.max_defer_seconds = max_defer_seconds
        self.backoff = backoff
        self.owner = owner or jobs.new_owner()
        self.budget = budget  # sweeps reservations that killed workers left behind
        self.repair = repair  # the real embedder whose health decides when to repair
        self.repair_interval = repair_interval if repair is not None else None
        self.index_policy = index_policy  # None: this worker builds no indexes
        self.index_interval = index_interval
        self.heartbeat_seconds = heartbeat_seconds  # how often this worker says it is alive (store/workers.py)
        self.warm_up = warm_up  # loads what jobs need (tokenizer, parsers), beside the first claim
        self.processed = 0
        self.seconds_per_job: float | None = None  # the pace of recent batches (see claim_limit)
        self.stop_when: StopCondition | None = None  # checked when idle; true ends run()
        self._wake = asyncio.Event()
        self._stopping = False

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): running jobs are released before their next provider
        call, or at the next stage boundary."""
        self._stopping = True
        self.pipeline.stop()  # and no provider call starts from now on
        self._wake.set()

    async def run(self) -> None:
        """Work until asked to stop, or until idle and ``stop_when()`` is true."""
        log.info("worker_started", owner=self.owner, concurrency=self.concurrency)
        # Counted among the live workers before the first claim: claims take fair shares.
        await self._attempt("heartbeat", self._heartbeat)
        background = [asyncio.create_task(self._listen()),
                      asyncio.create_task(self._every(self.heartbeat_seconds, "heartbeat", self._heartbeat)),
                      # off the batches' path: a fold between a claim and its work held up the batch
                      asyncio.create_task(self._every(self.heartbeat_seconds, "fold_tallies", self._fold))]
        if self.warm_up is not None:
            background.append(asyncio.create_task(asyncio.to_thread(self.warm_up)))
        if self.repair_interval is not None:
            background.append(asyncio.create_task(self._every(self.repair_interval, "repair_check",
                                                              self.schedule_repairs)))
        if self.index_policy is not None:
            background.append(asyncio.create_task(self._every(self.index_interval, "index_build",
                                                              self._maintain_indexes)))
        if self.budget is not None:
            background.append(asyncio.create_task(self._every(self.lease_seconds, "reservation_sweep",
                                                              self.budget.sweep)))
        try:
            await asyncio.gather(*(self._slot(f"{self.owner}/{n}") for n in range(self.concurrency)))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._leave()
            log.info("worker_stopped", owner=self.owner, processed=self.processed)

    async def _slot(self, owner: str) -> None:
        """Claim and process batches as ``owner``, this slot's lease owner."""
        failures = 0  # consecutive database failures: back off, never exit
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._claim(owner)
                if claimed:
                    failures = 0
                    await self.process(claimed, owner)
                    self._wake.set()  # let idle slots re-check their stop condition
                    continue
                if self.stop_when is not None and await self.stop_when():
                    self._stopping = True
                    self._wake.set()
                    return
                failures = 0
            except DatabaseUnavailable as exc:
                failures += 1
                delay = backoff(failures)
                log.warning("database_unavailable", doing="claim jobs", retry_in=round(delay, 2),
                            error=type(exc).__name__)
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except TimeoutError:
                pass

    def claim_limit(self) -> int:
        """``claim_size``, or fewer once batches here have shown their pace: about
        BATCH_TARGET_SECONDS of work (the claim's fair share bounds it too, claim_jobs.sql)."""
        if not self.seconds_per_job:
            return self.claim_size
        return max(1, min(self.claim_size, int(BATCH_TARGET_SECONDS / self.seconds_per_job)))

    async def _claim(self, owner: str) -> list[ClaimedJob]:
        """Up to ``claim_limit()`` jobs. When fewer are runnable, wait up to ``fill_seconds``
        for more to arrive (a NOTIFY wakes the wait), so that documents trickling in share
        transactions and provider requests instead of each paying its own."""
        limit = self.claim_limit()
        claimed = await self._claim_more(owner, limit, self.claim_bytes, at_least_one=True)
        deadline = time.monotonic() + self.fill_seconds
        while (claimed and len(claimed) < limit and (room := self.claim_bytes - _bytes(claimed)) > 0
               and (left := deadline - time.monotonic()) > 0):
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=left)
            except TimeoutError:
                break
            claimed += await self._claim_more(owner, limit - len(claimed), room, at_least_one=False)
        return claimed

    async def _claim_more(self, owner: str, limit: int, max_bytes: int, *, at_least_one: bool
                          ) -> list[ClaimedJob]:
        async with self.db.pool.connection() as conn, conn.transaction():
            return await jobs.claim(conn, owner, self.lease_seconds, limit, max_bytes, at_least_one=at_least_one)

    async def _listen(self) -> None:
        """Wake idle slots on NOTIFY; reconnects quietly, since polling covers the gap."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.db.url, autocommit=True)
                async with conn:
                    await jobs.listen(conn)
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must never kill the worker
                log.warning("listener_reconnect", error=redact(str(exc)))
                await asyncio.sleep(self.poll_interval)

    async def _every(self, interval: float, name: str, task: Callable[[], Awaitable[object]]) -> None:
        """A maintenance task on a timer; a failure only waits for the next turn."""
        while True:
            await asyncio.sleep(interval)
            await self._attempt(name, task)

    @staticmethod
    async def _attempt(name: str, task: Callable[[], Awaitable[object]]) -> None:
        try:
            await task()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried at the next turn
            log.warning(f"{name}_failed", error=redact(f"{type(exc).__name__}: {exc}"))

    async def _heartbeat(self) -> None:
        async with self.db.pool.connection() as conn, conn.transaction():
            await workers.heartbeat(conn, owner=self.owner, host=socket.gethostname(), pid=os.getpid(),
                                    slots=self.concurrency, interval_seconds=self.heartbeat_seconds,
                                    jobs_done=self.processed)

    async def _fold(self) -> None:
        """The rows the tallies gathered since the last fold, one per key (store/tallies.py)."""
        async with self.db.pool.connection() as conn:
            await tallies.fold(conn)

    async def _leave(self) -> None:
        """Stopped cleanly: no longer counted as alive. With the database away, the row
        ages out instead."""
        try:
            async with self.db.pool.connection() as conn:
                await workers.stopped(conn, self.owner)
        except DatabaseUnavailable as exc:
            log.warning("worker_leave_failed", error=type(exc).__name__)

    async def _maintain_indexes(self) -> None:
        """Build each space's HNSW index once it is big enough, the configured one (which
        the queue fills) once a bulk load into it drains (see store/vectors.py), and
        rebuild the search vectors of chunks written in another SEARCH_LANGUAGE."""
        assert self.index_policy is not None
        filling = (await self.pipeline.embedding.configured()).space_id
        built = await vectors.build_indexes(self.db.url, self.index_policy, filling)
        if built:
            log.info("hnsw_index_built", spaces=built)
        if filling in built:  # a model change held back until its bulk load was indexed switches now
            async with self.db.pool.connection() as conn:
                tenants = await vectors.tenants_switching(conn, filling)
            await self.pipeline.switch(tenants, filling)
        config, rebuilt = self.pipeline.search_language, 0
        while True:
            async with self.db.pool.connection() as conn, conn.transaction():
                done = await chunks.rebuild_search_vectors(conn, config)
            if not done:
                break
            rebuilt += done
        if rebuilt:
            log.info("search_vectors_rebuilt", chunks=rebuilt, config=config)

    async def schedule_repairs(self) -> int:
        """HYBRID: once the real embedder is healthy again, queue degraded documents."""
        assert self.repair is not None
        healthy, detail = await self.repair.health()
        if not healthy:
            return 0
        async with self.db.pool.connection() as conn, conn.transaction():
            rows = await documents.schedule_repairs(conn)
            if rows is None:
                return 0  # another worker is scheduling right now
            await documents.add_events(conn, [(d, c, "repair_scheduled", Stage.CHUNKED, {"embedder": self.repair.model})
                                              for d, c in rows])
            await documents.enqueue(conn, [d for d, _ in rows])
        if rows:
            log.info("repairs_scheduled", documents=len(rows), embedder=self.repair.model)
        return len(rows)

    async def process(self, claimed: list[ClaimedJob], owner: str) -> None:
        """Run a batch of claimed jobs; whatever happens, each job ends up done, failed,
        rescheduled or back in the queue (never ``running`` without a live worker behind it)."""
        batch = Batch(owner, [], should_stop=lambda: self._stopping)
        started = time.monotonic()
        try:
            await self._process(claimed, batch)
            pace = (time.monotonic() - started) / len(claimed)
            self.seconds_per_job = pace if self.seconds_per_job is None else (self.seconds_per_job + pace) / 2
        except DatabaseUnavailable as exc:
            log.warning("jobs_interrupted", jobs=len(claimed), reason=type(exc).__name__)
            await self._give_back([i.job.id for i in batch.items if i.active] if batch.items
                                  else [j.id for j in claimed], owner)

    async def _process(self, claimed: list[ClaimedJob], batch: Batch) -> None:
        async with self.db.pool.connection() as conn:
            async with conn.transaction():  # the batch's queries plan with today's table sizes
                if stale := await statistics.refresh(conn):
                    log.info("statistics_refreshed", tables=stale)
            found = await documents.get(conn, [j.document_id for j in claimed])
        ended, items = [], []
        for job in claimed:
            document = found.get(job.document_id)
            if document is None or _ended(job, document):
                ended.append((job, document is not None and document["stage"] == Stage.FAILED))
            else:
                items.append(Item(job, document))
        async with self.db.pool.connection() as conn, conn.transaction():
            for failed in (False, True):
                await jobs.finish(conn, [j.id for j, f in ended if f is failed], batch.owner, failed=failed)
            await jobs.record_batch(conn, [i.job.id for i in items], batch.owner)
            await documents.add_events(conn, [(i.id, i.correlation_id, "claimed", i.stage,
                                               {"owner": batch.owner, "attempt": i.job.attempts}) for i in items])
        for item in items:  # claimed again and again: its workers died
            if item.job.attempts > self.max_attempts:
                item.leave(PermanentError("worker_lost", f"the job was started {item.job.attempts - 1} times and "
                                                         "never finished (its worker stopped or crashed each time)"))
        batch.items = items
        log.info("jobs_claimed", jobs=len(claimed), documents=len(items))
        renewer = asyncio.create_task(self._renew(batch))
        try:
            await self.pipeline.run(batch)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - an unknown bug retries, then fails visibly
            log.exception("batch_crashed", jobs=len(items))
            for item in items:
                item.leave(TransientError("internal_error", f"{type(exc).__name__}: {exc}"))
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        await self._settle(items, batch.owner)

    async def _renew(self, batch: Batch) -> None:
        """Keep the batch's leases alive while working. A lost lease is flagged, not
        cancelled: a paid call in flight finishes and is settled as billed, then the
        pipeline writes nothing more for that job."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [i for i in batch.items if i.active]
            try:
                async with self.pipeline.tx.fenced(batch.owner, held):
                    pass  # the fence is the whole transaction: items whose lease is lost leave
            except DatabaseUnavailable as exc:  # the leases may still hold when it is back
                log.warning("lease_renewal_failed", jobs=len(held), error=type(exc).__name__)
                continue
            if lost := sorted(i.job.id for i in held if isinstance(i.outcome, LeaseLost)):
                log.warning("leases_lost", jobs=lost)

    async def _settle(self, items: list[Item], owner: str) -> None:
        """Each document's outcome: done (complete already finished its job), released
        (shutdown), abandoned (lost lease), or an error to fail, retry or defer."""
        done = [i for i in items if i.finished]
        released = [i for i in items if isinstance(i.outcome, Released) or (i.outcome is None and not i.finished)]
        errors = [i for i in items if isinstance(i.outcome, IngestError | StageConflict)]
        self.processed += len(done)
        if released:
            async with self.db.pool.connection() as conn:
                await jobs.release(conn, [i.job.id for i in released], owner)
        if lost := [i.job.id for i in items if isinstance(i.outcome, LeaseLost)]:
            log.warning("jobs_abandoned", jobs=lost, reason="lease lost")
        if errors:
            await self._on_errors(errors, owner)
        log.info("batch_done", complete=len(done), released=len(released), errors=len(errors))

    async def _give_back(self, job_ids: list[int], owner: str) -> None:
        """Return interrupted jobs to the queue once the database answers; past the lease
        there is nothing to give back (any worker may claim them by then)."""
        async def release() -> None:
            async with self.db.pool.connection() as conn:
                await jobs.release(conn, job_ids, owner)

        try:
            await until_reachable(release, seconds=self.lease_seconds, what="hand back jobs")
            log.info("jobs_released", jobs=len(job_ids))
        except DatabaseUnavailable:
            log.warning("jobs_left_to_lease_expiry", jobs=len(job_ids))

    async def _on_errors(self, items: list[Item], owner: str) -> None:
        """Fail, retry or defer each document by its own error, in one transaction. Retries,
        deferrals and events are written together: a batch waiting on the Batch API defers
        thousands of documents at once."""
        later: list[jobs.Reschedule] = []
        events: list[Event] = []
        async with self.db.pool.connection() as conn, conn.transaction():
            fences = await jobs.fence_many(conn, [i.job.id for i in items], owner, self.lease_seconds)
            current = await documents.get(conn, [i.id for i in items])
            for item in items:
                if item.job.id in fences and item.id in current:
                    await self._on_error(conn, item, fences[item.job.id], current[item.id]["stage"], later, events,
                                         owner)
            await jobs.reschedule(conn, later, owner)
            await documents.add_events(conn, events)

    async def _on_error(self, conn: AsyncConnection, item: Item, fence: Fence, stage: str,
                        later: list[jobs.Reschedule], events: list[Event], owner: str) -> None:
        """One document's error: failed here; retried or deferred by adding to ``later``."""
        job, exc = item.job, item.outcome
        if isinstance(exc, StageConflict):
            # Moved under us: a terminal stage ends the job; anything else resumes from where
            # the document now is, as a counted attempt, so a conflict that cannot resolve
            # itself fails in the end instead of looping.
            exc = TransientError("stage_conflict", str(exc))
        assert isinstance(exc, IngestError)
        if job.task == "ingest" and stage in TERMINAL:  # e.g. retired by a newer version meanwhile
            await jobs.finish(conn, [job.id], owner, failed=stage == Stage.FAILED)
            return
        message = redact(exc.message)
        waited = (fence.now - fence.deferred_since).total_seconds() if fence.deferred_since else 0.0
        if isinstance(exc, DeferredError) and waited >= self.max_defer_seconds:
            exc = PermanentError("deferred_too_long", (
                f"waited {_duration(waited)} (MAX_DEFER_SECONDS allows {_duration(self.max_defer_seconds)})"
                f" for: {exc.code}: {message}"))
            message = exc.message
        if isinstance(exc, DeferredError):
            # Come back no later than the deferral's maximum age, to end it then.
            delay = min(exc.retry_after or self.poll_interval, self.max_defer_seconds - waited + 0.1)
            later.append(jobs.Reschedule(job.id, delay, f"{exc.code}: {message}", deferred=True))
            kind = "deferred"
        elif isinstance(exc, PermanentError) or job.attempts >= self.max_attempts:
            if not isinstance(exc, PermanentError):
                message = f"gave up after {job.attempts} attempts: {message}"
            if job.task == "ingest":
                await documents.fail(conn, item.id, stage=stage, code=exc.code, message=message)
            # A failed re-embed leaves the document as it was: complete, searchable in its old space.
            await jobs.finish(conn, [job.id], owner, failed=True, error=f"{exc.code}: {message}")
            kind = "failed" if job.task == "ingest" else "reembed_failed"
        else:
            delay = self.backoff.delay(job.attempts, exc.retry_after)
            later.append(jobs.Reschedule(job.id, delay, f"{exc.code}: {message}", deferred=False))
            kind = "retry_scheduled"
        events.append((item.id, item.correlation_id, kind, stage,
                       {"code": exc.code, "message": message, "attempt": job.attempts}))
        # Waiting (on a batch, a callback, the budget) is the normal course of things for
        # many documents at once: not a warning each.
        report = log.info if kind == "deferred" else log.warning
        report("job_" + kind, job=job.id, document=str(item.id), code=exc.code, message=message, stage=stage)


def _bytes(claimed: list[ClaimedJob]) -> int:
    return sum(job.size_bytes for job in claimed)


def _ended(job: ClaimedJob, document: dict) -> bool:
    """Nothing left for the job to do: a run whose document reached a terminal stage, or a
    re-embed of a document no longer complete (retired, failed, or running again)."""
    if job.task == "reembed":
        return document["stage"] != Stage.COMPLETE
    return document["stage"] in TERMINAL


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"
