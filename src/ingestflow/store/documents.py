"""Documents: registration (deduplication and versioning), stages, texts and events."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingestflow.lifecycle import TRANSITIONS, Stage
from ingestflow.store import words
from ingestflow.store.files import FileStore, lock_contents
from ingestflow.store.sql import query

NAMESPACE = uuid.UUID("6f1d7a3e-3c0b-5b7e-9a59-6f8e1b0d2c41")
JOBS_CHANNEL = "ingestflow_jobs"


class StageConflict(Exception):
    """The document was not in the expected stage: someone else moved it."""


def document_id(tenant: str, source_name: str, version: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"doc\x00{tenant}\x00{source_name}\x00{version}")


def chunk_id(document: uuid.UUID, ordinal: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"chunk\x00{document}\x00{ordinal}")


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Registration:
    document_id: uuid.UUID
    version: int
    duplicate: bool  # the same bytes were already there: no new work
    requeued: bool = False  # a failed duplicate was queued again


@dataclass(frozen=True)
class NewFile:
    source_name: str
    data: bytes
    mime: str  # detected from the bytes


async def register(conn: AsyncConnection, *, tenant: str, files: Sequence[NewFile],
                   store: FileStore, batch_api: bool = False) -> list[Registration]:
    """Store the bytes and queue a document version for each file, unless the same bytes
    are already there; one registration per file, in order, in the caller's transaction.

    The source locks make concurrent uploads of one name pick distinct version numbers.
    Unchanged bytes (the source's newest version, or a live document of the tenant under
    any name) are a duplicate: no new work, though a failed one is queued again. A
    superseded version is never one: its content is gone, so the same bytes again are a
    new version. Files of one call are registered in a few statements, whatever their number.
    """
    digests = [sha256_hex(f.data) for f in files]
    await lock_sources(conn, [(tenant, f.source_name) for f in files])
    cur = conn.cursor(row_factory=dict_row)
    found = await (await cur.execute(query("register_lookup"), {
        "tenant": tenant, "names": [f.source_name for f in files], "shas": digests})).fetchall()
    versions: dict[str, int] = {}  # newest version per name, this call's included
    seen: dict[str, Registration] = {}  # registrations by content, this call's included
    out, new, requeue_ids = [], [], []
    for f, digest, row in zip(files, digests, found, strict=True):
        latest = versions.get(f.source_name, row["latest_version"] or 0)
        if digest in seen:
            reg = replace(seen[digest], requeued=False)
        elif (row["latest_sha256"] == digest and latest == row["latest_version"]
              and row["latest_stage"] != Stage.SUPERSEDED):
            reg = Registration(row["latest_id"], latest, duplicate=True, requeued=row["latest_stage"] == Stage.FAILED)
        elif row["dup_id"] is not None:
            reg = Registration(row["dup_id"], row["dup_version"], duplicate=True,
                               requeued=row["dup_stage"] == Stage.FAILED)
        else:
            versions[f.source_name] = latest + 1
            reg = Registration(document_id(tenant, f.source_name, latest + 1), latest + 1, duplicate=False)
            new.append((f, digest, reg))
        if reg.requeued:
            requeue_ids.append(reg.document_id)
        seen[digest] = reg
        out.append(reg)
    await lock_contents(conn, [digest for _, digest, _ in new])  # until these rows commit
    await store.put(conn, {digest: f.data for f, digest, _ in new})
    rows = [{"id": reg.document_id, "tenant": tenant, "source_name": f.source_name, "version": reg.version,
             "mime": f.mime, "size_bytes": len(f.data), "sha256": digest, "correlation_id": uuid.uuid4()}
            for f, digest, reg in new]
    async with conn.cursor() as insert:
        await insert.executemany(query("insert_document"), rows)
    await add_events(conn, [(r["id"], r["correlation_id"], "registered", Stage.QUEUED, {"version": r["version"]})
                            for r in rows])
    for document in requeue_ids:
        await requeue(conn, document, reason="re-ingested", batch_api=batch_api)
    await enqueue(conn, [r["id"] for r in rows], batch_api=batch_api)
    return out


async def lock_sources(conn: AsyncConnection, sources: Sequence[tuple[str, str]]) -> None:
    """The locks of several sources, always in one order (no deadlock between batches)."""
    await conn.execute(query("lock_sources"), {"tenants": [t for t, _ in sources],
                                               "names": [n for _, n in sources]})


async def enqueue(conn: AsyncConnection, ids: Sequence[uuid.UUID], *, batch_api: bool = False) -> None:
    """Make these documents' jobs runnable now and wake idle workers (on commit).
    ``batch_api``: embed them through the OpenAI Batch API (cheaper, within a day)."""
    if ids:
        await conn.execute(query("enqueue_jobs"), {"ids": list(ids), "batch_api": batch_api})
        await conn.execute(query("notify"), {"channel": JOBS_CHANNEL})


async def wake(conn: AsyncConnection, document: uuid.UUID) -> None:
    """A job waiting (deferred) on something that has now happened runs at once."""
    await conn.execute(query("wake_job"), {"document_id": document})
    await conn.execute(query("notify"), {"channel": JOBS_CHANNEL})


async def requeue(conn: AsyncConnection, document: uuid.UUID, *, reason: str, batch_api: bool = False) -> None:
    """Retry a failed document from its first stage with a new correlation id."""
    correlation = uuid.uuid4()
    await conn.execute(query("requeue_document"), {"document_id": document, "correlation_id": correlation})
    await add_events(conn, [(document, correlation, "retry", Stage.QUEUED, {"reason": reason})])
    await enqueue(conn, [document], batch_api=batch_api)


async def schedule_repairs(conn: AsyncConnection) -> list[tuple[uuid.UUID, uuid.UUID]] | None:
    """HYBRID repair: move every degraded complete document back to 'chunked' and return
    (id, correlation id) of each; None when another worker is scheduling right now. Run
    in the caller's transaction, which holds the scheduling lock until it commits, and
    enqueue the documents in it."""
    cur = await conn.execute(query("try_lock_repairs"))
    if not (await cur.fetchone())[0]:
        return None
    cur = await conn.execute(query("schedule_repairs"))
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def get(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Documents by id (internal reads of the worker: a job names its document)."""
    cur = conn.cursor(row_factory=dict_row)
    return {row["id"]: row for row in await (await cur.execute(query("get_documents"), {"ids": list(ids)})).fetchall()}


