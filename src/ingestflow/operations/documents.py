"""Documents: naming, registering (from disk or an upload), retrying, deleting, describing.

The CLI and the HTTP API both come through here, so a file is named, checked, detected and
deduplicated the same way whichever face it arrives by: bytes that cannot be indexed are
refused before anything is stored, whether the CLI read them or the API received them.
Source names follow operations/naming.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ingestflow.errors import PermanentError
from ingestflow.lifecycle import Stage
from ingestflow.operations import bounds, pagination, spaces, workers
from ingestflow.operations import limits as tenant_limits
from ingestflow.operations.errors import Refused, not_found
from ingestflow.operations.limits import TenantLimits
from ingestflow.operations.naming import check_source_name, project_of, sources, synced_names
from ingestflow.runtime import Runtime
from ingestflow.services.detect import detect_mime
from ingestflow.store import costs, documents, jobs, tallies, usage
from ingestflow.store.documents import NewFile, Registration
from ingestflow.store.files import lock_contents

EVENTS_SHOWN = 20
MIN_ID_PREFIX = 4  # characters of a document id that name it (git's shortest abbreviation)
THROUGHPUT_BUCKETS = 12  # the last hour ...
THROUGHPUT_BUCKET_SECONDS = 300  # ... in 5-minute buckets


@dataclass(frozen=True)
class Submitted:
    """One file's outcome: registered, or refused (``refused`` says why) with nothing stored."""

    path: Path
    name: str
    registration: Registration | None
    refused: Refused | None = None


# Files registered per transaction by the CLI. Each new file holds two advisory locks
# until the commit (its source's, its content's): 250 keeps a transaction at 500 locks,
# so a dozen concurrent large ingests fit PostgreSQL's default lock table (measured: 12
# transactions of 1,000 locks fit, 20 ran out of shared memory).
REGISTER_BATCH = 250


def check_file(name: str, data: bytes) -> NewFile:
    """The name and the bytes, checked: what may be stored (Refused: nothing is)."""
    name = check_source_name(name)
    try:
        return NewFile(name, data, detect_mime(data))
    except PermanentError as exc:
        raise Refused("invalid" if exc.code == "empty_document" else "unsupported", exc.code, exc.message) from None


async def register(rt: Runtime, tenant: str, name: str, data: bytes, *,
                   limits: TenantLimits | None = None, batch_api: bool = False) -> Registration:
    """Check the name and the bytes, then store and queue them (or find them already
    there). ``limits``: the tenant's API limits, taken atomically with the registration.
    ``batch_api``: embed through the OpenAI Batch API (half price, within a day)."""
    spaces.check_batch_api(rt, batch_api)
    file = await asyncio.to_thread(check_file, name, data)
    async with rt.db.pool.connection() as conn, conn.transaction():
        if limits is not None:
            await tenant_limits.admit(conn, tenant, limits)
        [registration] = await documents.register(conn, tenant=tenant, files=[file], store=rt.files,
                                                  batch_api=batch_api)
        return registration



async def submit_paths(rt: Runtime, paths: Iterable[str | Path], tenant: str, *, prefix: str = "",
                       name: str | None = None, batch_api: bool = False) -> list[Submitted]:
    """Register every file under ``paths``, one outcome each, many files per transaction; a
    refused file (bad name, unreadable, not indexable) is reported and the rest carry on."""
    spaces.check_batch_api(rt, batch_api)
    found = list(sources(paths, prefix=prefix, name=name, project=project_of(rt.settings.home)))
    outcomes: list[Submitted] = []
    for start in range(0, len(found), REGISTER_BATCH):
        part = found[start:start + REGISTER_BATCH]
        checked = await asyncio.to_thread(lambda part=part: [_read(path, source) for path, source in part])
        files = [c for c in checked if isinstance(c, NewFile)]
        async with rt.db.pool.connection() as conn, conn.transaction():
            registrations = iter(await documents.register(conn, tenant=tenant, files=files, store=rt.files,
                                                          batch_api=batch_api) if files else [])
        for (path, source), c in zip(part, checked, strict=True):
            outcomes.append(Submitted(path, c.source_name, next(registrations)) if isinstance(c, NewFile)
                            else Submitted(path, source, None, c))
    return outcomes


