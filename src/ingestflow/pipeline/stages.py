"""Drives a batch of document versions through parse -> chunk -> embed -> complete.

A worker claims many jobs at once and runs each stage for the whole batch, so that many
small documents cost a few transactions and a few provider requests, not dozens each.
Every stage follows the same pattern, so that a crash at any point loses nothing:

1. a short transaction marks the stage as started for every document still where the
   worker found it (compare-and-set on the stage);
2. the slow work runs with no transaction open: parsing and chunking per document (in
   threads), embedding in requests packed across documents of one tenant (embedding.py);
3. a second transaction writes the results *and* advances the stage of exactly the
   documents whose results it writes, so no stage claims more than the database holds.

Every transaction begins with the lease fence of the batch's jobs (batch.py). A document
that fails fails alone, with its own error; the worker reports each outcome. Resuming
after a crash starts from the last durable stage; embedding commits the vectors of each
request as it comes and resumes at the first chunk without a vector. A write that
follows a paid call is retried while the database is unreachable (for up to a lease), so
an outage does not throw away what the provider was paid for.

A ``reembed`` job (a model change) runs only the embedding, into the configured space,
for a document that is already complete and searchable in its tenant's old space.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from ingestflow import tracing
from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.lifecycle import IN_FLIGHT, Stage
from ingestflow.logging import get_logger
from ingestflow.pipeline.batch import Batch, Item, Released, Transactions, advance
from ingestflow.pipeline.chunking import Chunk, ChunkingConfig, chunk_input, chunk_markdown, document_title
from ingestflow.pipeline.embedding import Embedding, Fill
from ingestflow.services.base import PageSpan, ParsedDocument
from ingestflow.services.guard import CallContext, ServiceGuard
from ingestflow.services.local_parser import estimate_pages
from ingestflow.services.router import ParseCallbacks, Services, SpaceModel
from ingestflow.store import chunks as store_chunks
from ingestflow.store import documents, jobs, parse_jobs, vectors
from ingestflow.store.chunks import NewChunk
from ingestflow.store.database import Database
from ingestflow.store.documents import Chunking, Event, StageConflict, Text
from ingestflow.store.files import FileStore
from ingestflow.store.jobs import LeaseLost
from ingestflow.store.parse_jobs import OpenParseJob

log = get_logger("ingestflow.pipeline")
AWAITING_PARSE = "awaiting_parse"
PARSE_CONCURRENCY = 8  # documents parsed at once (threads, or paid parse calls in flight)


class Pipeline:
    def __init__(self, db: Database, services: Services, files: FileStore, *, chunking: ChunkingConfig,
                 search_language: str, lease_seconds: float, batch_size: int) -> None:
        self.db = db
        self.services = services
        self.files = files
        self.chunking = chunking
        self.search_language = search_language
        self.tx = Transactions(db, lease_seconds)
        self.stopping = False  # see stop()
        self.embedding = Embedding(self.tx, services, batch_size=batch_size, stopping=lambda: self.stopping)

    def stop(self) -> None:
        """Shutting down: no provider call starts from now on. Each document not yet sent
        leaves its batch released (back to the queue, attempt given back); what was paid
        for is written first, so it resumes from there."""
        self.stopping = True

    async def run(self, batch: Batch) -> None:
        """Advance every document of the batch from wherever it is to complete."""
        if reembed := batch.at(Stage.COMPLETE, task="reembed"):
            with tracing.document_spans("reembed", reembed):
                await self.reembed(batch.owner, reembed)
        for stages, step in (((Stage.QUEUED, Stage.PARSING), self.parse),
                             ((Stage.PARSED, Stage.CHUNKING), self.chunk),
                             ((Stage.CHUNKED, Stage.EMBEDDING), self.embed),
                             ((Stage.EMBEDDED,), self.complete)):
            if batch.should_stop():
                for item in batch.items:
                    item.leave(Released())
                return
            # before work that costs (complete settles a race of versions itself)
            if step != self.complete and (waiting := batch.at(*IN_FLIGHT)):
                await self.retire_outdated(batch.owner, waiting)
            items = batch.at(*stages)
            if items:
                with tracing.document_spans(step.__name__, items):
                    await step(batch.owner, items)

    async def retire_outdated(self, owner: str, items: list[Item]) -> None:
        """Versions whose source has a newer version on its way end superseded now, before
        the next stage spends anything on them: the newer one replaces them when it
        completes (a source edited three times while queued pays for its last version
        only). The source locks come before the fence, as in ``complete``."""
        async with self.db.pool.connection() as conn:
            found = await documents.outdated(conn, [i.id for i in items])
        if not found:
            return
        started = time.perf_counter()
        doomed = [i for i in items if i.id in found]
        async with self.db.pool.connection() as conn, conn.transaction():
            await documents.lock_sources(conn, [(i.tenant, i.document["source_name"]) for i in doomed])
            live = await self.tx.fence(conn, owner, doomed)
            still = await documents.outdated(conn, [i.id for i in live])
            retired = [i for i in live if i.id in still]
            await documents.retire(conn, [i.id for i in retired])
            await documents.add_events(conn, [_event(i, "superseded", Stage.SUPERSEDED, started,
                                                     by="a newer version on its way") for i in retired])
            await jobs.finish(conn, [i.job.id for i in retired], owner, failed=False)
        for item in retired:
            item.finished = True

    # -- parse ----------------------------------------------------------------------

    async def parse(self, owner: str, items: list[Item]) -> None:
        started = time.perf_counter()
        callbacks = self.services.callbacks
        inputs: dict[uuid.UUID, tuple[bytes, OpenParseJob | None]] = {}

        async def load(conn: AsyncConnection, live: list[Item]) -> None:
            found = await self.files.get(conn, [i.document["sha256"] for i in live])
            for item in live:
                if item.document["sha256"] not in found:  # this one alone; a share may be back soon
                    item.leave(TransientError("file_missing", "The stored file of this document is missing "
                                                              f"from the file store ({item.document['sha256'][:12]})."))
                    continue
                inputs[item.id] = (found[item.document["sha256"]],
                                   await parse_jobs.open_job(conn, item.id) if callbacks else None)

        items = [i for i in await self.tx.start(owner, items, (Stage.QUEUED, Stage.PARSING), Stage.PARSING, load)
                 if i.active]
        results: dict[uuid.UUID, tuple[ParsedDocument, str | None, uuid.UUID | None]] = {}

        async def parse_one(item: Item) -> None:
            if self.stopping:
                item.leave(Released())
                return
            results[item.id] = await self._parse(owner, item, *inputs[item.id])

        await _each(items, parse_one, PARSE_CONCURRENCY)
        done = [i for i in items if i.id in results and i.active]

        async def write(conn: AsyncConnection, live: list[Item]) -> list[Item]:
            for item in live:
                _, _, parse_job = results[item.id]
                if parse_job is not None and not await parse_jobs.finish(conn, parse_job, "applied"):
                    item.leave(StageConflict(f"parse job {parse_job} was applied by its callback"))
            live = [i for i in live if i.active]
            await documents.save_texts(conn, [
                Text(i.id, results[i.id][0].markdown, [[p.page, p.start, p.end] for p in results[i.id][0].pages],
                     results[i.id][0].parser, results[i.id][0].title or None) for i in live])
            moved = await advance(conn, live, (Stage.PARSING,), Stage.PARSED)
            events: list[Event] = []
            for item in moved:
                parsed, fallback_reason, _ = results[item.id]
                if fallback_reason is not None:
                    events.append(_event(item, "fallback", Stage.PARSED, started, service="parser",
                                         used=parsed.parser, reason=fallback_reason))
                events.append(_event(item, "stage_done", Stage.PARSED, started, chars=len(parsed.markdown),
                                     pages=len(parsed.pages), parser=parsed.parser, usage_pages=parsed.usage_pages))
            await documents.add_events(conn, events)
            return moved

        await self.tx.commit(owner, done, write, "save the parsed texts")

    async def _parse(self, owner: str, item: Item, data: bytes, waiting: OpenParseJob | None,
                     ) -> tuple[ParsedDocument, str | None, uuid.UUID | None]:
        """(parsed text, why the fallback parser was used, the parse job it came from)."""
        mime, name = item.document["mime"], item.document["source_name"]
        callbacks = self.services.callbacks
        try:
            if callbacks is not None:
                parsed, key = await self._parse_by_callback(owner, item, callbacks, data, waiting)
                return parsed, None, key
            guard, parser = self.services.parse_guard, self.services.parser
            pages = await asyncio.to_thread(estimate_pages, data, mime) if guard.pricing else 0
            parsed = await guard.call(lambda: parser.parse(data, mime, name), units=pages,
                                      context=_context(owner, item, pages), actual_units=lambda p: p.usage_pages or pages)
            return parsed, None, None
        except (TransientError, DeferredError) as exc:
            if self.services.parser_fallback is None or exc.code == AWAITING_PARSE:
                raise
            return await self.services.parser_fallback.parse(data, mime, name), str(exc), None

    async def _parse_by_callback(self, owner: str, item: Item, callbacks: ParseCallbacks, data: bytes,
                                 waiting: OpenParseJob | None) -> tuple[ParsedDocument, uuid.UUID]:
        """Submit the document with a callback URL and wait deferred (no lease held); when
        the job comes round again, poll the provider once in case the callback was lost.
        Returns the parsed text only when the job is done; raises DeferredError meanwhile."""
        if waiting is not None:
            if waiting.state == "failed":  # the callback said so; the job only reports it
                await self._close_parse_job(owner, item, waiting.id, "abandoned")
                raise PermanentError("parse_failed", f"LlamaParse could not parse the document: {waiting.error}")
            if waiting.age_seconds <= callbacks.timeout_seconds:
                try:
                    state = await callbacks.parser.status(waiting.provider_job_id)
                except PermanentError as exc:
                    await self._close_parse_job(owner, item, waiting.id, "failed", exc.message)
                    raise
                except TransientError as exc:
                    if exc.code != "parse_canceled":  # unanswered poll: the job lives on
                        raise _awaiting(f"LlamaParse job {waiting.provider_job_id} (poll unanswered: "
                                        f"{exc.code})", callbacks.poll_seconds) from None
                    state = "CANCELED"
                if state in ("SUCCESS", "PARTIAL_SUCCESS"):
                    return await callbacks.parser.fetch_markdown(waiting.provider_job_id), waiting.id
                if state != "CANCELED":
                    raise _awaiting(f"LlamaParse job {waiting.provider_job_id} is {state}", callbacks.poll_seconds)
            # Canceled, or no result within the timeout: submit again.
            await self._close_parse_job(owner, item, waiting.id, "abandoned")
        key = uuid.uuid4()
        mime, name = item.document["mime"], item.document["source_name"]
        pages = await asyncio.to_thread(estimate_pages, data, mime)
        provider_job_id = await self.services.parse_guard.call(
            lambda: callbacks.parser.submit(data, name, webhook_url=callbacks.url(key),
                                            webhook_secret=callbacks.secret(key), mime=mime),
            units=pages, context=_context(owner, item, pages),
        )

        async def record(conn: AsyncConnection, live: list[Item]) -> list[Item]:
            await parse_jobs.insert(conn, key, item.id, provider_job_id)
            await documents.add_events(conn, [(item.id, item.correlation_id, "parse_submitted", Stage.PARSING,
                                               {"provider_job_id": provider_job_id, "pages": pages})])
            return live

        await self.tx.commit(owner, [item], record, "record the parse job")
        raise _awaiting(f"LlamaParse job {provider_job_id} submitted; its callback brings the result",
                        callbacks.poll_seconds)

    async def _close_parse_job(self, owner: str, item: Item, key: uuid.UUID, state: str,
                               error: str | None = None) -> None:
        async with self.tx.fenced(owner, [item]) as (conn, live):
            if live:
                await parse_jobs.finish(conn, key, state, error)

    # -- chunk ----------------------------------------------------------------------

    async def chunk(self, owner: str, items: list[Item]) -> None:
        started = time.perf_counter()
        texts: dict[uuid.UUID, Text] = {}

        async def load(conn: AsyncConnection, live: list[Item]) -> None:
            texts.update(await documents.load_texts(conn, [i.id for i in live]))

        items = await self.tx.start(owner, items, (Stage.PARSED, Stage.CHUNKING), Stage.CHUNKING, load)
        for item in items:
            if item.id not in texts:
                item.leave(StageConflict(f"document {item.id} has no parsed text"))
        items = [i for i in items if i.active]

        def cut(item: Item) -> tuple[str, list[Chunk]]:
            text = texts[item.id]
            title = document_title(text.markdown, text.title, item.document["source_name"])
            return title, chunk_markdown(text.markdown, [PageSpan(*p) for p in text.pages], self.chunking, title)

        chunked = await asyncio.to_thread(lambda: {i.id: cut(i) for i in items})

        async def write(conn: AsyncConnection, live: list[Item]) -> list[Item]:
            await documents.set_chunking(conn, [Chunking(i.id, chunked[i.id][0], self.chunking.signature)
                                                for i in live])
            await store_chunks.replace(conn, {i.id: [
                NewChunk(c.ordinal, c.text, chunk_input(c.context, c.text), c.token_count,
                         {"pages": list(c.pages), "heading_path": list(c.heading_path),
                          "char_start": c.char_start, "char_end": c.char_end}) for c in chunked[i.id][1]]
                for i in live}, search_config=self.search_language)
            moved = await advance(conn, live, (Stage.CHUNKING,), Stage.CHUNKED)
            await documents.add_events(conn, [
                _event(i, "stage_done", Stage.CHUNKED, started, chunks=len(chunked[i.id][1]),
                       tokens=sum(c.token_count for c in chunked[i.id][1])) for i in moved])
            return moved

        await self.tx.commit(owner, items, write, "store the chunks")

    # -- embed ----------------------------------------------------------------------

    async def embed(self, owner: str, items: list[Item]) -> None:
        """Embed into the configured space (synchronously or through the Batch API), and
        into the tenant's old space during a model change. In HYBRID, documents whose
        synchronous requests cannot be served fall back (degraded), unless they are being
        repaired, which waits for the real model."""
        started = time.perf_counter()
        items = await self.tx.start(owner, items, (Stage.CHUNKED, Stage.EMBEDDING), Stage.EMBEDDING)
        configured, batched = await self.embedding.fill_configured(owner, items)
        space: dict[uuid.UUID, Fill] = {i.id: configured for i in items}  # where each document's vectors go
        reasons: dict[uuid.UUID, str] = {}  # why a document fell back
        fallback = await self._fallback()
        fall = [i for i in items if i.id not in batched and isinstance(i.outcome, TransientError | DeferredError)
                and fallback is not None and not i.document["degraded"]]
        if fall:
            assert fallback is not None
            for item in fall:
                reasons[item.id], item.outcome, space[item.id] = str(item.outcome), None, fallback
            await self.embedding.fill(owner, fall, fallback)
        old = await self.embedding.old_spaces(sorted({i.tenant for i in items if i.active}), configured.space_id)
        for tenant, fill in old.items():
            await self.embedding.fill(owner, [i for i in items if i.active and i.tenant == tenant
                                              and space[i.id].space_id != fill.space_id], fill)

        async def write(conn: AsyncConnection, live: list[Item]) -> None:
            needs: dict[int, list[Item]] = defaultdict(list)
            for item in live:
                needs[space[item.id].space_id].append(item)
                if item.tenant in old and old[item.tenant].space_id != space[item.id].space_id:
                    needs[old[item.tenant].space_id].append(item)
            for space_id, group in needs.items():
                await _require_vectors(conn, group, space_id)
            live = [i for i in live if i.active]
            if fallback is not None:  # repaired by the real model: its fallback vectors go
                repaired = [i.id for i in live if i.document["degraded"] and i.id not in reasons
                            and (i.tenant not in old or old[i.tenant].space_id != fallback.space_id)]
                await vectors.delete_space_vectors(conn, repaired, fallback.space_id)
            await documents.set_degraded(conn, {i.id: i.id in reasons for i in live})
            moved = await advance(conn, live, (Stage.EMBEDDING,), Stage.EMBEDDED)
            events: list[Event] = []
            for item in moved:
                embedder = space[item.id].model.embedder
                if item.id in reasons:
                    events.append(_event(item, "fallback", Stage.EMBEDDING, started, service="embeddings",
                                         used=f"{embedder.provider}/{embedder.model}", reason=reasons[item.id]))
                events.append(_event(item, "stage_done", Stage.EMBEDDED, started, **item.stats,
                                     provider=embedder.provider, model=embedder.model, degraded=item.id in reasons))
            await documents.add_events(conn, events)

        await self.tx.commit(owner, [i for i in items if i.active], write, "finish embedding")

    async def _fallback(self) -> Fill | None:
        """HYBRID's fallback embedder and its space."""
        embedder = self.services.embedder_fallback
        if embedder is None:
            return None
        model = SpaceModel(embedder, ServiceGuard("local", self.services.embed_guard.retry))
        return Fill(await self.embedding.space_id(model), model)

    async def reembed(self, owner: str, items: list[Item]) -> None:
        """A model change: embed complete documents into the configured space. A job ends
        once its document has a vector there for every chunk (or is no longer current);
        then each tenant whose new space covers every current document switches to it."""
        started = time.perf_counter()
        configured, _ = await self.embedding.fill_configured(owner, [i for i in items if i.document["is_current"]])
        finished: list[Item] = []

        async def write(conn: AsyncConnection, live: list[Item]) -> None:
            await _require_vectors(conn, [i for i in live if i.document["is_current"]], configured.space_id)
            finished[:] = [i for i in live if i.active]
            await jobs.finish(conn, [i.job.id for i in finished], owner, failed=False)
            embedder = configured.model.embedder
            await documents.add_events(conn, [
                _event(i, "reembedded", i.stage, started, **i.stats, provider=embedder.provider, model=embedder.model)
                for i in finished if i.document["is_current"]])

        await self.tx.commit(owner, [i for i in items if i.active], write, "finish re-embedding")
        for item in finished:
            item.finished = True
        await self.switch(sorted({i.tenant for i in finished}), configured.space_id)

    async def switch(self, tenants: list[str], space_id: int) -> None:
        """Tenants in the middle of a model change whose new space is now complete (and
        indexed, after a bulk load) search it from now on (one transaction, under the
        tenant's switch lock)."""
        for tenant in tenants:
            async with self.tx.db.pool.connection() as conn, conn.transaction():
                active = await vectors.active_space(conn, tenant)
                if active is None or active.id == space_id:
                    continue
                if await vectors.switch_if_complete(conn, tenant, space_id):
                    log.info("active_space_switched", tenant=tenant, old=active.name, space_id=space_id)

    # -- complete -------------------------------------------------------------------

    async def complete(self, owner: str, items: list[Item]) -> None:
        """Make each version current (retiring older ones), or retire it if a newer version
        of its source won the race. The source locks come before the lease fence: a swap of
        a newer version ends this job, so taking them the other way round could deadlock."""
        started = time.perf_counter()
        configured = (await self.embedding.configured()).space_id
        async with self.db.pool.connection() as conn, conn.transaction():
            await documents.lock_sources(conn, [(i.tenant, i.document["source_name"]) for i in items])
            live = await self.tx.fence(conn, owner, items, progress=True)
            newest: dict[tuple[str, str], Item] = {}
            for item in live:  # at most one version per source becomes current
                key = (item.tenant, item.document["source_name"])
                if key not in newest or newest[key].document["version"] < item.document["version"]:
                    newest[key] = item
            losers = [i for i in live if newest[(i.tenant, i.document["source_name"])] is not i]
            await documents.retire(conn, [i.id for i in losers])
            swap = await documents.make_current(conn, [i.id for i in newest.values()])
            lost = {*swap.lost, *(i.id for i in losers)}
            made_current = set(swap.current)
            current = [i for i in live if i.id in made_current]
            await advance(conn, current, (Stage.EMBEDDED,), Stage.COMPLETE)
            await vectors.adopt_space(conn, sorted({i.tenant for i in current}), configured)  # a first space
            retired_by = defaultdict(list)
            for old, _, by in swap.retired:
                retired_by[by].append(str(old))
            await documents.add_events(conn, [
                _event(i, "superseded", Stage.SUPERSEDED, started, by="a newer version") if i.id in lost
                else _event(i, "stage_done", Stage.COMPLETE, started, retired=retired_by[i.id])
                for i in live if i.id in lost or i.active])
            finished = [i for i in live if i.id in lost or i.active]
            await jobs.finish(conn, [i.job.id for i in finished], owner, failed=False)
        for item in finished:
            item.finished = True
        await self.switch(sorted({i.tenant for i in finished}), configured)