async def advance(conn: AsyncConnection, ids: Sequence[uuid.UUID], from_stages: Sequence[str],
                  to_stage: str) -> set[uuid.UUID]:
    """Compare-and-set: move the documents still in ``from_stages``; returns those moved."""
    cur = await conn.execute(query("advance_documents"), {"ids": list(ids), "from_stages": list(from_stages),
                                                          "to_stage": to_stage})
    return {row[0] for row in await cur.fetchall()}


async def advance_one(conn: AsyncConnection, document: uuid.UUID, from_stages: Sequence[str], to_stage: str) -> None:
    if not await advance(conn, [document], from_stages, to_stage):
        raise StageConflict(f"document {document} is not in {tuple(from_stages)}")


async def fail(
    conn: AsyncConnection, document: uuid.UUID, *, stage: str, code: str, message: str
) -> None:
    await conn.execute(
        query("fail_document"),
        {"document_id": document, "error_stage": stage, "error_code": code,
         "error_message": message},
    )


Event = tuple[uuid.UUID | None, uuid.UUID | None, str, str | None, dict[str, Any]]
"""(document, correlation, kind, stage, detail) of one audit event."""


async def add_events(conn: AsyncConnection, events: Sequence[Event]) -> None:
    """Append audit events in one statement (a batch's thousand cost the server one
    insert, not a thousand)."""
    if events:
        documents, correlations, kinds, stages, details = zip(*events, strict=True)
        await conn.execute(query("insert_event"), {
            "document_ids": list(documents), "correlation_ids": list(correlations), "kinds": list(kinds),
            "stages": list(stages), "details": [Jsonb(detail) for detail in details]})


