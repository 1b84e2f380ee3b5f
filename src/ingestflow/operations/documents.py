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
from pathlib import Path
from typing import Any

from ingestflow.errors import PermanentError
from ingestflow.lifecycle import Stage
from ingestflow.operations import limits as tenant_limits
from ingestflow.operations import spaces, workers
from ingestflow.operations.errors import Refused, not_found
from ingestflow.operations.limits import TenantLimits
from ingestflow.operations.naming import check_source_name, sources
from ingestflow.runtime import Runtime
from ingestflow.services.detect import detect_mime
from ingestflow.store import costs, documents, jobs, usage
from ingestflow.store.documents import NewFile, Registration

EVENTS_SHOWN = 20
THROUGHPUT_BUCKETS = 12  # the last hour ...
THROUGHPUT_BUCKET_SECONDS = 300  # ... in 5-minute buckets


@dataclass(frozen=True)
class Submitted:
    """One file's outcome: registered, or refused (``refused`` says why) with nothing stored."""

    path: Path
    name: str
    registration: Registration | None
    refused: Refused | None = None


REGISTER_BATCH = 500  # files registered per transaction by the CLI


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
    found = list(sources(paths, prefix=prefix, name=name))
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
    """A document by source name (its newest version), id, or an id prefix that names only
    one document (else Refused: acting on whichever matched first could retry the wrong one)."""
    ref = ref.strip()
    if not ref:
        raise not_found()
    async with rt.db.pool.connection() as conn:
        found = await documents.find(conn, tenant, ref)
    if not found:
        raise not_found()
    if found[0]["source_name"] != ref and len(found) > 1:
        raise Refused("invalid", "ambiguous_reference",
                      f"{ref!r} starts the id of more than one document; give more of the id.")
    return found[0]


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


async def delete(rt: Runtime, tenant: str, document: uuid.UUID) -> None:
    """Remove the document with its chunks, vectors, text, events and job; its bytes too
    unless another document (of any tenant) has the same content. Nothing tells the
    caller which: that would say what another tenant has uploaded."""
    async with rt.db.pool.connection() as conn:
        async with conn.transaction():
            sha256 = await documents.delete(conn, tenant, document)
        if sha256 is None:
            raise not_found()
        # After the commit: a local file cannot be un-deleted if the transaction failed.
        async with conn.transaction():
            if not await documents.bytes_referenced(conn, sha256):
                await rt.files.delete(conn, sha256)


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
    async with rt.db.pool.connection() as conn:
        found = {"stages": await documents.stage_counts(conn, tenant),
                 "recent": await documents.recent(conn, tenant, recent) if recent else [],
                 "queue": await jobs.queue_depth(conn, tenant)}
    return {**found, "spaces": await spaces.summary(rt, tenant), "workers": await workers.status(rt, tenant)}


async def recent_errors(rt: Runtime, tenant: str, limit: int) -> list[dict[str, Any]]:
    return await rt.db.read(lambda conn: documents.recent_errors(conn, tenant, limit))


async def throughput(rt: Runtime, tenant: str) -> list[dict[str, Any]]:
    """The tenant's last hour in 5-minute buckets, oldest first: start, completed, chunks, failed."""
    return await rt.db.read(lambda conn: documents.throughput(conn, tenant, buckets=THROUGHPUT_BUCKETS,
                                                              width_seconds=THROUGHPUT_BUCKET_SECONDS))


async def page(rt: Runtime, tenant: str, *, stage: str | None, after: tuple[Any, Any] | None,
               limit: int) -> list[dict[str, Any]]:
    return await rt.db.read(lambda conn: documents.page(conn, tenant, stage=stage, after=after, limit=limit))


async def chunks(rt: Runtime, tenant: str, document: uuid.UUID, *, after: int, limit: int) -> list[dict[str, Any]]:
    async with rt.db.pool.connection() as conn:
        if await documents.detail(conn, tenant, document) is None:
            raise not_found()
        return await documents.chunks(conn, tenant, document, after=after, limit=limit)
