"""Drives one document version through parse -> chunk -> embed -> complete.

Each stage follows the same pattern, so that a crash at any point loses nothing:

1. a short transaction marks the stage as started (compare-and-set on the stage);
2. the slow work runs with no transaction open (provider calls, CPU-bound parsing);
3. a second transaction, fenced by the job lease, writes the results *and* advances the
   stage, so the stage never claims more than the database holds.

Resuming after a crash starts from the last durable stage. Embedding commits vectors
batch by batch and resumes at the first chunk without a vector.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ingestflow.errors import DeferredError, TransientError
from ingestflow.pipeline.chunking import ChunkingConfig, chunk_markdown
from ingestflow.pipeline.parsing import estimate_pages
from ingestflow.services.base import Embedder, PageSpan
from ingestflow.services.guard import CallContext, ServiceGuard
from ingestflow.services.router import Services
from ingestflow.store import documents, jobs, vectors
from ingestflow.store.database import Database
from ingestflow.store.files import FileStore
from ingestflow.store.jobs import ClaimedJob


class Released(Exception):
    """The worker is shutting down; the job goes back to the queue as it stands."""


@dataclass
class StageContext:
    job: ClaimedJob
    owner: str
    document: dict[str, Any]
    should_stop: Callable[[], bool]

    @property
    def document_id(self) -> uuid.UUID:
        return self.document["id"]

    @property
    def correlation_id(self) -> uuid.UUID:
        return self.document["correlation_id"]

    @property
    def call_context(self) -> CallContext:
        return CallContext(self.document["tenant"], self.document_id, self.correlation_id)


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
        if stage in ("queued", "parsing"):
            await self.parse(ctx)
            stage = "parsed"
        if stage in ("parsed", "chunking"):
            self._check_stop(ctx)
            await self.chunk(ctx)
            stage = "chunked"
        if stage in ("chunked", "embedding"):
            self._check_stop(ctx)
            await self.embed(ctx)
            stage = "embedded"
        if stage == "embedded":
            await self.complete(ctx)

    # -- stages ---------------------------------------------------------------------

    async def parse(self, ctx: StageContext) -> None:
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, ("queued", "parsing"), "parsing")
            data = await self.files.get(conn, ctx.document["sha256"])
        mime, name = ctx.document["mime"], ctx.document["source_name"]
        parser = self.services.parser
        fallback_reason = None
        try:
            guard = self.services.parse_guard
            pages = await asyncio.to_thread(estimate_pages, data, mime) if guard.pricing else 0
            parsed = await guard.call(
                lambda: parser.parse(data, mime, name), units=pages, context=ctx.call_context,
                actual_units=lambda p: p.usage_pages or pages,
            )
        except (TransientError, DeferredError) as exc:
            if self.services.parser_fallback is None:
                raise
            fallback_reason = str(exc)
            parsed = await self.services.parser_fallback.parse(data, mime, name)
        pages = [[p.page, p.start, p.end] for p in parsed.pages]
        async with self._stage_txn(ctx) as conn:
            await documents.save_text(conn, ctx.document_id, parsed.markdown, pages, parsed.parser)
            await documents.advance(conn, ctx.document_id, ("parsing",), "parsed")
            if fallback_reason is not None:
                await self._event(conn, ctx, "fallback", "parsed", started, service="parser",
                                  used=parsed.parser, reason=fallback_reason)
            await self._event(conn, ctx, "stage_done", "parsed", started,
                              chars=len(parsed.markdown), pages=len(pages),
                              parser=parsed.parser, usage_pages=parsed.usage_pages)

    async def chunk(self, ctx: StageContext) -> None:
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, ("parsed", "chunking"), "chunking")
            text = await documents.load_text(conn, ctx.document_id)
        spans = [PageSpan(*p) for p in text["pages"]]
        chunks = await asyncio.to_thread(chunk_markdown, text["markdown"], spans, self.chunking)
        async with self._stage_txn(ctx) as conn:
            # Idempotent: a rerun of this stage replaces whatever an earlier run left.
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (ctx.document_id,))
            async with conn.cursor().copy(
                "COPY chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "uuid", "int4", "text", "text", "int4", "jsonb"])
                for c in chunks:
                    meta = {"pages": list(c.pages), "heading_path": list(c.heading_path),
                            "char_start": c.char_start, "char_end": c.char_end}
                    await copy.write_row((
                        documents.chunk_id(ctx.document_id, c.ordinal), ctx.document_id,
                        c.ordinal, c.text, documents.sha256_hex(c.text), c.token_count,
                        Jsonb(meta),
                    ))
            await documents.advance(conn, ctx.document_id, ("chunking",), "chunked")
            await self._event(conn, ctx, "stage_done", "chunked", started, chunks=len(chunks),
                              tokens=sum(c.token_count for c in chunks))

    async def embed(self, ctx: StageContext) -> None:
        """Embed with the real model; in HYBRID, fall back (degraded) when it is unusable."""
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, ("chunked", "embedding"), "embedding")
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
        async with self._stage_txn(ctx) as conn:
            space_id = stats.pop("space_id")
            if await vectors.chunks_without_vectors(conn, ctx.document_id, space_id):
                raise TransientError("incomplete_embedding", "some chunks still lack a vector")
            if degraded_reason is None:
                # The real model covers every chunk: drop any fallback vectors (repair).
                await vectors.delete_other_spaces(conn, ctx.document_id, space_id)
            else:
                await self._event(conn, ctx, "fallback", "embedding", started, service="embeddings",
                                  used=f"{used.provider}/{used.model}", reason=degraded_reason)
            await conn.execute("UPDATE documents SET degraded = %s WHERE id = %s",
                               (degraded_reason is not None, ctx.document_id))
            await documents.advance(conn, ctx.document_id, ("embedding",), "embedded")
            await self._event(conn, ctx, "stage_done", "embedded", started, **stats,
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
        embedded = tokens = requests = 0
        for batch in self._batches(embedder, [t[2] for t in todo], guard.max_request_tokens):
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
            async with self._stage_txn(ctx) as conn:
                await vectors.write_vectors(conn, [r[0] for r in rows], space_id, result.vectors)
            embedded += len(rows)
            tokens += result.usage_tokens
            requests += result.requests
        return {"space_id": space_id, "embedded": embedded, "reused": reused,
                "tokens": tokens, "requests": requests}

    async def complete(self, ctx: StageContext) -> None:
        started = time.perf_counter()
        async with self._stage_txn(ctx) as conn:
            retired = await documents.make_current(conn, ctx.document_id)
            await documents.advance(conn, ctx.document_id, ("embedded",), "complete")
            await jobs.finish(conn, ctx.job, ctx.owner, failed=False)
            await self._event(conn, ctx, "stage_done", "complete", started,
                              retired=[str(r) for r in retired])

    # -- helpers --------------------------------------------------------------------

    @asynccontextmanager
    async def _stage_txn(self, ctx: StageContext) -> AsyncIterator[AsyncConnection]:
        """A transaction whose first statement is the lease fence."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await jobs.fence(conn, ctx.job, ctx.owner, self.lease_seconds)
            yield conn

    def _batches(self, embedder: Embedder, token_counts: list[int], max_tokens: int | None) -> list[range]:
        """The embedder's request packing, further capped at ``batch_size`` inputs and, under
        a tokens-per-minute limit, at that many tokens (a bigger request could never run)."""
        out = []
        for batch in embedder.batches(token_counts):
            start = batch.start
            tokens = 0
            for i in range(batch.start, batch.stop):
                full = i - start >= self.batch_size
                over = max_tokens is not None and i > start and tokens + token_counts[i] > max_tokens
                if full or over:
                    out.append(range(start, i))
                    start, tokens = i, 0
                tokens += token_counts[i]
            if start < batch.stop:
                out.append(range(start, batch.stop))
        return out

    @staticmethod
    def _check_stop(ctx: StageContext) -> None:
        if ctx.should_stop():
            raise Released()

    @staticmethod
    async def _event(
        conn: AsyncConnection, ctx: StageContext, kind: str, stage: str, started: float,
        **detail: Any,
    ) -> None:
        detail["seconds"] = round(time.perf_counter() - started, 6)
        await documents.add_event(conn, ctx.document_id, ctx.correlation_id, kind, stage, detail)
