"""Wiring: settings -> database -> services -> pipeline -> worker, shared by CLI and API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from ingestflow import logging as ilog
from ingestflow import tracing
from ingestflow.config import Settings
from ingestflow.store import jobs
from ingestflow.store.database import Database
from ingestflow.store.files import FileStore, LocalFileStore, PostgresFileStore
from ingestflow.store.vectors import IndexPolicy

if TYPE_CHECKING:  # imported where used: commands that only read skip the services and pipeline
    from ingestflow.pipeline.chunking import ChunkingConfig
    from ingestflow.pipeline.stages import Pipeline
    from ingestflow.services.router import Services
    from ingestflow.worker import Worker


STARTUP_WAIT_SECONDS = 300.0  # a restart or failover is over well within this
WORKER_CONNECTIONS = 4  # a worker's connections beside one per slot: lease renewal, maintenance, heartbeat


def worker_pool_size(slots: int) -> int:
    """Connections a worker with this many slots needs from the pool."""
    return slots + WORKER_CONNECTIONS


class Runtime:
    def __init__(self, settings: Settings, db: Database, files: FileStore) -> None:
        self.settings = settings
        self.db = db
        self.files = files

    @cached_property
    def services(self) -> Services:
        """Built at first use: a command that needs none (a re-ingest of unchanged files,
        costs, keys) never imports the providers and their guards."""
        from ingestflow.services.router import build_services

        return build_services(self.settings, self.db, owner=jobs.new_owner())

    async def aclose(self) -> None:
        if "services" in self.__dict__:  # built
            await self.services.aclose()

    def chunking(self) -> ChunkingConfig:
        """CHUNK_MAX_TOKENS and CHUNK_OVERLAP_TOKENS, else the embedding model's own chunk
        size and overlap; capped by what the embedder reads in one input (the overlap
        shrinks in proportion), so that no chunk is cut short by the model. The model is
        known from the settings: ``status`` asks for this without building the services."""
        from ingestflow.pipeline.chunking import ChunkingConfig
        from ingestflow.services.costs import embedder_spec

        s, spec = self.settings, embedder_spec(self.settings)
        max_tokens = s.chunk_max_tokens or spec.chunk_tokens
        overlap = spec.chunk_overlap_tokens if s.chunk_overlap_tokens is None else s.chunk_overlap_tokens
        if max_tokens > spec.max_chunk_tokens:
            max_tokens, overlap = spec.max_chunk_tokens, overlap * spec.max_chunk_tokens // max_tokens
        return ChunkingConfig(max_tokens, min(overlap, max_tokens - 1))

    def pipeline(self) -> Pipeline:
        from ingestflow.pipeline.stages import Pipeline

        s = self.settings
        return Pipeline(
            self.db,
            self.services,
            self.files,
            chunking=self.chunking(),
            search_language=s.search_language,
            lease_seconds=s.lease_seconds,
            batch_size=s.embedding_batch_size,
        )

    def worker(self, concurrency: int | None = None) -> Worker:
        from ingestflow.services.retry import RetryPolicy
        from ingestflow.worker import Worker

        s = self.settings
        return Worker(
            self.db,
            self.pipeline(),
            concurrency=concurrency or s.worker_concurrency,
            claim_size=s.claim_batch_size,
            claim_bytes=s.claim_batch_bytes,
            fill_seconds=s.batch_fill_seconds,
            lease_seconds=s.lease_seconds,
            poll_interval=s.poll_interval_seconds,
            max_attempts=s.max_attempts,
            max_defer_seconds=s.max_defer_seconds,
            backoff=RetryPolicy(attempts=s.max_attempts, base_seconds=s.retry_base_seconds,
                                cap_seconds=s.retry_max_seconds),
            budget=self.services.budget,
            repair=self.services.embedder if self.services.embedder_fallback is not None else None,
            repair_interval=s.repair_interval_seconds,
            index_policy=IndexPolicy.of(s),
            index_interval=s.index_check_seconds,
            heartbeat_seconds=s.worker_heartbeat_seconds,
            warm_up=self.warm_up,
        )

    def warm_up(self) -> None:
        """Load now what the first job or request would otherwise load (the tokenizer, the
        parsers' libraries): long-running processes pay at start, not in a user's upload.
        The CLI's short commands skip this and load only what they touch."""
        from ingestflow.services.local_parser import warm_up as warm_parsers
        from ingestflow.tokens import encoding

        encoding()
        warm_parsers()
        self.services.embedder  # noqa: B018 - built now (numpy, the OpenAI SDK), not in the first batch

    @asynccontextmanager
    async def sharing_model(self) -> AsyncIterator[None]:
        """A long-running process (worker, API server) with the local model loads it now and,
        while the block runs, embeds for the home's short-lived commands, which would each
        load it again (seconds) for one query (services/model_sharing.py)."""
        from ingestflow.services.local_embedder import SentenceTransformerEmbedder

        embedder = self.services.embedder
        if not isinstance(embedder, SentenceTransformerEmbedder):
            yield
            return
        from ingestflow.services import model_sharing

        await asyncio.to_thread(embedder.load)
        async with model_sharing.share(embedder, self.settings.home):
            yield

    def drain(self, document_ids: list[uuid.UUID], concurrency: int | None = None) -> Worker:
        """A worker that stops once none of these documents has work due. It warms up only
        the tokenizer, which every document needs: a one-shot run loads a parser's library
        when a file needs it, so a PDF ingest skips python-docx and html-to-markdown (~0.3 s
        of CPU beside the work, on a small machine)."""
        from ingestflow.tokens import encoding

        worker = self.worker(concurrency)
        worker.warm_up = encoding

        async def idle() -> bool:
            async with self.db.pool.connection() as conn:
                return await jobs.pending(conn, document_ids) == 0

        worker.stop_when = idle
        return worker


def file_store(settings: Settings) -> FileStore:
    if settings.storage_backend == "postgres":
        return PostgresFileStore()
    return LocalFileStore(settings.home / "files")


@asynccontextmanager
async def open_runtime(settings: Settings, *, pool_size: int = 8, long_running: bool = False,
                       admission_size: int = 0) -> AsyncIterator[Runtime]:
    """``long_running`` (worker, API server): wait out a database that is restarting at
    start, as the process will wait out one later. ``admission_size``: see Database."""
    ilog.configure(settings.log_level, json=settings.log_json, secrets=settings.secret_values())
    tracing.configure()
    db = await Database.open(settings, max_size=pool_size, admission_size=admission_size,
                             wait_seconds=STARTUP_WAIT_SECONDS if long_running else 0.0)
    rt = Runtime(settings, db, file_store(settings))
    try:
        yield rt
    finally:
        await rt.aclose()
        await db.close()
