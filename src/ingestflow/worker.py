"""The worker: claims jobs from Postgres and runs them through the pipeline.

Workers share nothing but the database, so any number of them can run on any number of
machines. Idle workers sleep on LISTEN/NOTIFY (a new job wakes them at once) with polling
as a fallback for lost notifications and for jobs whose retry time has come.

The database may go away at any moment (restart, failover, a terminated backend): no
loop here ends the process on that. A job interrupted by it is handed back to the queue
once the database answers again, attempt not counted, and resumes from its last durable
stage; until then its lease keeps others off it, and if the outage outlasts the lease,
any worker may take it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import psycopg

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.lifecycle import TERMINAL, Stage
from ingestflow.logging import get_logger, redact
from ingestflow.pipeline.stages import Pipeline, Released, StageContext
from ingestflow.services.base import Embedder
from ingestflow.services.budget import Budget
from ingestflow.services.retry import RetryPolicy
from ingestflow.store import documents, jobs, vectors
from ingestflow.store.database import Database
from ingestflow.store.documents import StageConflict
from ingestflow.store.jobs import ClaimedJob, LeaseLost
from ingestflow.store.outage import DatabaseUnavailable, backoff, until_reachable

log = get_logger("ingestflow.worker")

StopCondition = Callable[[], Awaitable[bool]]


class Worker:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        *,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
        max_attempts: int,
        max_defer_seconds: float,
        backoff: RetryPolicy,
        budget: Budget | None,
        repair: Embedder | None,
        repair_interval: float,
        index_min_vectors: int | None,
        index_interval: float,
        owner: str | None = None,
    ) -> None:
        """Every value comes from Settings (runtime.py): this class repeats no default."""
        self.db = db
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.max_defer_seconds = max_defer_seconds
        self.backoff = backoff
        self.owner = owner or jobs.new_owner()
        self.budget = budget  # sweeps reservations that killed workers left behind
        self.repair = repair  # the real embedder whose health decides when to repair
        self.repair_interval = repair_interval if repair is not None else None
        self.index_min_vectors = index_min_vectors  # None: this worker builds no indexes
        self.index_interval = index_interval
        self.processed = 0
        self.stop_when: StopCondition | None = None  # checked when idle; true ends run()
        self._wake = asyncio.Event()
        self._stopping = False

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): running jobs are released at the next stage boundary."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Work until asked to stop, or until idle and ``stop_when()`` is true."""
        log.info("worker_started", owner=self.owner, concurrency=self.concurrency)
        background = [asyncio.create_task(self._listen())]
        if self.repair_interval is not None:
            background.append(asyncio.create_task(self._every(self.repair_interval, "repair_check",
                                                              self.schedule_repairs)))
        if self.index_min_vectors is not None:
            background.append(asyncio.create_task(self._every(self.index_interval, "index_build",
                                                              self._build_indexes)))
        if self.budget is not None:
            background.append(asyncio.create_task(self._every(self.lease_seconds, "reservation_sweep",
                                                              self.budget.sweep)))
        try:
            await asyncio.gather(*(self._slot() for _ in range(self.concurrency)))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            log.info("worker_stopped", owner=self.owner, processed=self.processed)

    async def _slot(self) -> None:
        failures = 0  # consecutive database failures: back off, never exit
        while not self._stopping:
            self._wake.clear()
            try:
                job = await self._claim()
                if job is not None:
                    failures = 0
                    await self.process(job)
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
                log.warning("database_unavailable", doing="claim a job", retry_in=round(delay, 2),
                            error=type(exc).__name__)
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except TimeoutError:
                pass

    async def _claim(self) -> ClaimedJob | None:
        async with self.db.pool.connection() as conn, conn.transaction():
            return await jobs.claim(conn, self.owner, self.lease_seconds)

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
            try:
                await task()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried at the next turn
                log.warning(f"{name}_failed", error=redact(f"{type(exc).__name__}: {exc}"))

    async def _build_indexes(self) -> None:
        """Build each space's HNSW index once it is big enough (see store/vectors.py)."""
        assert self.index_min_vectors is not None
        built = await vectors.build_indexes(self.db.url, min_vectors=self.index_min_vectors)
        if built:
            log.info("hnsw_index_built", spaces=built)

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
            for document_id, correlation_id in rows:
                await documents.add_event(conn, document_id, correlation_id, "repair_scheduled",
                                          Stage.CHUNKED, {"embedder": self.repair.model})
                await documents.enqueue(conn, document_id)
        if rows:
            log.info("repairs_scheduled", documents=len(rows), embedder=self.repair.model)
        return len(rows)

    async def process(self, job: ClaimedJob) -> None:
        """Run one claimed job; whatever happens, the job ends up done, failed, rescheduled
        or back in the queue (never ``running`` without a live worker behind it)."""
        try:
            await self._process(job)
        except DatabaseUnavailable as exc:
            log.warning("job_interrupted", job=job.id, reason=type(exc).__name__)
            await self._give_back(job)

    async def _process(self, job: ClaimedJob) -> None:
        async with self.db.pool.connection() as conn:
            document = await documents.get(conn, job.document_id)
        if document is None or document["stage"] in TERMINAL:
            async with self.db.pool.connection() as conn:
                await jobs.finish(conn, job, self.owner, failed=document is not None
                                  and document["stage"] == Stage.FAILED)
            return
        ctx = StageContext(job, self.owner, document, should_stop=lambda: self._stopping)
        if job.attempts > self.max_attempts:  # claimed again and again: its workers died
            await self._on_error(ctx, PermanentError(
                "worker_lost", f"the job was started {job.attempts - 1} times and never finished "
                               "(its worker stopped or crashed each time)"))
            return
        async with self.db.pool.connection() as conn:
            await documents.add_event(conn, job.document_id, document["correlation_id"], "claimed",
                                      document["stage"], {"owner": self.owner, "attempt": job.attempts})
        log.info("job_claimed", job=job.id, document=str(job.document_id),
                 stage=document["stage"], attempt=job.attempts)
        work = asyncio.create_task(self.pipeline.run(ctx))
        renewer = asyncio.create_task(self._renew(ctx))
        try:
            await work
            self.processed += 1
            log.info("job_done", job=job.id, document=str(job.document_id))
        except Released:
            async with self.db.pool.connection() as conn:
                await jobs.release(conn, job, self.owner)
            log.info("job_released", job=job.id)
        except LeaseLost:
            log.warning("job_abandoned", job=job.id, reason="lease lost")
        except StageConflict as exc:
            # Moved under us: a terminal stage ends the job (see _on_error); anything else
            # resumes from where the document now is, as a counted attempt, so a conflict
            # that cannot resolve itself fails in the end instead of looping.
            await self._on_error(ctx, TransientError("stage_conflict", str(exc)))
        except IngestError as exc:
            await self._on_error(ctx, exc)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - an unknown bug retries, then fails visibly
            log.exception("job_crashed", job=job.id)
            await self._on_error(ctx, TransientError("internal_error", f"{type(exc).__name__}: {exc}"))
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _renew(self, ctx: StageContext) -> None:
        """Keep the lease alive while working. A lost lease is flagged, not cancelled: a paid
        call in flight finishes and is settled as billed, then the pipeline stops at its
        next step and writes nothing."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                async with self.db.pool.connection() as conn, conn.transaction():
                    await jobs.fence(conn, ctx.job, self.owner, self.lease_seconds)
            except LeaseLost:
                log.warning("lease_lost", job=ctx.job.id)
                ctx.lease_lost = True
                return
            except DatabaseUnavailable as exc:  # the lease may still hold when it is back
                log.warning("lease_renewal_failed", job=ctx.job.id, error=type(exc).__name__)

    async def _give_back(self, job: ClaimedJob) -> None:
        """Return an interrupted job to the queue once the database answers; past the
        lease there is nothing to give back (any worker may claim it by then)."""
        async def release() -> None:
            async with self.db.pool.connection() as conn:
                await jobs.release(conn, job, self.owner)

        try:
            await until_reachable(release, seconds=self.lease_seconds, what="hand back a job")
            log.info("job_released", job=job.id)
        except DatabaseUnavailable:
            log.warning("job_left_to_lease_expiry", job=job.id)

    async def _on_error(self, ctx: StageContext, exc: IngestError) -> None:
        job = ctx.job
        message = redact(exc.message)
        stage = ctx.document["stage"]
        try:
            async with self.db.pool.connection() as conn, conn.transaction():
                fence = await jobs.fence(conn, job, self.owner, self.lease_seconds)
                current = await documents.get(conn, ctx.document_id)
                stage = current["stage"] if current else stage
                if stage in TERMINAL:  # e.g. retired by a newer version meanwhile
                    await jobs.finish(conn, job, self.owner, failed=stage == Stage.FAILED)
                    return
                waited = (fence.now - fence.deferred_since).total_seconds() if fence.deferred_since else 0.0
                if isinstance(exc, DeferredError) and waited >= self.max_defer_seconds:
                    exc = PermanentError("deferred_too_long", (
                        f"waited {_duration(waited)} (MAX_DEFER_SECONDS allows {_duration(self.max_defer_seconds)})"
                        f" for: {exc.code}: {message}"))
                    message = exc.message
                if isinstance(exc, DeferredError):
                    # Come back no later than the deferral's maximum age, to end it then.
                    delay = min(exc.retry_after or self.poll_interval, self.max_defer_seconds - waited + 0.1)
                    await jobs.reschedule(conn, job, self.owner, delay_seconds=delay,
                                          reason=f"{exc.code}: {message}", deferred=True)
                    kind = "deferred"
                elif isinstance(exc, PermanentError) or job.attempts >= self.max_attempts:
                    code = exc.code
                    if not isinstance(exc, PermanentError):
                        message = f"gave up after {job.attempts} attempts: {message}"
                    await documents.fail(conn, ctx.document_id, stage=stage, code=code,
                                         message=message)
                    await jobs.finish(conn, job, self.owner, failed=True, error=f"{code}: {message}")
                    kind = "failed"
                else:
                    delay = self.backoff.delay(job.attempts, exc.retry_after)
                    await jobs.reschedule(conn, job, self.owner, delay_seconds=delay,
                                          reason=f"{exc.code}: {message}", deferred=False)
                    kind = "retry_scheduled"
                await documents.add_event(conn, ctx.document_id, ctx.correlation_id, kind, stage,
                                          {"code": exc.code, "message": message,
                                           "attempt": job.attempts})
        except LeaseLost:
            log.warning("job_abandoned", job=job.id, reason="lease lost")
            return
        log.warning("job_" + kind, job=job.id, document=str(ctx.document_id), code=exc.code,
                    message=message, stage=stage)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"