async def add_event(conn: AsyncConnection, document: uuid.UUID | None, correlation: uuid.UUID | None, kind: str,
                    stage: str | None, detail: dict[str, Any] | None = None) -> None:
    await add_events(conn, [(document, correlation, kind, stage, detail or {})])


@dataclass(frozen=True)
class Text:
    document_id: uuid.UUID
    markdown: str
    pages: list[list[int]]  # [[page, start, end], ...] into markdown
    parser: str
    title: str | None  # the title the file declares in its metadata, if any


@dataclass(frozen=True)
class Chunking:
    """A document's title and what cut its chunks (``ChunkingConfig.signature``)."""

    document_id: uuid.UUID
    title: str
    signature: dict[str, int]


async def save_texts(conn: AsyncConnection, texts: Sequence[Text]) -> None:
    await conn.execute(query("save_texts"), {
        "ids": [t.document_id for t in texts], "markdowns": [t.markdown for t in texts],
        "pages": [Jsonb(t.pages) for t in texts], "parsers": [t.parser for t in texts],
        "titles": [t.title for t in texts]})


async def load_texts(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Text]:
    cur = await conn.execute(query("load_texts"), {"ids": list(ids)})
    return {row[0]: Text(*row) for row in await cur.fetchall()}


async def set_chunking(conn: AsyncConnection, rows: Sequence[Chunking]) -> None:
    """Record each document's title and chunking; before its chunks are written (their
    search vectors read the title)."""
    await conn.execute(query("set_chunking"), {"ids": [r.document_id for r in rows],
                                               "titles": [r.title for r in rows],
                                               "chunkings": [Jsonb(r.signature) for r in rows]})


async def chunking_stale(conn: AsyncConnection, tenant: str, signature: dict[str, int]) -> bool:
    """Whether some current document of the tenant was chunked by another rule or size."""
    cur = await conn.execute(query("chunking_stale"), {"tenant": tenant, "chunking": Jsonb(signature)})
    return (await cur.fetchone())[0]


async def chunking_census(conn: AsyncConnection, tenant: str | None, signature: dict[str, int]) -> tuple[int, int]:
    """(current documents chunked by another rule or size, current documents), of one
    tenant or (None) of all."""
    cur = await conn.execute(query("chunking_census"), {"tenant": tenant, "chunking": Jsonb(signature)})
    stale, current = await cur.fetchone()
    return stale, current


@dataclass(frozen=True)
class Rechunk:
    """A complete current document chunked by another rule or size, and its parsed text."""

    id: uuid.UUID
    source_name: str
    text: Text
    latest_version: int  # of its source


async def rechunk_candidates(conn: AsyncConnection, tenant: str, signature: dict[str, int]) -> list[Rechunk]:
    cur = await conn.execute(query("rechunk_candidates"), {"tenant": tenant, "chunking": Jsonb(signature)})
    return [Rechunk(d, name, Text(d, markdown, pages, "", title), latest)
            for d, name, markdown, pages, title, latest in await cur.fetchall()]


async def start_rechunk(conn: AsyncConnection, tenant: str, signature: dict[str, int], *,
                        batch_api: bool = False) -> list[uuid.UUID]:
    """A new version of each of the tenant's current documents chunked by another rule or
    size, from the same bytes and parsed text, queued at 'parsed' (see
    insert_rechunk_versions.sql); returns their ids. In the caller's transaction, under the
    source locks, so version numbers never collide with an upload."""
    found = await rechunk_candidates(conn, tenant, signature)
    await lock_sources(conn, [(tenant, r.source_name) for r in found])
    found = await rechunk_candidates(conn, tenant, signature)  # as the locks see them
    rows = [(r.id, document_id(tenant, r.source_name, r.latest_version + 1), r.latest_version + 1, uuid.uuid4())
            for r in found]
    cur = await conn.execute(query("insert_rechunk_versions"), {
        "old": [r[0] for r in rows], "ids": [r[1] for r in rows], "versions": [r[2] for r in rows],
        "correlations": [r[3] for r in rows]})
    made = {row[0] for row in await cur.fetchall()}
    rows = [r for r in rows if r[1] in made]
    await add_events(conn, [(new, correlation, "registered", Stage.PARSED,
                             {"version": version, "rechunk_of": str(old), "reason": "chunked by another rule or size"})
                            for old, new, version, correlation in rows])
    await enqueue(conn, [r[1] for r in rows], batch_api=batch_api)
    return [r[1] for r in rows]


