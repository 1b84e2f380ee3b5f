"""Per-tenant word counts, keyword search's statistics (migrations/0024_word_counts.sql):
for each tenant, text search configuration and word, how many of the tenant's current
chunks hold the word, and how many current chunks the tenant has. Kept in the transaction
that makes chunks current or not (store/documents.py, store/chunks.py), so search reads
exact counts of the tenant's own data with one index probe per word."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection

from ingestflow.store.sql import query

# Rows per count: a writer adds to its connection's slot, so concurrent writers of one
# tenant seldom wait on the same row; a read sums at most this many (bench/keywords.py).
SLOTS = 16


def slot(conn: AsyncConnection) -> int:
    """The slot this connection's writes go to."""
    return conn.info.backend_pid % SLOTS


async def current_versions(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The current version of each of these documents' sources, these documents and those
    versions locked until the transaction ends: call it before ``count``."""
    cur = await conn.execute(query("current_versions"), {"ids": list(ids)})
    return {document for document, current in await cur.fetchall() if current}


async def current_among(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Those of these documents that are current, locked until the transaction ends."""
    return [row[0] for row in await (await conn.execute(query("current_among"), {"ids": list(ids)})).fetchall()]


async def count(conn: AsyncConnection, *, added: Sequence[uuid.UUID] = (),
                removed: Sequence[uuid.UUID] = ()) -> None:
    """Count the chunks of ``added`` (documents becoming current) in and those of
    ``removed`` (current documents about to be retired or deleted) out, in the caller's
    transaction, which locked them (``current_versions``, ``current_among``): before
    ``removed`` lose their chunks, once ``added`` have theirs. One
    statement for both, so its rows are locked in one order."""
    if added or removed:
        await conn.execute(query("count_words"), {"added": list(added), "removed": list(removed), "slot": slot(conn)})
