"""Reranking a search's fused candidates: one step between retrieval and the answer.

With RERANK_PROVIDER set, a search fetches its best RERANK_CANDIDATES passages (or k, if
more), the reranker orders them by relevance to the query, and the best k are returned.
A hit keeps its ``score`` (the retrieval's own: cosine, ts_rank_cd or the fused score) and
gains ``relevance``, the reranker's 0..1 judgement, by which the hits are then ordered.

The reranker is a paid call like any other: budget, breaker, rate limit, retries and
ledger, all in its guard. When it cannot answer (down, over budget, breaker open, a bad
key), the search answers in the fused order, degraded, with a note: it never fails for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ingestflow.errors import IngestError
from ingestflow.logging import get_logger
from ingestflow.runtime import Runtime
from ingestflow.services.guard import CallContext

log = get_logger("ingestflow.reranking")


@dataclass(frozen=True)
class Passage:
    text: str
    heading_path: Sequence[str] = ()

    @property
    def document(self) -> str:
        """What the reranker reads: the section's headings, then the text."""
        return f"{' > '.join(self.heading_path)}\n\n{self.text}" if self.heading_path else self.text


@dataclass(frozen=True)
class Reranked:
    """``order``: (position among the passages, relevance), best first; None keeps the
    fused order (no reranker, or it could not answer)."""

    order: list[tuple[int, float]] | None = None
    by: str | None = None  # "provider/model" of the reranker that ordered them
    degraded: bool = False
    notes: list[str] = field(default_factory=list)


def candidates(rt: Runtime, k: int) -> int:
    """How many passages a search fetches for the answer's ``k``."""
    return max(k, rt.settings.rerank_candidates) if rt.services.reranking is not None else k


async def rerank(rt: Runtime, tenant: str, query: str, passages: Sequence[Passage], k: int) -> Reranked:
    """The best ``k`` passages by the configured reranker, or the fused order (with a note
    when the reranker could not answer)."""
    reranking = rt.services.reranking
    if reranking is None or not passages:
        return Reranked()
    reranker, guard = reranking.reranker, reranking.guard
    documents = [p.document for p in passages]
    try:
        result = await guard.call(
            lambda: reranker.rerank(query, documents, k),
            units=reranker.spec.search_units(len(documents)), context=CallContext(tenant=tenant),
            actual_units=lambda r: r.search_units,
        )
    except IngestError as exc:
        log.warning("rerank_skipped", provider=reranker.provider, code=exc.code)
        return Reranked(degraded=True, notes=[
            f"the reranker cannot answer now ({exc.code}): passages in the fused order, without relevance"])
    return Reranked(list(result.ranking), f"{result.provider}/{result.model}")
