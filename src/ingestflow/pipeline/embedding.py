"""Vectors for a batch's chunks: in which spaces, and by which requests.

Spaces. Every document is embedded into the configured model's space. A tenant whose
active space (the one its searches use, ``store.vectors``) belongs to another model, a
model change under way, also gets each new document into that space, so its search stays
whole until the new space covers every current document and becomes the active one.

Synchronous requests. Identical chunk text is reused within each tenant; the rest is
packed across the documents of one tenant into as few requests as the provider's limits
allow (a request never mixes tenants: its cost is theirs, split by tokens in the ledger).
The vectors of each request are committed as it comes, so a crash resumes at the first
chunk without a vector.

The OpenAI Batch API. Chunks go into a JSONL file of embedding requests, at half price,
with results within 24 hours. The batch (and which chunk each line holds) is recorded
before the upload; its documents then wait, deferred, without a lease. Whichever worker
next claims one of them polls the batch once; when it is finished, its results are
validated like a synchronous answer and written, and its reservation settles at the
batch price for what the provider reports. Lines that failed go again synchronously;
lines an expired or cancelled batch never ran go into the next batch (twice at most, then
synchronously). A chunk is in one open batch at a time and is never sent again once it
has a vector, so nothing is paid twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from psycopg import AsyncConnection

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.logging import get_logger
from ingestflow.pipeline.batch import Item, Transactions
from ingestflow.pipeline.chunking import chunk_input, context_line
from ingestflow.services.budget import PaidCall, Reservation, split
from ingestflow.services.guard import CallContext
from ingestflow.services.packing import pack
from ingestflow.services.router import BatchEmbedding, Services, SpaceModel
from ingestflow.store import batches, documents, vectors
from ingestflow.store.batches import AWAITING_BATCH, BatchChunk, OpenBatch
from ingestflow.store.documents import Event

if TYPE_CHECKING:
    import numpy as np

log = get_logger("ingestflow.embedding")

MAX_NOT_RUN = 2  # batches that may end before running a chunk; then it goes synchronously
# A batch row still without the provider's id after this long lost its submitter mid-upload.
SUBMIT_GRACE_SECONDS = 600.0
FILE_BYTES_SHARE = 0.9  # of the Batch API's file limit, leaving room for the JSON around texts


@dataclass(frozen=True)
class Fill:
    """One space to fill: its id and what embeds into it."""

    space_id: int
    model: SpaceModel


class Embedding:
    def __init__(self, tx: Transactions, services: Services, *, batch_size: int) -> None:
        self.tx = tx
        self.services = services
        self.batch_size = batch_size  # most inputs per request (EMBEDDING_BATCH_SIZE)
        self._space_ids: dict[tuple[str, str, int], int] = {}

    # -- which spaces ----------------------------------------------------------------

    async def space_id(self, model: SpaceModel) -> int:
        e = model.embedder
        key = (e.provider, e.model, e.dimensions)
        if key not in self._space_ids:
            async with self.tx.db.pool.connection() as conn:
                self._space_ids[key] = await vectors.ensure_space(conn, *key)
        return self._space_ids[key]

    async def configured(self) -> Fill:
        model = SpaceModel(self.services.embedder, self.services.embed_guard)
        return Fill(await self.space_id(model), model)

    async def old_spaces(self, tenants: Sequence[str], configured: int) -> dict[str, Fill]:
        """Tenants whose active space is another model's than the configured one, with that
        space, when this deployment can embed with its model (else they are left out: the
        new documents reach their search once the configured space becomes active)."""
        out = {}
        async with self.tx.db.pool.connection() as conn:
            for tenant in tenants:
                active = await vectors.active_space(conn, tenant)
                if active is None or active.id == configured:
                    continue
                model = self.services.for_space(active.provider, active.model, active.dimensions)
                # Chunks are cut for the configured model: an old model that reads less is left out.
                if model is None or (model.embedder.spec.max_chunk_tokens
                                     < self.services.embedder.spec.max_chunk_tokens):
                    log.warning("old_space_not_embeddable", tenant=tenant, space=active.name)
                    continue
                out[tenant] = Fill(active.id, model)
        return out

    async def use_batch_api(self, items: Sequence[Item]) -> list[Item]:
        """The items whose embedding goes through the Batch API: their job asked for it, or
        EMBEDDING_BATCH_API is on, or auto with a backlog past the threshold."""
        if self.services.batch is None:
            return []
        mode = self.services.batch_mode
        if mode == "auto":
            cap = self.services.batch_auto_backlog
            async with self.tx.db.pool.connection() as conn:
                on = await batches.backlog(conn, cap) >= cap
        else:
            on = mode == "on"
        return [i for i in items if on or i.job.batch_api]

    async def fill_configured(self, owner: str, items: list[Item]) -> tuple[Fill, set[uuid.UUID]]:
        """The configured space for these documents, synchronously or through the Batch API
        (``use_batch_api``). Returns the space and the documents sent by batch."""
        configured = await self.configured()
        by_batch = await self.use_batch_api(items)
        batched = {i.id for i in by_batch}
        await self.fill(owner, [i for i in items if i.id not in batched], configured)
        if by_batch:
            assert self.services.batch is not None
            await self.fill_by_batch(owner, by_batch, configured, self.services.batch)
        return configured, batched

    # -- synchronous requests --------------------------------------------------------

    async def fill(self, owner: str, items: list[Item], fill: Fill) -> None:
        """Vectors in the space for every chunk of these documents that lacks one. A failed
        request fails the documents it served; a deferred one (budget, breaker) defers the
        rest too, since the next request would hear the same."""
        async with self.tx.fenced(owner, items) as (conn, live):
            await _reuse(conn, live, fill.space_id)
            todo = _inputs(await vectors.chunks_without_vectors(conn, [i.id for i in live], fill.space_id))
        await self.send(owner, todo, {i.id: i for i in items}, fill)

    async def send(self, owner: str, rows: list[vectors.Pending], by_id: dict[uuid.UUID, Item], fill: Fill) -> None:
        """These chunks in requests packed per tenant (a request never mixes tenants). A
        text that several chunks of one tenant hold (a boilerplate section) is sent once
        and its vector stored for each of them."""
        embedder, guard = fill.model.embedder, fill.model.guard
        requests: list[tuple[str, list[vectors.Pending]]] = []
        copies: dict[uuid.UUID, list[vectors.Pending]] = defaultdict(list)  # sent chunk -> same text
        by_tenant: dict[str, list[vectors.Pending]] = defaultdict(list)
        for row in rows:
            by_tenant[by_id[row.document_id].tenant].append(row)
        for tenant, group in by_tenant.items():
            first: dict[str, vectors.Pending] = {}
            for row in group:
                if row.text in first:
                    copies[first[row.text].chunk_id].append(row)
                else:
                    first[row.text] = row
            unique = list(first.values())
            requests += [(tenant, [unique[i] for i in request])
                         for request in pack([r.tokens for r in unique], embedder.spec, max_inputs=self.batch_size,
                                             max_tokens=guard.max_request_tokens)]
        for n, (tenant, request) in enumerate(requests):
            deferred = await self._request(owner, tenant, request, copies, by_id, fill)
            if deferred is not None:
                for _, later in requests[n:]:
                    for row in later:
                        for held in (row, *copies[row.chunk_id]):
                            by_id[held.document_id].leave(deferred)
                return

    async def _request(self, owner: str, tenant: str, rows: list[vectors.Pending],
                       copies: dict[uuid.UUID, list[vectors.Pending]], by_id: dict[uuid.UUID, Item],
                       fill: Fill) -> DeferredError | None:
        """One provider request serving the documents of ``rows`` (and of their texts'
        ``copies``); its failure is theirs. Returns the deferral, if it was deferred."""
        rows = [r for r in rows if by_id[r.document_id].active]
        if not rows:
            return None
        tokens: dict[uuid.UUID, int] = defaultdict(int)  # what each document is billed for
        for row in rows:
            tokens[row.document_id] += row.tokens
        served = list(dict.fromkeys([*tokens, *(c.document_id for r in rows for c in copies[r.chunk_id])]))
        texts = [r.text for r in rows]
        embedder = fill.model.embedder
        try:
            result = await fill.model.guard.call(
                lambda: embedder.embed(texts), units=sum(tokens.values()), actual_units=lambda r: r.usage_tokens,
                context=CallContext(tenant, owner, tuple(tokens.items())), headers=lambda r: r.extra,
            )
            if result.vectors.shape != (len(rows), embedder.dimensions):
                raise TransientError("invalid_response", "embedder returned the wrong shape")
        except DeferredError as exc:
            return exc
        except IngestError as exc:
            for document in served:
                by_id[document].leave(exc)
            return None
        # Each sent vector, for its own chunk and for every chunk holding the same text.
        held = [(n, chunk) for n, r in enumerate(rows) for chunk in (r, *copies[r.chunk_id])]
        inputs: dict[uuid.UUID, int] = defaultdict(int)
        for _, chunk in held:
            inputs[chunk.document_id] += 1

        async def write(conn: AsyncConnection, live: list[Item]) -> None:
            alive = {i.id for i in live}
            keep = [(n, chunk) for n, chunk in held if chunk.document_id in alive]
            await vectors.write_vectors(conn, [chunk.chunk_id for _, chunk in keep], fill.space_id,
                                        result.vectors[[n for n, _ in keep]])

        # The fence covers the whole batch, not only the documents served: one superseded
        # meanwhile leaves now, before the next request could pay for it.
        await self.tx.commit(owner, list(by_id.values()), write, "store vectors")
        for document in served:
            by_id[document].count(embedded=inputs[document], tokens=tokens.get(document, 0),
                                  requests=result.requests)
        return None

    # -- the Batch API ---------------------------------------------------------------

    async def fill_by_batch(self, owner: str, items: list[Item], fill: Fill, batch: BatchEmbedding) -> None:
        """Vectors through the Batch API. Documents whose chunks are in a batch still
        running leave the batch deferred (``awaiting_batch``, with the batch and its age),
        to be claimed again in ``poll_seconds``."""
        async with self.tx.fenced(owner, items) as (conn, live):
            await _reuse(conn, live, fill.space_id)
            open_batches = await batches.waiting(conn, [i.id for i in live], fill.space_id)
        for open_batch in open_batches:
            await self._poll(open_batch, fill, batch)
        by_id = {i.id: i for i in items}
        # Polling counts as progress: a batch may rightly take a day, longer than a
        # deferral may last without progress (MAX_DEFER_SECONDS).
        async with self.tx.fenced(owner, items, progress=bool(open_batches)) as (conn, live):
            ids = [i.id for i in live]
            still = await batches.waiting(conn, ids, fill.space_id)
            pending = _inputs(await vectors.chunks_without_vectors(conn, ids, fill.space_id))
            history = await batches.history(conn, [p.chunk_id for p in pending], fill.space_id)
        waiting_on = {d: b for b in still for d in b.documents}
        pending = [p for p in pending if p.document_id not in waiting_on]
        again = [p for p in pending if (h := history.get(p.chunk_id)) and (h.failed or h.not_run >= MAX_NOT_RUN)]
        if again:  # lines a batch failed (or never ran, twice): synchronously, errors as usual
            await self.send(owner, again, by_id, fill)
        sent_again = {p.chunk_id for p in again}
        fresh: dict[str, list[vectors.Pending]] = defaultdict(list)
        for p in pending:
            if p.chunk_id not in sent_again and by_id[p.document_id].active:
                fresh[by_id[p.document_id].tenant].append(p)
        for tenant, rows in fresh.items():
            for part in _files(rows, batch):
                try:
                    submitted = await self._submit(owner, tenant, part, by_id, fill, batch)
                except IngestError as exc:
                    for document in {r.document_id for r in part}:
                        by_id[document].leave(exc)
                    continue
                if submitted is not None:
                    waiting_on.update((d, submitted) for d in submitted.documents)
        for item in items:
            if item.active and item.id in waiting_on:
                item.leave(_awaiting(waiting_on[item.id], batch.poll_seconds))

    async def _submit(self, owner: str, tenant: str, rows: list[vectors.Pending], by_id: dict[uuid.UUID, Item],
                      fill: Fill, batch: BatchEmbedding) -> OpenBatch | None:
        """One batch of these chunks: reserve its cost at the batch price, record it, upload
        it. Raises DeferredError when the budget says no (nothing is sent)."""
        key = uuid.uuid4()
        shares: dict[uuid.UUID, int] = defaultdict(int)  # tokens per document
        counts = _count_by_document(rows)
        for row in rows:
            shares[row.document_id] += row.tokens
        tokens = sum(shares.values())
        call = PaidCall(service="openai", model=batch_model(batch), unit="tokens", units=tokens,
                        cost_usd=batch.cost(tokens), tenant=tenant, owner=f"batch:{key}",
                        shares=tuple(shares.items()))
        budget = self.services.budget
        reservation = await budget.reserve(call) if budget is not None else None
        lines = [[rows[i] for i in r] for r in pack([row.tokens for row in rows], batch.client.spec,
                                                     max_inputs=self.batch_size)]
        chunks = [BatchChunk(row.chunk_id, row.document_id, f"line-{n}", pos, row.tokens)
                  for n, line in enumerate(lines) for pos, row in enumerate(line)]
        served = [by_id[d] for d in shares]
        recorded: list[Item] = []

        async with self.tx.fenced(owner, served, progress=True) as (conn, live):
            if len(live) == len(served):  # else another worker holds some of them: not now
                await batches.create(conn, key, tenant=tenant, space_id=fill.space_id,
                                     ledger_id=reservation.ledger_id if reservation else None, chunks=chunks)
                recorded = live
        if not recorded:
            await self._release(reservation, "lease_lost")
            return None
        from ingestflow.services.openai_batch import BatchRequest  # loaded with the client already

        requests = [BatchRequest(f"line-{n}", [r.text for r in line]) for n, line in enumerate(lines)]
        try:
            submitted = await batch.guard.call(lambda: batch.client.submit(requests, metadata={"batch": str(key)}),
                                               units=0)
        except IngestError as exc:
            async with self.tx.db.pool.connection() as conn, conn.transaction():
                await batches.discard(conn, key)
            await self._release(reservation, exc.code)
            raise
        async with self.tx.db.pool.connection() as conn, conn.transaction():
            await batches.submitted(conn, key, submitted.batch_id, submitted.status)
            await documents.add_events(conn, [
                (i.id, i.correlation_id, "batch_submitted", i.stage, {"batch": submitted.batch_id,
                                                                      "chunks": counts[i.id]})
                for i in recorded])
        for item in recorded:
            item.count(batched=counts[item.id])
        log.info("batch_submitted", batch=submitted.batch_id, tenant=tenant, inputs=len(rows), tokens=tokens)
        return OpenBatch(key, tenant, submitted.batch_id, submitted.status, None, len(rows), tokens, 0.0,
                         list(shares))

    async def _release(self, reservation: Reservation | None, outcome: str) -> None:
        if reservation is not None and self.services.budget is not None:
            await self.services.budget.release(reservation, outcome=outcome)

    async def _poll(self, open_batch: OpenBatch, fill: Fill, batch: BatchEmbedding) -> None:
        """Ask the provider how the batch is doing; apply its results once it is finished."""
        if open_batch.provider_batch_id is None:
            if open_batch.age_seconds > SUBMIT_GRACE_SECONDS:  # its submitter died mid-upload
                await self._close(open_batch, "not_submitted", [], [], "the upload never completed", fill, batch)
            return
        provider_id = open_batch.provider_batch_id
        try:
            status = await batch.guard.call(lambda: batch.client.status(provider_id), units=0)
            if not status.done:
                async with self.tx.db.pool.connection() as conn:
                    await batches.record_poll(conn, open_batch.id, status.status)
                return
            async with self.tx.db.pool.connection() as conn:
                lines = await batches.chunk_map(conn, open_batch.id)
            results = await batch.guard.call(
                lambda: batch.client.results(status, {cid: len(line) for cid, line in lines.items()}), units=0)
        except PermanentError as exc:  # the provider no longer knows the batch
            await self._close(open_batch, "lost", [], [], f"{exc.code}: {exc.message}", fill, batch)
            return
        except (TransientError, DeferredError) as exc:  # ask again next time
            log.warning("batch_poll_failed", batch=provider_id, code=exc.code)
            return
        embedded = [(chunk, result.vectors[chunk.position]) for cid, result in results.succeeded.items()
                    for chunk in lines[cid]]
        failed = [chunk for cid in results.failed for chunk in lines[cid]]
        billed: dict[uuid.UUID, int] = defaultdict(int)  # tokens the provider billed, per document
        for cid, result in results.succeeded.items():
            _bill(billed, lines[cid], result.usage_tokens)
        for cid, failure in results.failed.items():
            if failure.billed_units is not None:
                _bill(billed, lines[cid], failure.billed_units)
        reasons = {c.document_id: f"{f.code}: {f.message}" for cid, f in results.failed.items() for c in lines[cid]}
        await self._close(open_batch, status.status, embedded, failed, "; ".join(status.errors) or None, fill,
                          batch, billed=billed, reasons=reasons)

    async def _close(self, open_batch: OpenBatch, status: str, embedded: list[tuple[BatchChunk, np.ndarray]],
                     failed: list[BatchChunk], error: str | None, fill: Fill, batch: BatchEmbedding, *,
                     billed: dict[uuid.UUID, int] | None = None, reasons: dict[uuid.UUID, str] | None = None) -> None:
        """Write the batch's vectors and close it, once (the row lock decides who), then
        settle its reservation for what the provider billed."""
        async with self.tx.db.pool.connection() as conn, conn.transaction():
            if not await batches.lock(conn, open_batch.id):
                return  # another worker applied it
            written: set[uuid.UUID] = set()
            if embedded:
                import numpy as np

                written = await vectors.add_vectors(conn, [c.chunk_id for c, _ in embedded], fill.space_id,
                                                    np.stack([v for _, v in embedded]))
            await batches.close(conn, open_batch.id, status=status, embedded=[c.chunk_id for c, _ in embedded],
                                failed=[c.chunk_id for c in failed], error=error)
            events: list[Event] = [(d, None, "batch_line_failed", None, {"batch": open_batch.provider_batch_id,
                                                                         "reason": reason})
                                   for d, reason in (reasons or {}).items()]
            await documents.add_events(conn, events)
        log.info("batch_closed", batch=open_batch.provider_batch_id, status=status, embedded=len(written),
                 failed=len(failed))
        budget = self.services.budget
        if open_batch.ledger_id is None or budget is None:
            return
        units = sum((billed or {}).values())
        call = PaidCall(service="openai", model=batch_model(batch), unit="tokens", units=open_batch.tokens,
                        cost_usd=batch.cost(open_batch.tokens), tenant=open_batch.tenant,
                        owner=f"batch:{open_batch.id}", shares=tuple((billed or {}).items()))
        reservation = await budget.reservation(open_batch.ledger_id, call)
        if units:
            await budget.settle(reservation, units=units, cost_usd=batch.cost(units),
                                outcome="ok" if status == "completed" else status)
        else:
            await budget.release(reservation, outcome=status)


def batch_model(batch: BatchEmbedding) -> str:
    """The ledger's model name for Batch API calls: their price is not the synchronous one."""
    return f"{batch.client.model} (batch)"


