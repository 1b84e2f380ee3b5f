"""Embedding spaces per tenant: which one search uses, and changing the model.

Changing the embedding model is a backfill, never a silent empty index. A tenant's
searches use its *active* space; after OPENAI_EMBEDDING_MODEL (or the provider) changes,
the configured space starts empty, so search keeps answering from the active one and
says what to run. ``start_reembed`` queues every current document for the configured
space (synchronously or through the Batch API, within the budget, in the background);
once the new space covers every current document, the tenant's active space switches in
one transaction. The old space's vectors stay until ``drop_space`` is asked for.

Changing how documents are chunked (a new chunking rule, CHUNK_MAX_TOKENS, another
model's chunk size) is the same kind of backfill: each document records what cut its
chunks, search and status say when some were cut otherwise, and ``start_reembed`` also
re-chunks those, each as a new version made from the stored parsed text (nothing is
parsed again), which replaces the old one once it is embedded; vectors of unchanged inputs
are reused. ``report`` estimates the tokens and cost by chunking the texts as it would.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ingestflow.operations.errors import Refused
from ingestflow.runtime import Runtime
from ingestflow.store import batches, documents, jobs, vectors
from ingestflow.store.vectors import Coverage, Space


@dataclass(frozen=True)
class Estimate:
    """What re-embedding the missing chunks would cost, synchronously and by batch."""

    chunks: int
    tokens: int
    sync_usd: Decimal
    batch_usd: Decimal | None  # None: the configured model has no Batch API


@dataclass(frozen=True)
class RechunkEstimate:
    """Re-chunking the documents cut by another rule or size: their chunks and tokens once
    re-chunked, and what embedding all of them would cost (an upper bound: vectors of
    inputs that did not change are reused)."""

    documents: int
    chunks: int
    tokens: int
    sync_usd: Decimal
    batch_usd: Decimal | None


@dataclass(frozen=True)
class SpaceReport:
    active: Space | None  # what search uses (None: nothing embedded yet)
    configured: Space  # what the workers embed with
    coverage: Coverage  # of the configured space, over the tenant's current documents
    estimate: Estimate
    reembed_jobs: dict[str, int]  # by job state
    batches: list[dict[str, Any]]  # open ones, and those closed in the last day
    others: list[tuple[Space, int]] = field(default_factory=list)  # other spaces holding vectors
    rechunk: RechunkEstimate | None = None  # None: every current document is chunked as configured

    @property
    def switching(self) -> bool:
        """A model change is under way: search answers from another space than the configured one."""
        return self.active is not None and self.active.id != self.configured.id


def check_batch_api(rt: Runtime, batch_api: bool) -> None:
    """Refused when the Batch API is asked for but the configured embedder has none."""
    if batch_api and not rt.services.batch_available:
        raise Refused("conflict", "batch_api_unavailable",
                      "The Batch API needs EMBEDDINGS_PROVIDER=openai in real or hybrid mode.")


async def summary(rt: Runtime, tenant: str) -> dict[str, Any]:
    """For status pages: the active and configured spaces; during a model change, the
    progress too (outside one, nothing that reads the whole corpus)."""
    configured = await _configured(rt)
    async with rt.db.pool.connection() as conn:
        active = await vectors.active_space(conn, tenant)
        out: dict[str, Any] = {"active": active.name if active else None, "configured": configured.name,
                               "switching": active is not None and active.id != configured.id}
        out["stale_chunking"], _ = await documents.chunking_census(conn, tenant, rt.chunking().signature)
        if out["switching"]:
            coverage = await vectors.coverage(conn, tenant, configured.id)
            out.update(covered=coverage.covered, current=coverage.current,
                       reembed_jobs=await jobs.reembed_jobs(conn, tenant),
                       open_batches=await batches.open_count(conn, tenant))
    return out


async def report(rt: Runtime, tenant: str) -> SpaceReport:
    configured = await _configured(rt)
    async with rt.db.pool.connection() as conn:
        active = await vectors.active_space(conn, tenant)
        coverage = await vectors.coverage(conn, tenant, configured.id)
        reembed_jobs = await jobs.reembed_jobs(conn, tenant)
        open_batches = await batches.overview(conn, tenant)
        others = [(s, n) for s, n in await vectors.tenant_spaces(conn, tenant) if s.id != configured.id]
        stale = await documents.rechunk_candidates(conn, tenant, rt.chunking().signature)
    return SpaceReport(active, configured, coverage, _estimate(rt, coverage), reembed_jobs, open_batches, others,
                       await _rechunk_estimate(rt, stale) if stale else None)


async def start_reembed(rt: Runtime, tenant: str, *, batch_api: bool) -> list[uuid.UUID]:
    """Queue a new version of every current document chunked by another rule or size, and
    every other current document lacking vectors in the configured space; returns their
    ids. With nothing to embed, the switch happens at once."""
    check_batch_api(rt, batch_api)
    configured = await _configured(rt)
    signature = rt.chunking().signature
    async with rt.db.pool.connection() as conn, conn.transaction():
        queued = await documents.start_rechunk(conn, tenant, signature, batch_api=batch_api)
        queued += await jobs.enqueue_reembed(conn, tenant, configured.id, signature, batch_api=batch_api)
    if not queued:
        async with rt.db.pool.connection() as conn, conn.transaction():
            await vectors.switch_if_complete(conn, tenant, configured.id)
    return queued


async def drop_space(rt: Runtime, tenant: str, space_id: int) -> int:
    """Delete the tenant's vectors in a space it no longer searches; returns how many."""
    configured = await _configured(rt)
    async with rt.db.pool.connection() as conn, conn.transaction():
        active = await vectors.active_space(conn, tenant)
        if space_id in (configured.id, active.id if active else None):
            raise Refused("conflict", "space_in_use", "That space is searched or embedded into; "
                          "only an old model's space can be dropped, after the switch.")
        return await vectors.drop_tenant_space(conn, tenant, space_id)