def _read(path: Path, source: str) -> NewFile | Refused:
    """A file's bytes, checked; or why it cannot be registered."""
    try:
        return check_file(source, path.read_bytes())
    except Refused as exc:
        return exc
    except OSError as exc:
        return Refused("invalid", "unreadable_file", f"The file could not be read: {exc.strerror or exc}.")


async def find(rt: Runtime, tenant: str, ref: str) -> dict[str, Any]:
    """A document by source name (its newest version; a name wins over an id prefix it
    also is, "2024" say), id, or an id prefix of at least MIN_ID_PREFIX characters that
    names only one document (else Refused: acting on whichever matched first could
    delete the wrong one; one character matches a sixteenth of all documents)."""
    ref = ref.strip()
    if not ref or not bounds.storable(ref):  # no stored name or id holds a NUL
        raise not_found()
    async with rt.db.pool.connection() as conn:
        found = await documents.find(conn, tenant, ref, min_prefix=MIN_ID_PREFIX)
    if not found and len(ref) < MIN_ID_PREFIX:
        raise Refused("not_found", "not_found", f"No document is named {ref!r}, and an id prefix needs at least "
                                                f"{MIN_ID_PREFIX} characters.")
    if not found:
        raise not_found()
    if found[0]["source_name"] != ref and len(found) > 1:
        raise Refused("invalid", "ambiguous_reference",
                      f"{ref!r} starts the id of more than one document; give more of the id.")
    return found[0]


async def stale(rt: Runtime, tenant: str, folders: Iterable[str | Path], *, prefix: str,
                present: set[str]) -> list[dict[str, Any]]:
    """The documents named as files under ``folders`` would be whose files are gone
    (``present``: the names found there now), to delete when a folder is kept in sync."""
    unders = synced_names(folders, prefix=prefix, project=project_of(rt.settings.home))
    async with rt.db.pool.connection() as conn:
        rows = await documents.named_under(conn, tenant, unders)
    return [r for r in rows if r["source_name"] not in present]


async def retry(rt: Runtime, tenant: str, document: uuid.UUID, *, limits: TenantLimits | None = None) -> None:
    """Queue a failed document again from its first stage, with a new correlation id."""
    async with rt.db.pool.connection() as conn, conn.transaction():
        await usage.lock_tenant(conn, tenant)  # first, as uploads take it: no lock-order deadlock
        doc = await documents.lock(conn, tenant, document)
        if doc is None:
            raise not_found()
        if doc["stage"] != Stage.FAILED:
            raise Refused("conflict", "not_failed", f"Only failed documents can be retried; this one is {doc['stage']}.")
        if limits is not None:
            await tenant_limits.check_active(conn, tenant, limits)
        await documents.requeue(conn, document, reason="retry requested")


async def delete(rt: Runtime, tenant: str, document: uuid.UUID) -> int:
    """Remove the document's source: every version, with its chunks, vectors, text, events
    and job, and the stored bytes unless another document (of any tenant) has the same
    content; the cost ledger keeps its amounts, never text. Nothing tells the caller
    whether bytes stayed: that would say what another tenant has uploaded. Returns how
    many versions went."""
    async with rt.db.pool.connection() as conn:
        async with conn.transaction():
            shas = await documents.delete(conn, tenant, document)
        if shas is None:
            raise not_found()
        # After the commit: a local file cannot be un-deleted if the transaction failed.
        # Under the contents' locks: an upload of the same bytes holds them until it commits.
        contents = sorted(set(shas))
        async with conn.transaction():
            await lock_contents(conn, contents)
            for sha256 in await documents.unreferenced(conn, contents):
                await rt.files.delete(conn, sha256)
    return len(shas)


async def stage(rt: Runtime, tenant: str, document: uuid.UUID) -> str:
    """Where a document is now (what an upload answers)."""
    async with rt.db.pool.connection() as conn:
        doc = await documents.detail(conn, tenant, document)
    if doc is None:
        raise not_found()
    return doc["stage"]