def _bill(billed: dict[uuid.UUID, int], line: list[BatchChunk], usage: int | None) -> None:
    """A line's billed tokens, split over its documents by their tokens as any request's
    cost is (the provider reports usage per line; None: the line's known token counts)."""
    reported = sum(c.tokens for c in line) if usage is None else usage
    for document, units, _ in split([(c.document_id, c.tokens) for c in line], reported, Decimal(0)):
        billed[document] += units


def _files(rows: list[vectors.Pending], batch: BatchEmbedding) -> list[list[vectors.Pending]]:
    """Rows split into batch files within the Batch API's inputs and bytes per file."""
    from ingestflow.services.openai_batch import MAX_FILE_BYTES, MAX_INPUTS

    files: list[list[vectors.Pending]] = [[]]
    size = 0
    for row in rows:
        n = len(row.text.encode()) + 16
        if files[-1] and (len(files[-1]) >= MAX_INPUTS or size + n > MAX_FILE_BYTES * FILE_BYTES_SHARE):
            files.append([])
            size = 0
        files[-1].append(row)
        size += n
    return [f for f in files if f]


def _awaiting(open_batch: OpenBatch, poll_seconds: float) -> DeferredError:
    age = open_batch.age_seconds
    shown = f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min"
    return DeferredError(AWAITING_BATCH, f"waiting for OpenAI batch {open_batch.provider_batch_id or open_batch.id}"
                         f" ({open_batch.status}, {shown} old)", retry_after=poll_seconds)


def _inputs(rows: list[vectors.Unembedded]) -> list[vectors.Pending]:
    """Each chunk with its input: the context line its chunking made (none before rule 2),
    then its text. The token count stored with the chunk is the input's."""
    return [vectors.Pending(r.chunk_id, r.document_id, r.text if r.max_tokens is None else chunk_input(
        context_line(r.title or "", tuple(r.heading_path or ()), r.max_tokens), r.text), r.tokens) for r in rows]


async def _reuse(conn: AsyncConnection, live: list[Item], space_id: int) -> None:
    """Vectors of identical text the tenant already has, copied (and counted) first."""
    reused = await vectors.reuse_vectors(conn, [i.id for i in live], space_id)
    for item in live:
        item.count(reused=reused.get(item.id, 0))


def _count_by_document(rows: Sequence[vectors.Pending]) -> defaultdict[uuid.UUID, int]:
    counts: defaultdict[uuid.UUID, int] = defaultdict(int)
    for row in rows:
        counts[row.document_id] += 1
    return counts
