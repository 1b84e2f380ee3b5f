"""LlamaParse callbacks: a valid one advances a parsing document once; forged, stale,
replayed or malformed ones answer 401 and change nothing in the database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_support import live_server
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support import sql

from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.runtime import open_runtime
from ingestflow.services.webhooks import job_secret, signed_headers
from ingestflow.store import documents

MASTER = "whsec-master-for-tests"
MARKDOWN = "# Parsed\n\nThe text LlamaParse returned.\n"


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"llamaparse_webhook_secret": SecretStr(MASTER)})


@pytest.fixture
def client(hook_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hook_settings)) as c:
        yield c


def parsing_document(settings: Settings, name: str = "scan.pdf") -> uuid.UUID:
    """A registered document that a worker has moved to ``parsing`` (waiting on LlamaParse)."""

    async def main() -> uuid.UUID:
        async with open_runtime(settings) as rt, rt.db.pool.connection() as conn, conn.transaction():
            reg = await documents.register(conn, tenant="acme", source_name=name, data=b"%PDF-1.4 " + name.encode(),
                                           mime="application/pdf", files=rt.files)
            await documents.advance(conn, reg.document_id, ("queued",), "parsing")
            await conn.execute("UPDATE jobs SET state = 'running', owner = 'w1' WHERE document_id = %s",
                               (reg.document_id,))
            return reg.document_id

    return asyncio.run(main())


def body(status: str = "SUCCESS", **extra: Any) -> bytes:
    payload = {"job_id": "job-1", "status": status, "markdown": MARKDOWN, "pages": 2, **extra}
    return json.dumps(payload).encode()


def deliver(client: TestClient | httpx.Client, document: uuid.UUID | str, raw: bytes, *,
            secret: str | None = None, event_id: str | None = None, now: float | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    secret = secret or job_secret(MASTER, str(document))
    signed = headers if headers is not None else signed_headers(secret, raw, event_id or uuid.uuid4().hex, now)
    return client.post("/v1/webhooks/llamaparse", params={"document": str(document)}, content=raw,
                       headers={**signed, "Content-Type": "application/json"})


def state(settings: Settings, doc: uuid.UUID) -> dict[str, Any]:
    """Everything a delivery could change."""
    return {
        "document": sql(settings, "SELECT stage, parser, updated_at FROM documents WHERE id = %s", (doc,)),
        "text": sql(settings, "SELECT markdown, parser FROM document_texts WHERE document_id = %s", (doc,)),
        "job": sql(settings, "SELECT state, owner, attempts, next_attempt_at FROM jobs WHERE document_id = %s", (doc,)),
        "events": sql(settings, "SELECT count(*) FROM events WHERE document_id = %s", (doc,)),
        "webhook_events": sql(settings, "SELECT event_id FROM webhook_events ORDER BY event_id"),
    }


def test_valid_callback_advances_to_parsed_and_enqueues(hook_settings: Settings, client: TestClient) -> None:
    doc = parsing_document(hook_settings)
    response = deliver(client, doc, body(), event_id="evt-1")
    assert response.status_code == 200
    assert response.json() == {"accepted": True, "applied": True}
    assert sql(hook_settings, "SELECT stage, parser FROM documents WHERE id = %s", (doc,)) == [("parsed", "llamaparse")]
    assert sql(hook_settings, "SELECT markdown FROM document_texts WHERE document_id = %s", (doc,)) == [(MARKDOWN,)]
    assert sql(hook_settings, "SELECT state, owner FROM jobs WHERE document_id = %s", (doc,)) == [("ready", None)]
    assert sql(hook_settings, "SELECT event_id, document_id FROM webhook_events") == [("evt-1", doc)]
    detail = sql(hook_settings, "SELECT detail FROM events WHERE document_id = %s AND kind = 'webhook'", (doc,))
    assert detail[0][0]["job_id"] == "job-1" and detail[0][0]["pages"] == 2


@pytest.mark.parametrize("attack", ["wrong_secret", "other_document", "stale", "future", "tampered_body",
                                    "no_signature", "bad_signature_format", "bad_document_id", "no_document",
                                    "malformed_body", "unknown_status"])
def test_invalid_deliveries_change_nothing(hook_settings: Settings, client: TestClient, attack: str) -> None:
    doc = parsing_document(hook_settings)
    other = parsing_document(hook_settings, "other.pdf")
    before = state(hook_settings, doc)
    raw = body()
    if attack == "wrong_secret":
        response = deliver(client, doc, raw, secret=job_secret("guessed-master", str(doc)))
    elif attack == "other_document":
        response = deliver(client, doc, raw, secret=job_secret(MASTER, str(other)))
    elif attack == "stale":
        response = deliver(client, doc, raw, now=time.time() - 3600)
    elif attack == "future":
        response = deliver(client, doc, raw, now=time.time() + 3600)
    elif attack == "tampered_body":
        headers = signed_headers(job_secret(MASTER, str(doc)), raw, "evt-x")
        response = deliver(client, doc, body(markdown="# Injected"), headers=headers)
    elif attack == "no_signature":
        response = deliver(client, doc, raw, headers={})
    elif attack == "bad_signature_format":
        headers = signed_headers(job_secret(MASTER, str(doc)), raw, "evt-x")
        response = deliver(client, doc, raw, headers={**headers, "X-Ingestflow-Signature": "sha1=abc"})
    elif attack == "bad_document_id":
        response = deliver(client, "not-a-uuid", raw, secret=job_secret(MASTER, "not-a-uuid"))
    elif attack == "no_document":
        headers = signed_headers(job_secret(MASTER, str(doc)), raw, "evt-x")
        response = client.post("/v1/webhooks/llamaparse", content=raw, headers=headers)
    elif attack == "malformed_body":
        response = deliver(client, doc, b"{not json")
    else:
        response = deliver(client, doc, body(status="DONE"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert state(hook_settings, doc) == before


def test_replayed_delivery_changes_nothing(hook_settings: Settings, client: TestClient) -> None:
    doc = parsing_document(hook_settings)
    raw = body()
    headers = signed_headers(job_secret(MASTER, str(doc)), raw, "evt-replay")
    assert deliver(client, doc, raw, headers=headers).json()["applied"] is True
    # Put the document back where a replay could do harm, then replay the exact delivery.
    sql(hook_settings, "UPDATE documents SET stage = 'parsing' WHERE id = %s", (doc,))
    sql(hook_settings, "DELETE FROM document_texts WHERE document_id = %s", (doc,))
    before = state(hook_settings, doc)
    replay = deliver(client, doc, raw, headers=headers)
    assert replay.status_code == 401
    assert state(hook_settings, doc) == before


def test_duplicate_deliveries_advance_once(hook_settings: Settings, client: TestClient) -> None:
    doc = parsing_document(hook_settings)
    results = [deliver(client, doc, body(), event_id=f"evt-{i}").json() for i in range(3)]
    assert [r["applied"] for r in results] == [True, False, False]
    assert sql(hook_settings, "SELECT count(*) FROM events WHERE document_id = %s AND kind = 'webhook'", (doc,)) == [(1,)]
    assert sql(hook_settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsed",)]
    assert len(sql(hook_settings, "SELECT event_id FROM webhook_events")) == 3


def test_concurrent_duplicate_deliveries_advance_once(hook_settings: Settings) -> None:
    doc = parsing_document(hook_settings)
    with live_server(create_app(hook_settings)) as base, httpx.Client(base_url=base) as http:
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda i: deliver(http, doc, body(), event_id=f"evt-{i}"), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert sum(r.json()["applied"] for r in responses) == 1
    assert sql(hook_settings, "SELECT count(*) FROM events WHERE document_id = %s AND kind = 'webhook'", (doc,)) == [(1,)]


def test_error_status_is_recorded_only(hook_settings: Settings, client: TestClient) -> None:
    doc = parsing_document(hook_settings)
    response = deliver(client, doc, body(status="ERROR", markdown="", error_message="bad scan"))
    assert response.json() == {"accepted": True, "applied": False}
    assert sql(hook_settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsing",)]
    assert sql(hook_settings, "SELECT count(*) FROM document_texts WHERE document_id = %s", (doc,)) == [(0,)]
    events = sql(hook_settings, "SELECT detail FROM events WHERE document_id = %s AND kind = 'webhook'", (doc,))
    assert events[0][0]["status"] == "ERROR" and events[0][0]["error_message"] == "bad scan"


def test_not_parsing_is_a_no_op(hook_settings: Settings, client: TestClient) -> None:
    doc = parsing_document(hook_settings)
    sql(hook_settings, "UPDATE documents SET stage = 'complete' WHERE id = %s", (doc,))
    before = state(hook_settings, doc)
    assert deliver(client, doc, body(), event_id="late").json() == {"accepted": True, "applied": False}
    after = state(hook_settings, doc)
    assert after["webhook_events"] == [("late",)]
    assert {k: v for k, v in after.items() if k != "webhook_events"} == \
        {k: v for k, v in before.items() if k != "webhook_events"}


def test_without_a_configured_secret_everything_is_refused(settings: Settings) -> None:
    doc = parsing_document(settings)
    with TestClient(create_app(settings)) as client:
        assert deliver(client, doc, body()).status_code == 401
    assert sql(settings, "SELECT stage FROM documents WHERE id = %s", (doc,)) == [("parsing",)]
