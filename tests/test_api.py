"""The HTTP API against a real database, real worker processes and (where it matters) real
HTTP on loopback: uploads to searchable, limits, tenant isolation, keys, delete, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api_support import auth, live_server, make_key, wait_for
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.operations import keys
from ingestflow.store.database import Database
from ingestflow.store.files import LocalFileStore
from support import SAMPLES, ingest, settings_env, sql, start_worker

MARKDOWN = b"# Lighthouse\n\nThe lantern room of the lighthouse has new glazing.\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def upload(client: TestClient, key: str, name: str, data: bytes) -> httpx.Response:
    return client.post("/v1/documents", headers=auth(key), files={"file": (name, data)})


def stop(proc) -> None:  # type: ignore[no-untyped-def]
    proc.terminate()
    proc.wait(timeout=30)


def test_upload_to_searchable_with_a_worker_process(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        first = upload(client, key, "notes.txt", (SAMPLES / "notes.txt").read_bytes())
        second = upload(client, key, "release-notes.md", (SAMPLES / "release-notes.md").read_bytes())
        assert first.status_code == second.status_code == 201
        ids = [first.json()["id"], second.json()["id"]]
        assert first.json()["stage"] == "queued" and first.json()["version"] == 1

        def complete() -> bool:
            return all(client.get(f"/v1/documents/{i}", headers=auth(key)).json()["stage"] == "complete"
                       for i in ids)

        wait_for(complete)
    finally:
        stop(worker)

    doc = client.get(f"/v1/documents/{ids[0]}", headers=auth(key)).json()
    assert doc["progress"]["chunks"] >= 1
    assert doc["progress"]["chunks_embedded"] == doc["progress"]["chunks"]
    assert doc["progress"]["fraction"] == 1.0
    assert doc["error"] is None and doc["mime"] == "text/plain"
    assert {e["kind"] for e in doc["events"]} >= {"registered", "stage_done"}

    chunks = client.get(f"/v1/documents/{ids[0]}/chunks", headers=auth(key)).json()
    assert chunks["items"] and all(c["embedded"] for c in chunks["items"])
    assert "lighthouse" in " ".join(c["text"] for c in chunks["items"])

    hits = client.post("/v1/search", headers=auth(key), json={"query": "lighthouse lantern room", "k": 3}).json()
    assert hits["hits"][0]["document_id"] == ids[0]
    assert hits["provider"] == "mock"
    filtered = client.post("/v1/search", headers=auth(key), json={  # min_score 0: weak passages too
        "query": "lighthouse lantern room", "k": 3, "filters": {"source_name": "release-notes.md"}, "min_score": 0}).json()
    assert filtered["hits"] and {h["source_name"] for h in filtered["hits"]} == {"release-notes.md"}
    by_type = client.post("/v1/search", headers=auth(key), json={
        "query": "upgrade", "filters": {"mime": "text/markdown", "document_ids": ids}}).json()
    assert {h["document_id"] for h in by_type["hits"]} == {ids[1]}

    again = upload(client, key, "notes.txt", (SAMPLES / "notes.txt").read_bytes())
    assert again.status_code == 200
    assert again.json() == {"id": ids[0], "version": 1, "duplicate": True, "stage": "complete",
                            "warning": None}  # complete: nothing waits for a worker


def test_size_limit_answers_413_and_stores_nothing(settings: Settings) -> None:
    key = make_key(settings, "acme")
    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 1024}))) as client:
        at_limit = upload(client, key, "ok.txt", b"a" * 1024)
        assert at_limit.status_code == 201
        over = upload(client, key, "big.txt", b"a" * 1025)
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "too_large"
        declared = client.post("/v1/documents", headers={**auth(key), "Content-Type": "multipart/form-data; boundary=x",
                                                          "Content-Length": str(10 * 2**20)},
                               content=b"--x--\r\n" + b" " * (10 * 2**20 - 7))
        assert declared.status_code == 413
    assert sql(settings, "SELECT source_name FROM documents") == [("ok.txt",)]


def test_size_limit_stops_reading_a_streamed_body(settings: Settings) -> None:
    """Over real HTTP with chunked encoding (no Content-Length): the server answers 413
    after about the limit, long before the client has sent the whole body."""
    key = make_key(settings, "acme")
    limit, total = 256 * 1024, 64 * 2**20
    with live_server(create_app(settings.model_copy(update={"max_upload_bytes": limit}))) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (f"POST /v1/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                    "Content-Type: multipart/form-data; boundary=BOUND\r\nTransfer-Encoding: chunked\r\n\r\n")
            sock.sendall(head.encode())
            part = b'--BOUND\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sent, block = 0, b"a" * 65536
            sock.settimeout(0.05)
            reply = b""
            while sent < total:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                    sent += len(block)
                    reply += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:  # the server closed the connection after answering
                    break
                if reply:
                    break
            sock.settimeout(10)
            try:
                while b"\r\n\r\n" not in reply:
                    data = sock.recv(4096)
                    if not data:
                        break
                    reply += data
            except OSError:
                pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < total // 4
    assert sql(settings, "SELECT count(*) FROM documents") == [(0,)]


def test_type_is_detected_from_the_bytes(settings: Settings, client: TestClient) -> None:
    key = make_key(settings, "acme")
    png = upload(client, key, "report.pdf", PNG)
    assert png.status_code == 415 and png.json()["error"]["code"] == "unsupported_type"
    empty = upload(client, key, "empty.txt", b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_document"
    not_multipart = client.post("/v1/documents", headers=auth(key), content=MARKDOWN)
    assert not_multipart.status_code == 415
    no_file = client.post("/v1/documents", headers=auth(key), files={"other": ("x.md", MARKDOWN)})
    assert no_file.status_code == 400 and no_file.json()["error"]["code"] == "missing_file"
    named_wrong = upload(client, key, "picture.png", MARKDOWN)
    assert named_wrong.status_code == 201
    assert sql(settings, "SELECT source_name, mime, sha256 FROM documents") == [
        ("picture.png", "text/markdown", hashlib.sha256(MARKDOWN).hexdigest())]


def test_keys_are_required_and_scoped(settings: Settings, client: TestClient) -> None:
    key = make_key(settings, "acme")
    assert client.get("/v1/documents").status_code == 401
    assert client.get("/v1/documents", headers=auth("ifk_not-a-key")).status_code == 401
    assert client.get("/v1/documents", headers={"Authorization": "Basic abc"}).status_code == 401
    refused = client.post("/v1/documents", files={"file": ("a.md", MARKDOWN)})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/documents", headers={"X-API-Key": key}).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        assert client.get(path).status_code == 200, path
    assert sql(settings, "SELECT count(*) FROM documents") == [(0,)]
    stored = sql(settings, "SELECT key_hash, prefix FROM api_keys")
    assert stored[0][0] != key and key.startswith(stored[0][1]) and len(stored[0][1]) < 16


def test_tenant_isolation_on_every_route(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    acme, other = make_key(settings, "acme"), make_key(settings, "globex")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "lighthouse.md").write_bytes(MARKDOWN)
    submitted, _ = ingest(settings, [tmp_path / "docs"], tenant="acme")
    doc = str(submitted[0].registration.document_id)
    sql(settings, "WITH l AS (INSERT INTO ledger (service, model, unit, units, cost_usd, state, tenant)"
                  " VALUES ('openai', 'text-embedding-3-small', 'tokens', 1000, 0.25, 'settled', 'acme') RETURNING id)"
                  " INSERT INTO ledger_shares SELECT id, %s, 1000, 0.25 FROM l", (doc,))

    assert [d["id"] for d in client.get("/v1/documents", headers=auth(acme)).json()["items"]] == [doc]
    assert client.get("/v1/documents", headers=auth(other)).json() == {"items": [], "next_cursor": None}
    assert client.get(f"/v1/documents/{doc}", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/documents/{doc}/chunks", headers=auth(other)).status_code == 404
    assert client.post(f"/v1/documents/{doc}/retry", headers=auth(other)).status_code == 404
    assert client.delete(f"/v1/documents/{doc}", headers=auth(other)).status_code == 404
    for body in ({"query": "lighthouse"}, {"query": "lighthouse", "filters": {"document_ids": [doc]}}):
        assert client.post("/v1/search", headers=auth(other), json=body).json()["hits"] == []
        assert client.post("/v1/search", headers=auth(acme), json=body).json()["hits"]
    other_costs = client.get("/v1/costs", headers=auth(other)).json()
    assert other_costs["today_usd"] == 0 and other_costs["by_day"] == []
    acme_costs = client.get("/v1/costs", headers=auth(acme)).json()
    assert acme_costs["today_usd"] == pytest.approx(0.25)
    assert acme_costs["by_day"][0]["cost_usd"] == pytest.approx(0.25)
    assert client.get("/v1/dashboard", headers=auth(other)).json()["documents"] == 0
    detail = client.get(f"/v1/documents/{doc}", headers=auth(acme)).json()
    assert detail["cost_usd"] == pytest.approx(0.25)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.pdf").write_bytes(b"%PDF-1.7 broken")
    [broken], _ = ingest(settings, [tmp_path / "bad"], tenant="acme")
    failed = broken.registration.document_id
    assert client.post(f"/v1/documents/{failed}/retry", headers=auth(other)).status_code == 404
    assert sql(settings, "SELECT stage FROM documents WHERE id = %s", (failed,)) == [("failed",)]


def test_pagination(settings: Settings, client: TestClient) -> None:
    key = make_key(settings, "acme")
    for i in range(5):
        assert upload(client, key, f"n{i}.md", MARKDOWN + str(i).encode()).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/documents", headers=auth(key), params=params).json()
        seen += [d["source_name"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"n{i}.md" for i in range(5)] and len(set(seen)) == 5
    queued = client.get("/v1/documents", headers=auth(key), params={"stage": "queued"}).json()["items"]
    assert len(queued) == 5
    assert client.get("/v1/documents", headers=auth(key), params={"stage": "complete"}).json()["items"] == []
    bad = client.get("/v1/documents", headers=auth(key), params={"cursor": "garbage"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    unknown = client.get("/v1/documents", headers=auth(key), params={"stage": "nonsense"})  # the one rule: bounds.py
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_stage"


def test_retry_only_failed(settings: Settings, client: TestClient) -> None:
    key = make_key(settings, "acme")
    doc = upload(client, key, "a.md", MARKDOWN).json()["id"]
    conflict = client.post(f"/v1/documents/{doc}/retry", headers=auth(key))
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "not_failed"
    sql(settings, "UPDATE documents SET stage = 'failed', error_stage = 'parsed', error_code = 'corrupt_file',"
                  " error_message = 'damaged'")
    sql(settings, "UPDATE jobs SET state = 'failed'")
    failed = client.get(f"/v1/documents/{doc}", headers=auth(key)).json()
    assert failed["error"] == {"stage": "parsed", "code": "corrupt_file", "message": "damaged"}
    assert client.post(f"/v1/documents/{doc}/retry", headers=auth(key)).json() == {"id": doc, "stage": "queued"}
    assert sql(settings, "SELECT d.stage, d.error_code, j.state FROM documents d JOIN jobs j ON j.document_id = d.id") \
        == [("queued", None, "ready")]
    assert client.post(f"/v1/documents/{doc}/retry", headers=auth(key)).status_code == 409


def test_delete_cascades_and_keeps_shared_bytes(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    acme, other = make_key(settings, "acme"), make_key(settings, "globex")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lighthouse.md").write_bytes(MARKDOWN)
    submitted, _ = ingest(settings, [tmp_path / "a"], tenant="acme")
    doc = submitted[0].registration.document_id
    shared = upload(client, other, "copy.md", MARKDOWN).json()["id"]
    store = LocalFileStore(settings.home / "files")
    sha = sql(settings, "SELECT sha256 FROM documents WHERE id = %s", (doc,))[0][0]
    assert sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (doc,))[0][0] > 0

    gone = client.delete(f"/v1/documents/{doc}", headers=auth(acme)).json()
    assert gone == {"id": str(doc), "deleted": True}  # nothing says that globex holds the same bytes
    for table, column in (("chunks", "document_id"), ("events", "document_id"), ("document_texts", "document_id"),
                          ("jobs", "document_id"), ("documents", "id")):
        assert sql(settings, f"SELECT count(*) FROM {table} WHERE {column} = %s", (doc,)) == [(0,)], table
    assert sql(settings, "SELECT count(*) FROM embeddings") == [(0,)]
    assert store.path(sha).exists()

    last = client.delete(f"/v1/documents/{shared}", headers=auth(other)).json()
    assert last == {"id": shared, "deleted": True}
    assert not store.path(sha).exists()
    assert client.delete(f"/v1/documents/{shared}", headers=auth(other)).status_code == 404


def test_tenant_limits_answer_429(settings: Settings) -> None:
    key = make_key(settings, "acme")
    with TestClient(create_app(settings.model_copy(update={"api_uploads_per_day": 2}))) as client:
        assert upload(client, key, "a.md", MARKDOWN).status_code == 201
        assert upload(client, key, "a.md", MARKDOWN).status_code == 200
        refused = upload(client, key, "b.md", MARKDOWN + b"b")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "upload_limit"
        assert 0 < int(refused.headers["Retry-After"]) <= 86401
        other = make_key(settings, "globex")
        assert upload(client, other, "b.md", MARKDOWN + b"b").status_code == 201
    with TestClient(create_app(settings.model_copy(update={"api_max_concurrent_jobs": 1}))) as client:
        busy = upload(client, other, "c.md", MARKDOWN + b"c")
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "too_many_jobs"
        assert int(busy.headers["Retry-After"]) > 0
    assert sql(settings, "SELECT tenant, count(*) FROM documents GROUP BY 1 ORDER BY 1") == [("acme", 1), ("globex", 1)]


def test_errors_have_one_shape(settings: Settings, client: TestClient) -> None:
    key = make_key(settings, "acme")
    cases = [
        client.get("/no/such/route"),
        client.put("/healthz"),
        client.get("/v1/documents/not-a-uuid", headers=auth(key)),
        client.get(f"/v1/documents/{uuid.uuid4()}", headers=auth(key)),
        client.post("/v1/search", headers=auth(key), json={"query": "x", "k": 0}),
        client.post("/v1/search", headers=auth(key), content=b"{not json"),
        client.get("/v1/documents", headers=auth(key), params={"limit": -1}),
    ]
    assert [r.status_code for r in cases] == [404, 405, 422, 404, 400, 422, 422]
    for r in cases:
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body


def test_a_blank_query_finds_nothing(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_bytes(MARKDOWN)
    ingest(settings, [tmp_path / "d"], tenant="acme")
    key = make_key(settings, "acme")
    found = client.post("/v1/search", headers=auth(key), json={"query": " \n\u001c "})
    assert found.status_code == 200 and found.json()["hits"] == [], found.text
    assert "the query is blank: no passages" in found.json()["notes"]


def test_metrics_read_the_database(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_bytes(MARKDOWN)
    ingest(settings, [tmp_path / "d"], tenant="acme")
    sql(settings, "INSERT INTO ledger (service, model, unit, units, cost_usd, state, outcome)"
                  " VALUES ('openai', 'm', 'tokens', 10, 0, 'released', 'rate_limited')")
    sql(settings, "INSERT INTO breakers (service, state, consecutive_failures) VALUES ('openai', 'open', 5)")
    text = client.get("/metrics").text
    assert 'ingestflow_documents{stage="complete"} 1.0' in text
    assert 'ingestflow_stage_duration_seconds_count{stage="embedded"} 1.0' in text
    assert 'ingestflow_provider_rate_limited_total{service="openai"} 1.0' in text
    assert 'ingestflow_breaker_state{service="openai",state="open"} 1.0' in text
    assert 'ingestflow_queue_jobs{state="runnable"} 0.0' in text
    assert "ingestflow_queue_oldest_runnable_age_seconds" in text
    ready = client.get("/readyz").json()
    assert ready["database"] is True and {s["name"] for s in ready["services"]} == {"embeddings", "parser"}


def test_metrics_name_no_tenant_document_or_file(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    secrets = {"tenant": ("zanzibar-holdings", "quokka-labs"), "name": ("merger-plan-zeta.md", "layoffs-q3-omega.txt")}
    for tenant, name in zip(secrets["tenant"], secrets["name"]):
        (tmp_path / tenant).mkdir()
        (tmp_path / tenant / name).write_bytes(MARKDOWN + tenant.encode())
        ingest(settings, [tmp_path / tenant], tenant=tenant)
    key = make_key(settings, "zanzibar-holdings")
    failed = upload(client, key, "broken-osprey.pdf", b"%PDF-1.7 osprey-truncated").json()["id"]
    sql(settings, "UPDATE documents SET stage = 'failed', error_code = 'corrupt_file',"
                  " error_message = 'osprey-secret-detail' WHERE id = %s", (failed,))
    ids = [str(r[0]) for r in sql(settings, "SELECT id FROM documents")]
    assert len(ids) == 3
    text = client.get("/metrics").text
    assert 'ingestflow_documents{stage="complete"} 2.0' in text and 'ingestflow_documents{stage="failed"} 1.0' in text
    for needle in (*secrets["tenant"], *secrets["name"], "broken-osprey", "osprey", *ids, *(i[:8] for i in ids)):
        assert needle not in text, needle


def test_metrics_token(settings: Settings) -> None:
    token = "metrics-operator-token-1"
    with TestClient(create_app(settings.model_copy(update={"metrics_token": SecretStr(token)}))) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        auth(make_key(settings, "acme"))):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["WWW-Authenticate"] == "Bearer" and token not in refused.text
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "ingestflow_documents" in allowed.text
        assert client.get("/healthz").status_code == 200  # only /metrics is guarded


def test_keys_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestflow.cli.keys import app

    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    created = runner.invoke(app, ["create", "--tenant", "acme"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("ifk_")

    async def lookup() -> str | None:
        assert settings.database_url is not None
        async with Database(settings.database_url.get_secret_value(), max_size=1) as db:
            await db.pool.open()
            return await keys.tenant_for(db, key)

    assert asyncio.run(lookup()) == "acme"
    listed = runner.invoke(app, ["list"])
    assert key[:12] in listed.output and key not in listed.output
    assert runner.invoke(app, ["create", "--tenant", "bad name!"]).exit_code == 2
    assert runner.invoke(app, ["revoke", key[:12]]).exit_code == 0
    assert asyncio.run(lookup()) is None


def test_ingest_remote_uploads_and_follows(settings: Settings, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ingestflow.cli.remote import ingest_remote

    key = make_key(settings, "acme")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_bytes((SAMPLES / "notes.txt").read_bytes())
    (folder / "page.html").write_bytes((SAMPLES / "garden.html").read_bytes())
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with live_server(create_app(settings)) as base:
            code = ingest_remote(base, key, [str(folder)], poll_interval=0.2, timeout=120)
            out = capsys.readouterr().out
            assert code == 0, out
            assert "complete: 2" in out
            (folder / "image.png").write_bytes(PNG)
            code = ingest_remote(base, key, [str(folder)], poll_interval=0.2, timeout=120)
            out = capsys.readouterr().out
            assert code == 1
            assert "unsupported_type" in out and "refused: 1" in out
            with pytest.raises(typer.Exit) as refused:  # the contract of every command's errors (cli/common.fail)
                ingest_remote(base, "ifk_wrong", [str(folder)])
            assert refused.value.exit_code == 2 and "refused the API key" in capsys.readouterr().err
            (folder / "image.png").unlink()
            (folder / "more.md").write_text("# More\n\nUploaded without waiting.")
            capsys.readouterr()
            assert ingest_remote(base, key, [str(folder)], wait=False) == 0
            assert "1 new, 2 unchanged" in capsys.readouterr().out
            wait_for(lambda: sql(settings, "SELECT stage FROM documents WHERE source_name = 'more.md'")
                     == [("complete",)], timeout=60)
    finally:
        stop(worker)
    # named by the path relative to the folder given, as a local ingest names them
    assert sorted(sql(settings, "SELECT source_name, stage FROM documents")) == [
        ("more.md", "complete"), ("notes.txt", "complete"), ("page.html", "complete")]


def test_access_log_hides_keys_in_urls() -> None:
    from ingestflow.api.logfilter import RedactKeyParams

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/?key=ifk_secret&x=1", "1.1", 200), None)
    assert RedactKeyParams().filter(record)
    assert "ifk_secret" not in record.getMessage() and "/?key=***&x=1" in record.getMessage()
