"""Chunks: written in one binary COPY per batch of documents, keyed ``uuid5(document, ordinal)``,
each with its full-text search vector (see migrations/0006_search.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ingestflow.config import ConfigError
from ingestflow.store import words
from ingestflow.store.documents import chunk_id, sha256_hex
from ingestflow.store.sql import query


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str  # the passage
    input: str  # what is embedded: its context line and text (its hash keys vector reuse)
    token_count: int  # exact cl100k_base count of the input
    metadata: dict[str, Any]  # pages, heading_path, char_start, char_end


async def replace(conn: AsyncConnection, chunks: Mapping[uuid.UUID, Iterable[NewChunk]], *,
                  search_config: str) -> None:
    """Each document's chunks become exactly these (a rerun of chunking replaces what an
    earlier run left): one DELETE, one binary COPY and one INSERT for the whole batch, in
    the caller's transaction. ``search_config`` is the text search configuration of
    their search vectors. A current document's chunks (a failed repair retried from its
    first stage) leave and join the word counts with it."""
    current = await words.current_among(conn, list(chunks))
    await words.count(conn, removed=current)
    await conn.execute(query("delete_chunks"), {"ids": list(chunks)})
    await conn.execute(query("stage_chunks"))
    async with conn.cursor().copy(query("copy_chunks")) as copy:
        copy.set_types(["uuid", "uuid", "int4", "text", "text", "int4", "jsonb"])
        for document, rows in chunks.items():
            for c in rows:
                await copy.write_row((chunk_id(document, c.ordinal), document, c.ordinal, c.text,
                                      sha256_hex(c.input), c.token_count, Jsonb(c.metadata)))
    await conn.execute(query("insert_staged_chunks"), {"config": search_config})
    await words.count(conn, added=current)


async def check_search_config(conn: AsyncConnection, config: str) -> None:
    """ConfigError, naming the configurations there are, when the database lacks ``config``."""
    known, names = await (await conn.execute(query("search_config_known"), {"config": config})).fetchone()
    if not known:
        raise ConfigError(f"SEARCH_LANGUAGE={config!r} is not a text search configuration of this "
                          f"database; use one of: {', '.join(names)}")


async def has_search_terms(conn: AsyncConnection, config: str, question: str) -> bool:
    """Whether ``question`` holds any word keyword search can match (not only stop words)."""
    return (await (await conn.execute(query("query_has_terms"), {"config": config, "question": question}))
            .fetchone())[0]


async def search_config_stale(conn: AsyncConnection, config: str) -> bool:
    """Whether some chunk's search vector was built in another configuration."""
    return (await (await conn.execute(query("search_config_stale"), {"config": config})).fetchone())[0]


async def rebuild_search_vectors(conn: AsyncConnection, config: str, *, limit: int = 2000) -> int:
    """Rebuild up to ``limit`` search vectors of another configuration in this one; returns
    how many (0 when none is left). Current chunks move between the configurations' word
    counts in the same statement."""
    cur = await conn.execute(query("rebuild_search_vectors"),
                             {"config": config, "limit": limit, "slot": words.slot(conn)})
    return (await cur.fetchone())[0]