async def _each(items: list[Item], work: Callable[[Item], Awaitable[None]], concurrency: int) -> None:
    """``work`` for every item, a few at a time; an item whose work fails leaves the batch
    with that error (the others go on)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        async with gate:
            if not item.active:
                return
            try:
                await work(item)
            except (IngestError, StageConflict, LeaseLost) as exc:
                item.leave(exc)

    await asyncio.gather(*(one(i) for i in items))


def _context(owner: str, item: Item, units: int) -> CallContext:
    return CallContext(item.tenant, owner, ((item.id, units),))


async def _require_vectors(conn: AsyncConnection, items: list[Item], space_id: int) -> None:
    """A document with a chunk still lacking a vector in the space leaves, to be retried."""
    missing = {p.document_id for p in await vectors.chunks_without_vectors(conn, [i.id for i in items], space_id)}
    for item in items:
        if item.id in missing:
            item.leave(TransientError("incomplete_embedding", "some chunks still lack a vector"))


def _event(item: Item, kind: str, stage: str, started: float, **detail: Any) -> Event:
    detail["seconds"] = round(time.perf_counter() - started, 6)
    return item.id, item.correlation_id, kind, stage, detail


def _awaiting(what: str, poll_seconds: float) -> DeferredError:
    return DeferredError(AWAITING_PARSE, f"waiting for {what}", retry_after=poll_seconds)
