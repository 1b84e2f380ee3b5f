"""Provider callbacks: a LlamaParse job posting its result (see services/webhooks.py for
how a delivery is authenticated before it gets here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ingestflow.lifecycle import Stage
from ingestflow.services.base import clean_text
from ingestflow.store import documents, parse_jobs
from ingestflow.store.database import Database
from ingestflow.store.documents import Text

PARSER = "llamaparse"


class ReplayedDelivery(Exception):
    """This event id was accepted before."""


@dataclass(frozen=True)
class ParseResult:
    provider_job_id: str
    status: str  # SUCCESS | PARTIAL_SUCCESS | ERROR | CANCELED | ...
    markdown: str
    pages: int
    error_message: str | None = None


async def apply_parse_result(db: Database, key: uuid.UUID, event_id: str, result: ParseResult) -> bool:
    """Apply a verified delivery for parse job ``key`` once; returns whether it changed the
    document. A success saves the text and moves the document to ``parsed``; a failure is
    recorded on the parse job for the waiting worker to report. Either way the waiting job
    is woken. The event id is recorded in the same transaction, so a replay does nothing."""
    async with db.pool.connection() as conn, conn.transaction():
        job = await parse_jobs.lock(conn, key)
        if job is None:
            return False
        if not await parse_jobs.record_event(conn, event_id, job["document_id"]):
            raise ReplayedDelivery(event_id)
        document = job["document_id"]
        if job["state"] != "submitted" or job["stage"] != Stage.PARSING:
            return False  # applied by the worker's poll, retired, or retried meanwhile
        detail = {"provider_job_id": result.provider_job_id, "status": result.status, "event_id": event_id}
        markdown = clean_text(result.markdown)
        if result.status in ("SUCCESS", "PARTIAL_SUCCESS") and markdown.strip():
            await documents.save_texts(conn, [Text(document, markdown, [], PARSER, None)])
            await documents.advance_one(conn, document, (Stage.PARSING,), Stage.PARSED)
            await parse_jobs.finish(conn, key, "applied")
            await documents.add_event(conn, document, job["correlation_id"], "parse_callback", Stage.PARSED,
                                      {**detail, "pages": result.pages, "chars": len(markdown)})
        elif result.status == "CANCELED":
            await parse_jobs.finish(conn, key, "abandoned")  # the worker submits again
            await documents.add_event(conn, document, job["correlation_id"], "parse_callback", Stage.PARSING, detail)
        else:
            reason = clean_text(result.error_message or "the provider found no text")[:500]
            await parse_jobs.finish(conn, key, "failed", reason)
            await documents.add_event(conn, document, job["correlation_id"], "parse_callback", Stage.PARSING,
                                      {**detail, "error_message": reason})
        await documents.wake(conn, document)
        return True


async def awaits_callback(db: Database, key: uuid.UUID) -> bool:
    """Whether parse job ``key`` is still waiting for its result: checked before a
    delivery's body is read, so that unsolicited bodies cost nothing."""
    async with db.pool.connection() as conn:
        return await parse_jobs.state(conn, key) == "submitted"
