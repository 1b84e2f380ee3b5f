"""Query-time search: keyword matches, nearest vectors, or both fused (hybrid, the default).

Vectors: the query is embedded with the model of the tenant's active space and compared
in that space only. In HYBRID service mode, when the real model cannot embed the query
(unhealthy, out of budget), the fallback embeds it and its own space is searched, and the
answer says so: vectors of different models are never compared. When no model can embed
it, a hybrid search still answers from keywords (degraded, with a note).

Keywords: Postgres full-text search over each chunk's text, headings and document name,
in the SEARCH_LANGUAGE configuration; a chunk matches when it holds any word of the query,
and ranks by Okapi BM25 from the tenant's own word counts.

Hybrid: each chunk of either list scores a weight w of its cosine similarity plus the rest
of its keyword relevance. w is the model's (catalogue.py), and leans toward keywords when
the keyword list singles out its best match (a rare word: a form code, a name) and toward
vectors when it is flat (common words, a paraphrase): search.sql's ``evidence``.

Every hit's score lies in [0, 1], so a threshold means something: ``min_score`` turns weak
answers into "no answer", with a note.

Reranking (RERANK_PROVIDER): the fused candidates that clear min_score are reordered by a
reranker before the best k are returned; a step of its own, in operations/reranking.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ingestflow import tracing
from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.operations import reranking
from ingestflow.operations.bounds import Filters, check_arguments
from ingestflow.operations.errors import Refused
from ingestflow.runtime import Runtime
from ingestflow.services.base import Embedder
from ingestflow.services.guard import CallContext
from ingestflow.services.router import SpaceModel
from ingestflow.store import chunks, documents, vectors
from ingestflow.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np
    from psycopg import AsyncConnection

# BM25: a query word in the document's name or a heading counts this many times one in the
# text (the name and headings say what a chunk is about); chosen on bench/retrieval.py.
HEADING_WEIGHT = 3.0
SNIPPET_WORDS = 60  # two fragments of ts_headline's MaxWords=30 (search.sql); the first words without a match
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class SearchHit:
    """A passage and where it comes from: ``pages`` are the pages its text was read from
    (empty for formats without pages), ``snippet`` its best fragments with the query's
    words marked ``**like this**``."""

    score: float  # 0-1, the mode's own: cosine similarity, keyword relevance (BM25), or both weighed
    document_id: str
    source_name: str
    version: int
    ordinal: int
    text: str
    pages: list[int]
    heading_path: list[str]
    snippet: str
    # The reranker's 0..1 relevance, by which reranked hits are ordered; None when the
    # search was not reranked (no RERANK_PROVIDER, or it could not answer).
    relevance: float | None = None


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    provider: str  # who embedded the query; "postgres" for keywords only
    model: str
    mode: str
    degraded: bool = False  # answered from the fallback's space, from keywords alone, or not reranked
    notes: list[str] = field(default_factory=list)
    reranker: str | None = None  # "provider/model" that ordered the hits


async def search(rt: Runtime, tenant: str, query: str, *, k: int = 5, mode: str | None = None,
                 filters: Filters = Filters(), min_score: float | None = None) -> SearchResult:
    """The ``k`` passages that best answer ``query`` among the tenant's current documents
    (see ``_search``), traced as one search: its query embedding and retrieval below it."""
    with tracing.span("ingestflow.search", **{"ingestflow.search.k": k, "ingestflow.search.mode": mode,
                                              "ingestflow.query.chars": len(query),
                                              "ingestflow.query.sha256": tracing.digest(query)}):
        result = await _search(rt, tenant, query, k=k, mode=mode, filters=filters, min_score=min_score)
        tracing.annotate(**{"ingestflow.search.mode": result.mode, "ingestflow.search.hits": len(result.hits),
                            "ingestflow.search.degraded": result.degraded,
                            "ingestflow.search.notes": len(result.notes), "gen_ai.request.model": result.model})
        return result


async def _search(rt: Runtime, tenant: str, query: str, *, k: int = 5, mode: str | None = None,
                  filters: Filters = Filters(), min_score: float | None = None) -> SearchResult:
    """The ``k`` passages that best answer ``query`` among the tenant's current documents.
    ``mode``: hybrid, vector or keyword (SEARCH_MODE when None). A query without any word
    (blank, punctuation) matches nothing. Passages scoring less than ``min_score`` are left
    out (None: SEARCH_MIN_SCORE, else the model's default for the mode); when none is left
    the answer is empty, with a note: no answer rather than a poor one. Refused ``invalid``
    for arguments outside operations/bounds.py or a query the model refuses;
    ``unavailable`` when a vector search cannot embed the query now."""
    query, k, mode, filters, min_score = check_arguments(query, k, mode, filters, min_score)
    mode = mode or rt.settings.search_mode
    query = query.replace("\x00", " ")  # Postgres text holds no NUL
    config = rt.settings.search_language
    empty = None
    if not query.strip():
        empty = "the query is blank: no passages"
    elif not _WORD.search(query):
        empty = "the query has no words, only punctuation or symbols: no passages"
    # What the search needs to know about the tenant, in one visit to the primary (each
    # visit costs a pool check, BEGIN and COMMIT: round trips that outweighed the queries).
    async with rt.db.pool.connection() as conn:
        active = await vectors.active_space(conn, tenant) if mode != "keyword" else None
        if empty is None and mode != "vector" and not await chunks.has_search_terms(conn, config, query):
            empty = ("the query holds only common words (such as 'the', 'of'), which keyword search "
                     "ignores: no passages (mode vector searches them by meaning)")
        stale = empty is None and mode != "vector" and await chunks.search_config_stale(conn, config)
        chunked_before = empty is None and await documents.chunking_stale(conn, tenant, rt.chunking().signature)
    notes: list[str] = []
    model, model_space = None, None
    if mode != "keyword":
        model, model_space, notes = await _space_model(rt, tenant, active)
    if empty is not None:  # answered before any paid call
        provider, model_name = _answered_by(model.embedder if model else None, config)
        return SearchResult([], provider, model_name, mode, notes=[*notes, empty])
    embedder: Embedder | None = None
    vector, degraded = None, False
    if model is not None:
        embedder, vector, degraded = await _embed_query(rt, tenant, model, query, notes, optional=mode == "hybrid")
    spec = (embedder or rt.services.embedder).spec  # the catalogue's search settings for this model
    fixed = rt.settings.search_vector_weight  # one weight for every question
    fetch = reranking.candidates(rt, k)
    plan = vectors.SearchPlan(dense=vector is not None, keyword=mode != "vector", config=config,
                              candidates=max(rt.settings.search_candidates, fetch),
                              vector_weight=spec.vector_weight if fixed is None else fixed,
                              vector_weight_min=spec.vector_weight_min if fixed is None else fixed,
                              heading_weight=HEADING_WEIGHT,
                              max_share=rt.settings.search_keyword_max_share,
                              max_rows=rt.settings.search_keyword_max_rows,
                              ef_search=rt.settings.search_hnsw_ef_search,
                              max_scan_tuples=rt.settings.search_hnsw_max_scan_tuples,
                              exact_max=rt.settings.search_exact_max_chunks,
                              rerank=rt.settings.search_binary_rerank)
    space_id = None
    if model is not None and embedder is model.embedder:
        space_id = model_space
    if embedder is not None and space_id is None:  # a write (the space's first use): on the primary
        async with rt.db.pool.connection() as conn:
            space_id = await vectors.ensure_space(conn, embedder.provider, embedder.model, embedder.dimensions)

    if min_score is None:
        min_score = rt.settings.search_min_score
    if min_score is None:  # the model's, for the lists searched; keyword relevance alone has none
        min_score = spec.min_score if plan.dense and plan.keyword else spec.min_similarity if plan.dense else 0.0
    reranks = rt.services.reranking is not None

    async def read(conn: AsyncConnection) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool,
                                                    dict[Any, str] | None]:
        rows = await vectors.search(
            conn, plan, space_id=space_id, dimensions=embedder.dimensions if embedder else 1,
            query_vector=vector, question=query, tenant=tenant, k=fetch, **asdict(filters),
        )
        kept = [r for r in rows if r["score"] >= min_score]  # the reranker orders these
        warming = space_id is not None and plan.dense and await vectors.warming_up(conn, space_id)
        # Without a reranker the hits are the first k kept: their snippets come in the same
        # visit (a reranked search reads them once the reranker has chosen).
        snippets = None if reranks else await _snippets(conn, config, query, kept[:k])
        return rows, kept, warming, snippets

    with tracing.span("ingestflow.search.retrieve", **{"ingestflow.search.dense": plan.dense,
                                                       "ingestflow.search.keyword": plan.keyword}):
        # dense list, keyword list and their fusion: one SQL statement (search.sql)
        rows, kept, warming, snippets = await rt.db.read(read)  # a standby of DATABASE_READ_URLS when one is current
    if warming:
        notes.append("warming up: a bulk load is filling this model's space, whose index is built once the "
                     "load drains; until then its passages are compared exactly (complete, but slower)")
    if plan.keyword and rows and rows[0]["keyword_capped"]:
        notes.append(f"the query's words are in many passages: keyword search ranked the first "
                     f"{plan.max_rows} found (SEARCH_KEYWORD_MAX_ROWS), not all of them")
    if chunked_before:
        notes.append("some documents were chunked by an older rule or another chunk size than this "
                     "configuration's; `ingestflow reembed` re-chunks them (it shows the cost first)")
    if stale:
        notes.append(f"some passages are still indexed for keywords in another language than "
                     f"SEARCH_LANGUAGE={config}; workers are rebuilding them, and until then keyword "
                     "search skips them")
    if mode == "keyword" and not rows:
        notes.append("no passage holds any word of the query (common words such as 'the' are not searched)")
    if rows and not kept:
        notes.append(f"no passage scored at least {min_score:g} (min_score): the documents may not answer this")
    reranked = await reranking.rerank(rt, tenant, query, [
        reranking.Passage(r["text"], r["metadata"].get("heading_path", [])) for r in kept], k)
    order = reranked.order if reranked.order is not None else [(i, None) for i in range(len(kept))]
    chosen = [(kept[i], relevance) for i, relevance in order[:k]]
    if snippets is None:  # reranked: a visit of its own, after the reranker chose
        hits_rows = [r for r, _ in chosen]
        snippets = await rt.db.read(lambda conn: _snippets(conn, config, query, hits_rows)) if chosen else {}
    hits = [_hit(r, snippets.get(r["chunk_id"]), relevance) for r, relevance in chosen]
    return SearchResult(hits, *_answered_by(embedder, config), mode, degraded or reranked.degraded,
                        [*notes, *reranked.notes], reranked.by)


async def _snippets(conn: AsyncConnection, config: str, query: str, hits: list[dict[str, Any]]) -> dict[Any, str]:
    """The snippets of the hits returned only: a snippet reads its chunk's whole text."""
    return await vectors.snippets(conn, config, query, [r["chunk_id"] for r in hits]) if hits else {}


def _answered_by(embedder: Embedder | None, config: str) -> tuple[str, str]:
    if embedder is None:
        return "postgres", f"full-text ({config})"
    return embedder.provider, embedder.model


async def _embed_query(rt: Runtime, tenant: str, model: SpaceModel, query: str, notes: list[str], *,
                       optional: bool) -> tuple[Embedder | None, np.ndarray | None, bool]:
    """(embedder, query vector, degraded). The fallback embeds when the space's model
    cannot; with neither, ``optional`` (hybrid) answers without a vector. A person waits:
    a provider's call and its retries get SEARCH_EMBED_TIMEOUT_SECONDS in all (a local
    model is not bounded: its first load takes longer, and nobody throttles it)."""
    embedder, guard = model.embedder, model.guard
    try:
        # Only a metered call needs the count (loading the tokenizer costs a second).
        result = await guard.call(
            lambda: embedder.embed([query]), units=count_tokens(query) if guard.metered else 0,
            context=CallContext(tenant=tenant), actual_units=lambda r: r.usage_tokens,
            deadline_seconds=rt.settings.search_embed_timeout_seconds if guard.metered else None,
        )
        return embedder, result.vectors[0], False
    except PermanentError as exc:
        raise Refused("invalid", exc.code, exc.message) from None
    except (TransientError, DeferredError) as exc:
        fallback = rt.services.embedder_fallback
        if fallback is not None:
            notes.append(f"real embedder unavailable ({exc.code}); searched the fallback index")
            return fallback, (await fallback.embed([query])).vectors[0], True
        if optional:
            notes.append(f"the embedding service cannot answer now ({exc.code}): keyword matches only")
            return None, None, True
        raise Refused("unavailable", exc.code, "The embedding service cannot answer now; try again later.",
                      retry_after=exc.retry_after or 5) from None


async def _space_model(rt: Runtime, tenant: str, active: vectors.Space | None
                       ) -> tuple[SpaceModel, int | None, list[str]]:
    """The model of the tenant's ``active`` space, the id of the space it queries when known
    (None: the configured model's, before the tenant's first document), and what the user
    should know about it."""
    services = rt.services
    configured = SpaceModel(services.embedder, services.embed_guard)
    e = configured.embedder
    if active is None:
        return configured, None, []
    if (active.provider, active.model, active.dimensions) == (e.provider, e.model, e.dimensions):
        return configured, active.id, []
    async with rt.db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, e.provider, e.model, e.dimensions)
        coverage = await vectors.coverage(conn, tenant, space_id)
    progress = (f"the configured model {e.provider}/{e.model} covers {coverage.covered} of {coverage.current} "
                "current documents; run `ingestflow reembed` to embed the rest (search switches to it once it "
                "covers every one)" if not coverage.complete else
                f"the configured model {e.provider}/{e.model} covers every current document; search switches "
                "to it once a worker has built its index")
    old = services.for_space(active.provider, active.model, active.dimensions)
    if old is None:
        return configured, space_id, [f"the active space {active.name} cannot be queried with this configuration; "
                                      f"searched the configured model instead: {progress}"]
    return old, active.id, [f"searched {active.name}: {progress}"]


def _hit(row: dict[str, Any], snippet: str | None, relevance: float | None) -> SearchHit:
    meta = row["metadata"]
    return SearchHit(
        score=float(row["score"]), document_id=str(row["document_id"]),
        source_name=row["source_name"], version=row["version"], ordinal=row["ordinal"],
        text=row["text"], pages=meta.get("pages", []), heading_path=meta.get("heading_path", []),
        snippet=" ".join((snippet or row["text"]).split()[:SNIPPET_WORDS]), relevance=relevance,
    )
