"""Chunks: written in one binary COPY per batch of documents, keyed ``uuid5(document, ordinal)``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ingestflow.store.documents import chunk_id, sha256_hex
from ingestflow.store.sql import query


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str
    token_count: int  # exact cl100k_base count of text
    metadata: dict[str, Any]  # pages, heading_path, char_start, char_end


async def replace(conn: AsyncConnection, chunks: Mapping[uuid.UUID, Iterable[NewChunk]]) -> None:
    """Each document's chunks become exactly these (a rerun of chunking replaces what an
    earlier run left): one DELETE and one binary COPY for the whole batch, in the caller's
    transaction."""
    await conn.execute(query("delete_chunks"), {"ids": list(chunks)})
    async with conn.cursor().copy(query("copy_chunks")) as copy:
        copy.set_types(["uuid", "uuid", "int4", "text", "text", "int4", "jsonb"])
        for document, rows in chunks.items():
            for c in rows:
                await copy.write_row((chunk_id(document, c.ordinal), document, c.ordinal, c.text,
                                      sha256_hex(c.text), c.token_count, Jsonb(c.metadata)))