async def set_degraded(conn: AsyncConnection, flags: dict[uuid.UUID, bool]) -> None:
    await conn.execute(query("set_degraded"), {"ids": list(flags), "flags": list(flags.values())})


@dataclass(frozen=True)
class Swap:
    current: list[uuid.UUID]  # now the searchable versions of their sources
    lost: list[uuid.UUID]  # a newer version was current already: retired instead
    retired: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]  # (older version, its correlation, by)


async def make_current(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> Swap:
    """Swap these versions in and retire every older version of their sources (in flight or
    not), dropping their chunks. A version whose source already has a newer current one is
    retired instead. Call under ``lock_sources``, in the transaction that completes them;
    at most one version per source (the caller keeps the newest)."""
    lost = [row[0] for row in await (await conn.execute(query("newer_current"), {"ids": list(ids)})).fetchall()]
    losing = set(lost)
    winners = [i for i in ids if i not in losing]
    # A winner's source has no newer current version: the current one, unless the winner
    # itself (a repaired version), is older, and swap_current retires it.
    current = await words.current_versions(conn, winners)
    await words.count(conn, added=[i for i in winners if i not in current], removed=sorted(current - set(winners)))
    retired = [tuple(row) for row in await (await conn.execute(query("swap_current"), {"ids": winners})).fetchall()]
    await retire(conn, lost)
    await drop_content(conn, [r[0] for r in retired])
    await conn.execute(query("set_current"), {"ids": winners})
    await add_events(conn, [(r[0], r[1], "superseded", Stage.SUPERSEDED, {"by": str(r[2])}) for r in retired])
    return Swap(winners, lost, retired)


async def outdated(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of these versions whose source has a newer version on its way (not failed)."""
    cur = await conn.execute(query("newer_version_on_the_way"), {"ids": list(ids)})
    return {row[0] for row in await cur.fetchall()}


async def retire(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
    """Versions that lost the race to a newer one: superseded at once, content dropped."""
    if ids:
        await conn.execute(query("supersede_documents"), {"ids": list(ids)})
        await drop_content(conn, ids)


async def drop_content(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
    """Chunks (and by cascade their vectors) and parsed texts of retired versions."""
    if ids:
        await conn.execute(query("drop_document_content"), {"ids": list(ids)})


def transition_rows() -> dict[str, list[str | None]]:
    """ingestflow.lifecycle's legal moves as the parameters of sync_transitions.sql."""
    return {
        "from_stages": [None if f is None else str(f) for f, _, _ in TRANSITIONS],
        "to_stages": [str(t) for _, t, _ in TRANSITIONS],
        "actors": [a for _, _, a in TRANSITIONS],
    }


# -- reads for the CLI and the API: always within one tenant ---------------------------


async def _rows(conn: AsyncConnection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    return await (await cur.execute(query(name), params)).fetchall()


async def find(conn: AsyncConnection, tenant: str, ref: str, *, min_prefix: int) -> list[dict[str, Any]]:
    """Documents named by ``ref``, best first: the source name's newest version, else those
    whose id starts with ``ref``, when it is ``min_prefix`` characters or more (at most
    two: enough to tell a unique prefix)."""
    return await _rows(conn, "find_document", {"tenant": tenant, "ref": ref, "min_prefix": min_prefix})


async def named_under(conn: AsyncConnection, tenant: str, prefixes: Sequence[str]) -> list[dict[str, Any]]:
    """The newest live version of each source whose name starts with one of ``prefixes``."""
    return await _rows(conn, "documents_named_under", {"tenant": tenant, "prefixes": list(prefixes)})


async def detail(conn: AsyncConnection, tenant: str, document: uuid.UUID) -> dict[str, Any] | None:
    """One document with its job and progress (chunks, chunks with a vector, tokens)."""
    rows = await _rows(conn, "document_detail", {"tenant": tenant, "document_id": document})
    return rows[0] if rows else None


async def lock(conn: AsyncConnection, tenant: str | None, document: uuid.UUID) -> dict[str, Any] | None:
    """Lock a document (of one tenant, or any when None) before changing its stage."""
    rows = await _rows(conn, "lock_document", {"tenant": tenant, "document_id": document})
    return rows[0] if rows else None


async def progress(conn: AsyncConnection, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return await _rows(conn, "document_progress", {"tenant": tenant, "ids": ids})


async def stage_tally(conn: AsyncConnection, tenant: str, ids: list[uuid.UUID]) -> dict[str, int]:
    return {r["stage"]: int(r["documents"]) for r in await _rows(conn, "stage_tally", {"tenant": tenant, "ids": ids})}


async def stage_counts(conn: AsyncConnection, tenant: str) -> dict[str, int]:
    return {r["stage"]: int(r["documents"]) for r in await _rows(conn, "stage_counts", {"tenant": tenant})}


async def recent(conn: AsyncConnection, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "recent_documents", {"tenant": tenant, "limit": limit})


async def recent_errors(conn: AsyncConnection, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "recent_errors", {"tenant": tenant, "limit": limit})


async def events(conn: AsyncConnection, tenant: str, document: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    return await _rows(conn, "document_events", {"tenant": tenant, "document_id": document, "limit": limit})


async def throughput(conn: AsyncConnection, tenant: str, *, buckets: int, width_seconds: int) -> list[dict[str, Any]]:
    """Documents completed, chunks stored and documents failed per clock-aligned bucket of
    ``width_seconds``, the last ``buckets`` of them (the current one last), empty ones too."""
    return await _rows(conn, "throughput", {"tenant": tenant, "buckets": buckets, "width": width_seconds})


async def page(conn: AsyncConnection, tenant: str, *, stage: str | None, after: tuple[Any, Any] | None,
               limit: int) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); superseded versions only when
    ``stage`` asks for them."""
    after_created, after_id = after or (None, None)
    return await _rows(conn, "list_documents" if stage is None else "list_documents_in_stage",
                       {"tenant": tenant, "stage": stage, "after_created": after_created, "after_id": after_id,
                        "limit": limit})


async def count(conn: AsyncConnection, tenant: str, *, stage: str | None) -> int:
    """How many documents ``page`` lists, over all pages."""
    return int((await _rows(conn, "count_documents", {"tenant": tenant, "stage": stage}))[0]["documents"])


async def chunks(conn: AsyncConnection, tenant: str, document: uuid.UUID, *, after: int,
                 limit: int) -> list[dict[str, Any]]:
    """A page of the document's chunks in order, keyset-paginated on the ordinal."""
    return await _rows(conn, "document_chunks", {"tenant": tenant, "document_id": document, "after": after,
                                                 "limit": limit})


async def delete(conn: AsyncConnection, tenant: str, document: uuid.UUID) -> list[str] | None:
    """Delete the document's source: every version, under the source's lock (chunks,
    vectors, texts, events and jobs by cascade; ledger rows keep their amounts). Returns
    the content hash of each version deleted, or None when the tenant has no such document."""
    row = await (await conn.execute(query("document_source"), {"tenant": tenant, "document_id": document})).fetchone()
    if row is None:
        return None
    await lock_sources(conn, [(tenant, row[0])])
    await words.count(conn, removed=sorted(await words.current_versions(conn, [document])))
    cur = await conn.execute(query("delete_document"), {"tenant": tenant, "source_name": row[0]})
    return [sha for (sha,) in await cur.fetchall()] or None  # empty: deleted meanwhile


async def unreferenced(conn: AsyncConnection, shas: Sequence[str]) -> list[str]:
    """Those of these contents no document of any tenant uses any more (blobs are shared)."""
    cur = await conn.execute(query("blobs_unreferenced"), {"shas": list(shas)})
    return [sha for (sha,) in await cur.fetchall()]