async def describe(rt: Runtime, tenant: str, document: uuid.UUID) -> dict[str, Any]:
    """One document: stage, job, progress, cost by service and recent events."""
    async with rt.db.pool.connection() as conn:
        doc = await documents.detail(conn, tenant, document)
        if doc is None:
            raise not_found()
        doc["costs"] = await costs.document_cost(conn, document, tenant)
        doc["events"] = await documents.events(conn, tenant, document, EVENTS_SHOWN)
    return doc


async def has_work(rt: Runtime, ids: list[uuid.UUID]) -> bool:
    """Whether any of these documents has a job due now (a no-op re-ingest has none)."""
    async with rt.db.pool.connection() as conn:
        return await jobs.pending(conn, ids) > 0


async def progress(rt: Runtime, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    async with rt.db.pool.connection() as conn:
        return await documents.progress(conn, tenant, ids)


async def stage_tally(rt: Runtime, tenant: str, ids: list[uuid.UUID]) -> dict[str, int]:
    """How many of these documents are in each stage."""
    async with rt.db.pool.connection() as conn:
        return await documents.stage_tally(conn, tenant, ids)


async def overview(rt: Runtime, tenant: str, *, recent: int = 20) -> dict[str, Any]:
    """Documents by stage, the most recently changed ones, the tenant's queue, and the
    live workers (with a warning when the queue waits for one)."""
    async def counts() -> dict[str, Any]:
        async with rt.db.pool.connection() as conn:
            await tallies.fold_if_due(conn)
            return {"stages": await documents.stage_counts(conn, tenant),
                    "recent": await documents.recent(conn, tenant, recent) if recent else [],
                    "queue": await jobs.queue_depth(conn, tenant)}

    # on connections of their own, at once: a status waits for the slowest of the three
    found, space, alive = await asyncio.gather(counts(), spaces.summary(rt, tenant), workers.status(rt, tenant))
    return {**found, "spaces": space, "workers": alive}


async def recent_errors(rt: Runtime, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await rt.db.read(lambda conn: documents.recent_errors(conn, tenant, limit))


async def throughput(rt: Runtime, tenant: str) -> list[dict[str, Any]]:
    """The tenant's last hour in 5-minute buckets, oldest first: start, completed, chunks, failed."""
    return await rt.db.read(lambda conn: documents.throughput(conn, tenant, buckets=THROUGHPUT_BUCKETS,
                                                              width_seconds=THROUGHPUT_BUCKET_SECONDS))


@dataclass(frozen=True)
class Page:
    """Some of a listing: ``next_cursor`` (None on the last page) asks for the rest."""

    items: list[dict[str, Any]]
    next_cursor: str | None


async def page(rt: Runtime, tenant: str, *, stage: str | None, cursor: str | None, limit: int) -> Page:
    """Documents newest first, ``limit`` at most, after ``cursor`` (a ``next_cursor``
    given before; Refused ``invalid_cursor`` for anything else). Current versions, or
    with ``stage`` only those in it (``superseded`` lists the older versions); Refused
    ``unknown_stage`` for a stage that is none (operations/bounds.py)."""
    limit, stage = pagination.check_limit(limit), bounds.check_stage(stage)
    after = None
    if cursor is not None:
        created, ident = pagination.decode(cursor, 2)
        try:
            after = (datetime.fromisoformat(created), uuid.UUID(ident))
        except ValueError:
            raise pagination.invalid_cursor() from None
    rows = await rt.db.read(lambda conn: documents.page(conn, tenant, stage=stage, after=after, limit=limit + 1))
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items, pagination.encode(items[-1]["created_at"].isoformat(), items[-1]["id"]) if more else None)


async def count(rt: Runtime, tenant: str, *, stage: str | None) -> int:
    """How many documents ``page`` lists, over all pages."""
    return await rt.db.read(lambda conn: documents.count(conn, tenant, stage=stage))


async def chunks(rt: Runtime, tenant: str, document: uuid.UUID, *, after: int, limit: int) -> list[dict[str, Any]]:
    async with rt.db.pool.connection() as conn:
        if await documents.detail(conn, tenant, document) is None:
            raise not_found()
        return await documents.chunks(conn, tenant, document, after=after, limit=limit)
