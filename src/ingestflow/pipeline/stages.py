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

from ingestflow.errors import TransientError
from ingestflow.pipeline.chunking import ChunkingConfig, chunk_markdown
from ingestflow.services.base import Embedder, PageSpan, Parser
from ingestflow.services.retry import RetryPolicy, call_with_retries
from ingestflow.store import documents, jobs, vectors
from ingestflow.store.database import Database
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


class Pipeline:
    def __init__(
        self,
        db: Database,
        *,
        parser: Parser,
        embedder: Embedder,
        chunking: ChunkingConfig,
        lease_seconds: float,
        batch_size: int = 2048,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.db = db
        self.parser = parser
        self.embedder = embedder
        self.chunking = chunking
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.retry = retry

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
            data = await documents.load_blob(conn, ctx.document["sha256"])
        parsed = await self.parser.parse(data, ctx.document["mime"], ctx.document["source_name"])
        pages = [[p.page, p.start, p.end] for p in parsed.pages]
        async with self._stage_txn(ctx) as conn:
            await documents.save_text(conn, ctx.document_id, parsed.markdown, pages, parsed.parser)
            await documents.advance(conn, ctx.document_id, ("parsing",), "parsed")
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
        started = time.perf_counter()
        embedder = self.embedder
        async with self.db.pool.connection() as conn:
            space_id = await vectors.ensure_space(
                conn, embedder.provider, embedder.model, embedder.dimensions
            )
        async with self._stage_txn(ctx) as conn:
            await documents.advance(conn, ctx.document_id, ("chunked", "embedding"), "embedding")
            reused = await vectors.reuse_vectors(conn, ctx.document_id, space_id)
            todo = await vectors.chunks_without_vectors(conn, ctx.document_id, space_id)
        embedded = tokens = requests = 0
        for batch in self._batches(embedder, [t[2] for t in todo]):
            self._check_stop(ctx)
            rows = todo[batch.start:batch.stop]
            texts = [r[1] for r in rows]
            result = await call_with_retries(lambda: embedder.embed(texts), self.retry)
            if result.vectors.shape != (len(rows), embedder.dimensions):
                raise TransientError("invalid_response", "embedder returned the wrong shape")
            async with self._stage_txn(ctx) as conn:
                await vectors.write_vectors(conn, [r[0] for r in rows], space_id, result.vectors)
            embedded += len(rows)
            tokens += result.usage_tokens
            requests += result.requests
        async with self._stage_txn(ctx) as conn:
            if await vectors.chunks_without_vectors(conn, ctx.document_id, space_id):
                raise TransientError("incomplete_embedding", "some chunks still lack a vector")
            await documents.advance(conn, ctx.document_id, ("embedding",), "embedded")
            await self._event(conn, ctx, "stage_done", "embedded", started, embedded=embedded,
                              reused=reused, tokens=tokens, requests=requests,
                              provider=embedder.provider, model=embedder.model)

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

    def _batches(self, embedder: Embedder, token_counts: list[int]) -> list[range]:
        """The embedder's request packing, further capped at ``batch_size`` inputs."""
        return [
            range(start, min(start + self.batch_size, batch.stop))
            for batch in embedder.batches(token_counts)
            for start in range(batch.start, batch.stop, self.batch_size)
        ]

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
