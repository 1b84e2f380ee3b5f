"""Query-time search: embed the query with the configured model, search its space only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestflow.services.base import Embedder
from ingestflow.store import vectors
from ingestflow.store.database import Database


@dataclass(frozen=True)
class Hit:
    score: float
    document_id: str
    source_name: str
    version: int
    ordinal: int
    text: str
    pages: list[int]
    heading_path: list[str]


async def search(db: Database, embedder: Embedder, query: str, *, k: int = 5, tenant: str = "default") -> list[Hit]:
    result = await embedder.embed([query])
    async with db.pool.connection() as conn:
        space_id = await vectors.ensure_space(conn, embedder.provider, embedder.model, embedder.dimensions)
        rows = await vectors.search(
            conn, space_id=space_id, dimensions=embedder.dimensions,
            query_vector=result.vectors[0], tenant=tenant, k=k,
        )
    return [_hit(r) for r in rows]


def _hit(row: dict[str, Any]) -> Hit:
    meta = row["metadata"]
    return Hit(
        score=float(row["score"]), document_id=str(row["document_id"]),
        source_name=row["source_name"], version=row["version"], ordinal=row["ordinal"],
        text=row["text"], pages=meta.get("pages", []), heading_path=meta.get("heading_path", []),
    )