async def _configured(rt: Runtime) -> Space:
    """The configured embedder's space, known without building the embedder (``status``
    loads neither numpy nor the OpenAI SDK)."""
    spec = rt.services.embedder_spec
    provider, model, dimensions = spec.provider, spec.name, spec.dimensions
    async with rt.db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, provider, model, dimensions)
    return Space(space_id, provider, model, dimensions)


async def _rechunk_estimate(rt: Runtime, stale: list[documents.Rechunk]) -> RechunkEstimate:
    from ingestflow.pipeline.chunking import chunk_markdown, document_title
    from ingestflow.services.base import PageSpan
    from ingestflow.services.costs import embedding_cost

    config = rt.chunking()

    def cut() -> list[int]:
        return [c.token_count for r in stale
                for c in chunk_markdown(r.text.markdown, [PageSpan(*p) for p in r.text.pages], config,
                                        document_title(r.text.markdown, r.text.title, r.source_name))]

    counts = await asyncio.to_thread(cut)
    spec, tokens = rt.services.embedder_spec, sum(counts)
    if spec.provider != "openai":
        return RechunkEstimate(len(stale), len(counts), tokens, Decimal(0), None)
    return RechunkEstimate(len(stale), len(counts), tokens, embedding_cost(spec, tokens),
                           embedding_cost(spec, tokens, batch=True))


def _estimate(rt: Runtime, coverage: Coverage) -> Estimate:
    from ingestflow.services.costs import embedding_cost

    spec = rt.services.embedder_spec
    if spec.provider != "openai":
        return Estimate(coverage.missing_chunks, coverage.missing_tokens, Decimal(0), None)
    return Estimate(coverage.missing_chunks, coverage.missing_tokens, embedding_cost(spec, coverage.missing_tokens),
                    embedding_cost(spec, coverage.missing_tokens, batch=True))
