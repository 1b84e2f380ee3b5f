"""LlamaParse callbacks: a valid one applies a parse job's result once; forged, stale,
replayed, re-labelled, misdirected or malformed ones answer 401 and change nothing in the
database; unsolicited bodies are refused before they are read."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api_support import live_server
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.runtime import open_runtime
from ingestflow.services.webhooks import job_secret, signed_headers
from ingestflow.store import documents, parse_jobs
from support import force_stage, sql

MASTER = "whsec-master-for-tests"
MARKDOWN = "# Parsed\n\nThe text LlamaParse returned.\n"


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"llamaparse_webhook_secret": SecretStr(MASTER)})


@pytest.fixture
def client(hook_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hook_settings)) as c:
        yield c


def waiting_document(settings: Settings, name: str = "scan.pdf") -> tuple[uuid.UUID, uuid.UUID]:
    """A document in ``parsing`` whose job waits (deferred) on a submitted parse job; returns
    (document id, parse job key)."""

    async def main() -> tuple[uuid.UUID, uuid.UUID]:
        async with open_runtime(settings) as rt, rt.db.pool.connection() as conn, conn.transaction():
            [reg] = await documents.register(conn, tenant="acme", store=rt.files, files=[
                documents.NewFile(name, b"%PDF-1.4 " + name.encode(), "application/pdf")])
            await documents.advance_one(conn, reg.document_id, ("queued",), "parsing")
            key = uuid.uuid4()
            await parse_jobs.insert(conn, key, reg.document_id, f"llama-{key.hex[:6]}")
            await conn.execute("UPDATE jobs SET next_attempt_at = now() + interval '1 hour',"
                               " deferred_reason = 'awaiting_parse' WHERE document_id = %s", (reg.document_id,))
            return reg.document_id, key

    return asyncio.run(main())


def body(status: str = "SUCCESS", **extra: Any) -> bytes:
    payload = {"job_id": "job-1", "status": status, "markdown": MARKDOWN, "pages": 2, **extra}
    return json.dumps(payload).encode()


def deliver(client: TestClient | httpx.Client, key: uuid.UUID | str, raw: bytes, *,
            secret: str | None = None, event_id: str | None = None, now: float | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    secret = secret or job_secret(MASTER, str(key))
    signed = headers if headers is not None else signed_headers(secret, raw, event_id or uuid.uuid4().hex, now)
    return client.post("/v1/webhooks/llamaparse", params={"job": str(key)}, content=raw,
                       headers={**signed, "Content-Type": "application/json"})


def state(settings: Settings, doc: uuid.UUID) -> dict[str, Any]:
    """Everything a delivery could change."""
    return {
        "document": sql(settings, "SELECT stage, parser, updated_at FROM documents WHERE id = %s", (doc,)),
        "text": sql(settings, "SELECT markdown, parser FROM document_texts WHERE document_id = %s", (doc,)),
        "job": sql(settings, "SELECT state, owner, attempts, next_attempt_at FROM jobs WHERE document_id = %s", (doc,)),
        "parse_jobs": sql(settings, "SELECT id, state, error FROM parse_jobs WHERE document_id = %s ORDER BY id", (doc,)),
        "events": sql(settings, "SELECT count(*) FROM events WHERE document_id = %s", (doc,)),
        "webhook_events": sql(settings, "SELECT event_id FROM webhook_events ORDER BY event_id"),
    }


def test_valid_callback_applies_the_result_and_wakes_the_job(hook_settings: Settings, client: TestClient) -> None:
    doc, key = waiting_document(hook_settings)
    response = deliver(client, key, body(), event_id="evt-1")
    assert response.status_code == 200
    assert response.json() == {"accepted": True, "applied": True}
    assert sql(hook_settings, "SELECT stage, parser FROM documents WHERE id = %s", (doc,)) == [("parsed", "llamaparse")]
    assert sql(hook_settings, "SELECT markdown FROM document_texts WHERE document_id = %s", (doc,)) == [(MARKDOWN,)]
    assert sql(hook_settings, "SELECT state, next_attempt_at <= now() FROM jobs WHERE document_id = %s",
               (doc,)) == [("ready", True)]
    assert sql(hook_settings, "SELECT state FROM parse_jobs WHERE id = %s", (key,)) == [("applied",)]
    assert sql(hook_settings, "SELECT event_id, document_id FROM webhook_events") == [("evt-1", doc)]
    detail = sql(hook_settings, "SELECT detail FROM events WHERE document_id = %s AND kind = 'parse_callback'", (doc,))
    assert detail[0][0]["provider_job_id"] == "job-1" and detail[0][0]["pages"] == 2


@pytest.mark.parametrize("attack", ["wrong_secret", "other_job", "stale", "future", "tampered_body",
                                    "relabelled_event", "no_signature", "bad_signature_format", "bad_job_id",
                                    "no_job", "unknown_job", "malformed_body", "unknown_status"])
def test_invalid_deliveries_change_nothing(hook_settings: Settings, client: TestClient, attack: str) -> None:
    doc, key = waiting_document(hook_settings)
    _, other = waiting_document(hook_settings, "other.pdf")
    before = state(hook_settings, doc)
    raw = body()
    if attack == "wrong_secret":
        response = deliver(client, key, raw, secret=job_secret("guessed-master", str(key)))
    elif attack == "other_job":  # validly signed for another job, presented for this one
        response = deliver(client, key, raw, secret=job_secret(MASTER, str(other)))
    elif attack == "stale":
        response = deliver(client, key, raw, now=time.time() - 3600)
    elif attack == "future":
        response = deliver(client, key, raw, now=time.time() + 3600)
    elif attack == "tampered_body":
        headers = signed_headers(job_secret(MASTER, str(key)), raw, "evt-x")
        response = deliver(client, key, body(markdown="# Injected"), headers=headers)
    elif attack == "relabelled_event":  # a captured delivery resent under a fresh event id
        headers = signed_headers(job_secret(MASTER, str(key)), raw, "evt-original")
        response = deliver(client, key, raw, headers={**headers, "X-Ingestflow-Event-Id": "evt-fresh"})
    elif attack == "no_signature":
        response = deliver(client, key, raw, headers={})
    elif attack == "bad_signature_format":
        headers = signed_headers(job_secret(MASTER, str(key)), raw, "evt-x")
        response = deliver(client, key, raw, headers={**headers, "X-Ingestflow-Signature": "sha1=abc"})
    elif attack == "bad_job_id":
        response = deliver(client, "not-a-uuid", raw, secret=job_secret(MASTER, "not-a-uuid"))
    elif attack == "no_job":
        headers = signed_headers(job_secret(MASTER, str(key)), raw, "evt-x")
        response = client.post("/v1/webhooks/llamaparse", content=raw, headers=headers)
    elif attack == "unknown_job":
        stranger = uuid.uuid4()
        response = deliver(client, stranger, raw, secret=job_secret(MASTER, str(stranger)))
    elif attack == "malformed_body":
        response = deliver(client, key, b"{not json")
    else:
        response = deliver(client, key, body(status="DONE"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert state(hook_settings, doc) == before


def test_replayed_delivery_changes_nothing(hook_settings: Settings, client: TestClient) -> None:
    doc, key = waiting_document(hook_settings)
    raw = body()
    headers = signed_headers(job_secret(MASTER, str(key)), raw, "evt-replay")
    assert deliver(client, key, raw, headers=headers).json()["applied"] is True
    # Put everything back where a replay could do harm, then replay the exact delivery.
    sql(hook_settings, "UPDATE parse_jobs SET state = 'submitted' WHERE id = %s", (key,))
    sql(hook_settings, "DELETE FROM document_texts WHERE document_id = %s", (doc,))
    force_stage(hook_settings, "parsing", "id = %s", (doc,))
    before = state(hook_settings, doc)
    replay = deliver(client, key, raw, headers=headers)
    assert replay.status_code == 401
    assert state(hook_settings, doc) == before


def test_a_delivery_for_an_earlier_parse_job_cannot_advance_a_later_one(
        hook_settings: Settings, client: TestClient) -> None:
    doc, first = waiting_document(hook_settings)
    sql(hook_settings, "UPDATE parse_jobs SET state = 'abandoned' WHERE id = %s", (first,))  # resubmitted
    second = uuid.uuid4()
    sql(hook_settings, "INSERT INTO parse_jobs (id, document_id, provider_job_id) VALUES (%s, %s, 'llama-2')",
        (second, doc))
    before = state(hook_settings, doc)
    late = body(markdown="# Result of the first, abandoned job")
    assert deliver(client, first, late).status_code == 401  # its job waits for nothing
    headers = signed_headers(job_secret(MASTER, str(first)), late, "evt-first")
    assert deliver(client, second, late, headers=headers).status_code == 401  # signed for the other job
    assert state(hook_settings, doc) == before
    assert deliver(client, second, body()).json()["applied"] is True


def test_duplicate_deliveries_apply_once(hook_settings: Settings, client: TestClient) -> None:
    doc, key = waiting_document(hook_settings)
    results = [deliver(client, key, body(), event_id=f"evt-{i}") for i in range(3)]
    assert results[0].json()["applied"] is True
    assert [r.status_code for r in results[1:]] == [401, 401]  # the job no longer waits
    assert sql(hook_settings, "SELECT count(*) FROM events WHERE document_id = %s AND kind = 'parse_callback'",
               (doc,)) == [(1,)]
    assert sql(hook_settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsed",)]


def test_concurrent_duplicate_deliveries_apply_once(hook_settings: Settings) -> None:
    doc, key = waiting_document(hook_settings)
    with live_server(create_app(hook_settings)) as base, httpx.Client(base_url=base) as http:
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda i: deliver(http, key, body(), event_id=f"evt-{i}"), range(6)))
    assert all(r.status_code in (200, 401) for r in responses)
    assert sum(r.status_code == 200 and r.json()["applied"] for r in responses) == 1
    assert sql(hook_settings, "SELECT count(*) FROM events WHERE document_id = %s AND kind = 'parse_callback'",
               (doc,)) == [(1,)]


def test_error_status_is_recorded_for_the_worker_to_report(hook_settings: Settings, client: TestClient) -> None:
    doc, key = waiting_document(hook_settings)
    response = deliver(client, key, body(status="ERROR", markdown="", error_message="bad scan"))
    assert response.json() == {"accepted": True, "applied": True}
    assert sql(hook_settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsing",)]
    assert sql(hook_settings, "SELECT state, error FROM parse_jobs WHERE id = %s", (key,)) == [("failed", "bad scan")]
    assert sql(hook_settings, "SELECT next_attempt_at <= now() FROM jobs WHERE document_id = %s", (doc,)) == [(True,)]


def test_a_retired_document_is_not_advanced(hook_settings: Settings, client: TestClient) -> None:
    doc, key = waiting_document(hook_settings)
    sql(hook_settings, "UPDATE documents SET stage = 'superseded' WHERE id = %s", (doc,))
    before = state(hook_settings, doc)
    assert deliver(client, key, body(), event_id="late").json() == {"accepted": True, "applied": False}
    after = state(hook_settings, doc)
    assert after["webhook_events"] == [("late",)]
    assert {k: v for k, v in after.items() if k != "webhook_events"} == \
        {k: v for k, v in before.items() if k != "webhook_events"}


def test_without_a_configured_secret_everything_is_refused(settings: Settings) -> None:
    doc, key = waiting_document(settings)
    with TestClient(create_app(settings)) as client:
        assert deliver(client, key, body()).status_code == 401
    assert sql(settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsing",)]


def _refused_before_the_body(base: str, path: str, headers: dict[str, str], size: int) -> bytes:
    """Send headers announcing ``size`` bytes and none of the body; the answer must come
    without the server waiting for (or reading) the body."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {size}",
                 "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096)


def test_unsigned_or_unsolicited_bodies_are_refused_before_they_are_read(hook_settings: Settings) -> None:
    doc, key = waiting_document(hook_settings)
    sixty_mib = 60 * 1024 * 1024
    signed = signed_headers(job_secret(MASTER, str(key)), b"whatever", "evt-big")
    with live_server(create_app(hook_settings)) as base:
        unsigned = _refused_before_the_body(base, f"/v1/webhooks/llamaparse?job={key}", {}, sixty_mib)
        unknown = _refused_before_the_body(base, f"/v1/webhooks/llamaparse?job={uuid.uuid4()}", signed, sixty_mib)
        oversized = _refused_before_the_body(base, f"/v1/webhooks/llamaparse?job={key}", signed, 65 * 1024 * 1024)
    assert unsigned.startswith(b"HTTP/1.1 401") and unknown.startswith(b"HTTP/1.1 401")
    assert oversized.startswith(b"HTTP/1.1 413")
    assert sql(hook_settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsing",)]
