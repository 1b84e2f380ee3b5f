"""Drives one document version through parse -> chunk -> embed -> complete.

Each stage follows the same pattern, so that a crash at any point loses nothing:

1. a short transaction marks the stage as started (compare-and-set on the stage);
2. the slow work runs with no transaction open (provider calls, CPU-bound parsing);
3. a second transaction, fenced by the job lease, writes the results *and* advances the
   stage, so the stage never claims more than the database holds.

Resuming after a crash starts from the last durable stage. Embedding commits vectors
batch by batch and resumes at the first chunk without a vector. A write transaction that
follows a paid call is retried while the database is unreachable (for up to a lease),
so an outage does not throw away what the provider was paid for.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import AsyncConnection

from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.lifecycle import Stage
from ingestflow.pipeline.chunking import ChunkingConfig, chunk_markdown
from ingestflow.services.base import Embedder, PageSpan, ParsedDocument
from ingestflow.services.guard import CallContext, ServiceGuard
from ingestflow.services.local_parser import estimate_pages
from ingestflow.services.packing import pack
from ingestflow.services.router import ParseCallbacks, Services
from ingestflow.store import chunks as store_chunks
from ingestflow.store import documents, jobs, parse_jobs, vectors
from ingestflow.store.chunks import NewChunk
from ingestflow.store.database import Database
from ingestflow.store.documents import StageConflict
from ingestflow.store.files import FileStore
from ingestflow.store.jobs import ClaimedJob, LeaseLost
from ingestflow.store.outage import until_reachable
from ingestflow.store.parse_jobs import OpenParseJob

T = TypeVar("T")
AWAITING_PARSE = "awaiting_parse"


def _awaiting(what: str, poll_seconds: float) -> DeferredError:
    return DeferredError(AWAITING_PARSE, f"waiting for {what}", retry_after=poll_seconds)


class Released(Exception):
    """The worker is shutting down; the job goes back to the queue as it stands."""


@dataclass
class StageContext:
    job: ClaimedJob
    owner: str
    document: dict[str, Any]
    should_stop: Callable[[], bool]
    lease_lost: bool = False  # set by the worker's lease renewer: write nothing more

    @property
    def document_id(self) -> uuid.UUID:
        return self.document["id"]

    @property
    def correlation_id(self) -> uuid.UUID:
        return self.document["correlation_id"]

    @property
    def call_context(self) -> CallContext:
        return CallContext(self.document["tenant"], self.document_id, self.correlation_id,
                           job_id=self.job.id, owner=self.owner)


class Pipeline:
    def __init__(
        self,
        db: Database,
        services: Services,
        files: FileStore,
        *,
        chunking: ChunkingConfig,
        lease_seconds: float,
        batch_size: int = 2048,
    ) -> None:
        self.db = db
        self.services = services
        self.files = files
        self.chunking = chunking
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size

    async def run(self, ctx: StageContext) -> None:
        """Advance the document from wherever it is to complete."""
        stage = ctx.document["stage"]
        if stage in (Stage.QUEUED, Stage.PARSING):
            await self.parse(ctx)
            stage = Stage.PARSED
        if stage in (Stage.PARSED, Stage.CHUNKING):
            self._check_stop(ctx)
            await self.chunk(ctx)
            stage = Stage.CHUNKED
        if stage in (Stage.CHUNKED, Stage.EMBEDDING):
            self._check_stop(ctx)
            await self.embed(ctx)
            stage = Stage.EMBEDDED
        if stage == Stage.EMBEDDED:
            self._check_stop(ctx)
            await self.complete(ctx)

    # -- stages ---------------------------------------------------------------------

    async def parse(self, ctx: StageContext) -> None:
        started = time.perf_counter()
        callbacks = self.services.callbacks
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, (Stage.QUEUED, Stage.PARSING), Stage.PARSING)
            data = await self.files.get(conn, ctx.document["sha256"])
            waiting = await parse_jobs.open_job(conn, ctx.document_id) if callbacks else None
        mime, name = ctx.document["mime"], ctx.document["source_name"]
        parser = self.services.parser
        fallback_reason = None
        parse_job = None
        try:
            if callbacks is not None:
                parsed, parse_job = await self._parse_by_callback(ctx, callbacks, data, waiting)
            else:
                guard = self.services.parse_guard
                pages = await asyncio.to_thread(estimate_pages, data, mime) if guard.pricing else 0
                parsed = await guard.call(
                    lambda: parser.parse(data, mime, name), units=pages, context=ctx.call_context,
                    actual_units=lambda p: p.usage_pages or pages,
                )
        except (TransientError, DeferredError) as exc:
            if self.services.parser_fallback is None or exc.code == AWAITING_PARSE:
                raise
            fallback_reason = str(exc)
            parsed = await self.services.parser_fallback.parse(data, mime, name)
        pages = [[p.page, p.start, p.end] for p in parsed.pages]

        async def write(conn: AsyncConnection) -> None:
            if parse_job is not None and not await parse_jobs.finish(conn, parse_job, "applied"):
                raise StageConflict(f"parse job {parse_job} was applied by its callback")
            await documents.save_text(conn, ctx.document_id, parsed.markdown, pages, parsed.parser)
            await documents.advance(conn, ctx.document_id, (Stage.PARSING,), Stage.PARSED)
            if fallback_reason is not None:
                await self._event(conn, ctx, "fallback", Stage.PARSED, started, service="parser",
                                  used=parsed.parser, reason=fallback_reason)
            await self._event(conn, ctx, "stage_done", Stage.PARSED, started,
                              chars=len(parsed.markdown), pages=len(pages),
                              parser=parsed.parser, usage_pages=parsed.usage_pages)

        await self._commit(ctx, write, "save the parsed text")

    async def _parse_by_callback(
        self, ctx: StageContext, callbacks: ParseCallbacks, data: bytes, waiting: OpenParseJob | None,
    ) -> tuple[ParsedDocument, uuid.UUID]:
        """Submit the document with a callback URL and wait deferred (no lease held); when
        the job comes round again, poll the provider once in case the callback was lost.
        Returns the parsed text only when the job is done; raises DeferredError meanwhile."""
        if waiting is not None:
            if waiting.state == "failed":  # the callback said so; the job only reports it
                await self._close_parse_job(ctx, waiting.id, "abandoned")
                raise PermanentError("parse_failed", f"LlamaParse could not parse the document: {waiting.error}")
            if waiting.age_seconds <= callbacks.timeout_seconds:
                try:
                    state = await callbacks.parser.status(waiting.provider_job_id)
                except PermanentError as exc:
                    await self._close_parse_job(ctx, waiting.id, "failed", exc.message)
                    raise
                except TransientError as exc:
                    if exc.code != "parse_canceled":  # unanswered poll: the job lives on
                        raise _awaiting(f"LlamaParse job {waiting.provider_job_id} (poll unanswered: "
                                        f"{exc.code})", callbacks.poll_seconds) from None
                    state = "CANCELED"
                if state in ("SUCCESS", "PARTIAL_SUCCESS"):
                    return await callbacks.parser.fetch_markdown(waiting.provider_job_id), waiting.id
                if state != "CANCELED":
                    raise _awaiting(f"LlamaParse job {waiting.provider_job_id} is {state}",
                                    callbacks.poll_seconds)
            # Canceled, or no result within the timeout: submit again.
            await self._close_parse_job(ctx, waiting.id, "abandoned")
        key = uuid.uuid4()
        mime, name = ctx.document["mime"], ctx.document["source_name"]
        guard = self.services.parse_guard
        pages = await asyncio.to_thread(estimate_pages, data, mime)
        provider_job_id = await guard.call(
            lambda: callbacks.parser.submit(data, name, webhook_url=callbacks.url(key),
                                            webhook_secret=callbacks.secret(key), mime=mime),
            units=pages, context=ctx.call_context,
        )

        async def record(conn: AsyncConnection) -> None:
            await parse_jobs.insert(conn, key, ctx.document_id, provider_job_id)
            await documents.add_event(conn, ctx.document_id, ctx.correlation_id, "parse_submitted",
                                      Stage.PARSING, {"provider_job_id": provider_job_id, "pages": pages})

        await self._commit(ctx, record, "record the parse job")
        raise _awaiting(f"LlamaParse job {provider_job_id} submitted; its callback brings the result",
                        callbacks.poll_seconds)

    async def _close_parse_job(self, ctx: StageContext, key: uuid.UUID, state: str,
                               error: str | None = None) -> None:
        async with self._stage_txn(ctx) as conn:
            await parse_jobs.finish(conn, key, state, error)

    async def chunk(self, ctx: StageContext) -> None:
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, (Stage.PARSED, Stage.CHUNKING), Stage.CHUNKING)
            text = await documents.load_text(conn, ctx.document_id)
        spans = [PageSpan(*p) for p in text["pages"]]
        chunks = await asyncio.to_thread(chunk_markdown, text["markdown"], spans, self.chunking)
        async with self._stage_txn(ctx, progress=True) as conn:
            await store_chunks.replace(conn, ctx.document_id, (
                NewChunk(c.ordinal, c.text, c.token_count,
                         {"pages": list(c.pages), "heading_path": list(c.heading_path),
                          "char_start": c.char_start, "char_end": c.char_end})
                for c in chunks))
            await documents.advance(conn, ctx.document_id, (Stage.CHUNKING,), Stage.CHUNKED)
            await self._event(conn, ctx, "stage_done", Stage.CHUNKED, started, chunks=len(chunks),
                              tokens=sum(c.token_count for c in chunks))

    async def embed(self, ctx: StageContext) -> None:
        """Embed with the real model; in HYBRID, fall back (degraded) when it is unusable."""
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, (Stage.CHUNKED, Stage.EMBEDDING), Stage.EMBEDDING)
        primary, fallback = self.services.embedder, self.services.embedder_fallback
        try:
            stats = await self._embed_all(ctx, primary, self.services.embed_guard)
            used, degraded_reason = primary, None
        except (TransientError, DeferredError) as exc:
            if fallback is None or ctx.document["degraded"]:
                raise  # a repair waits for the real model instead of falling back again
            degraded_reason = str(exc)
            stats = await self._embed_all(ctx, fallback, ServiceGuard("local", self.services.embed_guard.retry))
            used = fallback
        async with self._stage_txn(ctx, progress=True) as conn:
            space_id = stats.pop("space_id")
            if await vectors.chunks_without_vectors(conn, ctx.document_id, space_id):
                raise TransientError("incomplete_embedding", "some chunks still lack a vector")
            if degraded_reason is None:
                # The real model covers every chunk: drop any fallback vectors (repair).
                await vectors.delete_other_spaces(conn, ctx.document_id, space_id)
            else:
                await self._event(conn, ctx, "fallback", Stage.EMBEDDING, started, service="embeddings",
                                  used=f"{used.provider}/{used.model}", reason=degraded_reason)
            await documents.set_degraded(conn, ctx.document_id, degraded_reason is not None)
            await documents.advance(conn, ctx.document_id, (Stage.EMBEDDING,), Stage.EMBEDDED)
            await self._event(conn, ctx, "stage_done", Stage.EMBEDDED, started, **stats,
                              provider=used.provider, model=used.model,
                              degraded=degraded_reason is not None)

    async def _embed_all(self, ctx: StageContext, embedder: Embedder, guard: ServiceGuard) -> dict[str, int]:
        """Vectors for every chunk that lacks one in this embedder's space, batch by batch."""
        async with self.db.pool.connection() as conn:
            space_id = await vectors.ensure_space(
                conn, embedder.provider, embedder.model, embedder.dimensions
            )
        async with self._stage_txn(ctx) as conn:
            reused = await vectors.reuse_vectors(conn, ctx.document_id, space_id)
            todo = await vectors.chunks_without_vectors(conn, ctx.document_id, space_id)
        batches = pack([t[2] for t in todo], embedder.spec, max_inputs=self.batch_size,
                       max_tokens=guard.max_request_tokens)
        embedded = tokens = requests = 0
        for batch in batches:
            self._check_stop(ctx)
            rows = todo[batch.start:batch.stop]
            texts = [r[1] for r in rows]
            result = await guard.call(
                lambda texts=texts: embedder.embed(texts), units=sum(r[2] for r in rows),
                context=ctx.call_context, actual_units=lambda r: r.usage_tokens,
                headers=lambda r: r.extra,
            )
            if result.vectors.shape != (len(rows), embedder.dimensions):
                raise TransientError("invalid_response", "embedder returned the wrong shape")
            await self._commit(ctx, lambda conn, rows=rows, result=result: vectors.write_vectors(
                conn, [r[0] for r in rows], space_id, result.vectors), "store vectors")
            embedded += len(rows)
            tokens += result.usage_tokens
            requests += result.requests
        return {"space_id": space_id, "embedded": embedded, "reused": reused,
                "tokens": tokens, "requests": requests}

    async def complete(self, ctx: StageContext) -> None:
        """Make this version current (retiring older ones), or, if a newer version won the
        race, retire this one. The source lock comes before the lease fence: a swap of a
        newer version ends this job, so taking them the other way round could deadlock."""
        started = time.perf_counter()
        doc = ctx.document
        async with self.db.pool.connection() as conn, conn.transaction():
            await documents.lock_source(conn, doc["tenant"], doc["source_name"])
            await jobs.fence(conn, ctx.job, ctx.owner, self.lease_seconds, progress=True)
            retired = await documents.make_current(conn, ctx.document_id)
            if retired is None:
                await documents.add_event(conn, ctx.document_id, ctx.correlation_id, "superseded",
                                          Stage.SUPERSEDED, {"by": "a newer version"})
            else:
                await documents.advance(conn, ctx.document_id, (Stage.EMBEDDED,), Stage.COMPLETE)
                await self._event(conn, ctx, "stage_done", Stage.COMPLETE, started,
                                  retired=[str(r) for r in retired])
            await jobs.finish(conn, ctx.job, ctx.owner, failed=False)

    # -- helpers --------------------------------------------------------------------

    @asynccontextmanager
    async def _stage_txn(self, ctx: StageContext, *, progress: bool = False) -> AsyncIterator[AsyncConnection]:
        """A transaction whose first statement is the lease fence."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await jobs.fence(conn, ctx.job, ctx.owner, self.lease_seconds, progress=progress)
            yield conn

    async def _commit(self, ctx: StageContext, write: Callable[[AsyncConnection], Awaitable[T]],
                      what: str) -> T:
        """Results of a paid call: a fenced transaction, retried while the database is
        unreachable (for up to a lease; after that the fence decides)."""
        async def attempt() -> T:
            async with self._stage_txn(ctx, progress=True) as conn:
                return await write(conn)

        return await until_reachable(attempt, seconds=self.lease_seconds, what=what)

    @staticmethod
    def _check_stop(ctx: StageContext) -> None:
        if ctx.lease_lost:
            raise LeaseLost(f"job {ctx.job.id} lost its lease")
        if ctx.should_stop():
            raise Released()

    @staticmethod
    async def _event(
        conn: AsyncConnection, ctx: StageContext, kind: str, stage: str, started: float,
        **detail: Any,
    ) -> None:
        detail["seconds"] = round(time.perf_counter() - started, 6)
        await documents.add_event(conn, ctx.document_id, ctx.correlation_id, kind, stage, detail)
