"""Per-tenant limits under a flood, over real HTTP against a live server: admissions are
atomic, and a tenant at its limit is refused before its upload body is read."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api_support import auth, live_server, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings
from support import sql

MARKDOWN = b"# Tide table\n\nHigh water at the north quay is forty minutes after the south quay.\n"
UPLOADERS = 60


def test_concurrent_uploads_admit_exactly_the_limit(settings: Settings) -> None:
    key = make_key(settings, "acme")
    start = threading.Barrier(UPLOADERS)
    with live_server(create_app(settings.model_copy(update={"api_max_concurrent_jobs": 5}))) as base:

        def upload(i: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=120) as client:
                start.wait(timeout=60)
                return client.post("/v1/documents", headers=auth(key),
                                   files={"file": (f"tide-{i}.md", MARKDOWN + str(i).encode())})

        with ThreadPoolExecutor(UPLOADERS) as pool:
            responses = list(pool.map(upload, range(UPLOADERS)))
    assert Counter(r.status_code for r in responses) == {201: 5, 429: UPLOADERS - 5}
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["error"]["code"] == "too_many_jobs"
        assert int(refused.headers["Retry-After"]) > 0
    assert sql(settings, "SELECT count(*) FROM documents WHERE tenant = 'acme'") == [(5,)]
    assert sql(settings, "SELECT amount FROM api_usage WHERE tenant = 'acme'") == [(5,)]


def partial_upload(base: str, key: str, *, declared: int, sent: int) -> bytes:
    """Send the headers of an upload of ``declared`` bytes but only ``sent`` of its body, then
    read the whole reply. A server that waited for the rest would never answer (the socket
    timeout then fails the test)."""
    host, port = base.removeprefix("http://").split(":")
    part = b'--BOUND\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall((f"POST /v1/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                      "Content-Type: multipart/form-data; boundary=BOUND\r\n"
                      f"Content-Length: {declared}\r\n\r\n").encode())
        sock.sendall(part + b"a" * (sent - len(part)))
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < _content_length(reply):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    return reply


def _content_length(reply: bytes) -> int:
    for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize(("limit", "code"), [("api_max_concurrent_jobs", "too_many_jobs"),
                                           ("api_uploads_per_day", "upload_limit")])
def test_a_tenant_at_its_limit_is_refused_before_the_body_is_read(settings: Settings, limit: str, code: str) -> None:
    """Only 64 KiB of an 8 MiB upload is ever sent, yet the server answers: it read the
    limits, not the body, so refused floods cost it no memory."""
    key = make_key(settings, "busy")
    with live_server(create_app(settings.model_copy(update={limit: 1}))) as base:
        first = httpx.post(f"{base}/v1/documents", headers=auth(key), files={"file": ("a.md", MARKDOWN)})
        assert first.status_code == 201
        reply = partial_upload(base, key, declared=8 * 2**20, sent=64 * 1024)
    assert reply.startswith(b"HTTP/1.1 429"), reply[:300]
    assert f'"{code}"'.encode() in reply and b"retry-after: " in reply.lower()
    assert sql(settings, "SELECT tenant, count(*) FROM documents GROUP BY 1") == [("busy", 1)]


def test_a_flood_of_refused_uploads_never_queues_in_front_of_a_search(settings: Settings) -> None:
    """Tenant alpha floods uploads that its limit refuses, while every limit check is held
    up (the test locks the usage table, so each check holds its connection until the lock
    goes): a search by tenant beta is still answered, before any upload is. Limit checks
    take their connections from a small pool of their own; on the one pool they shared,
    the flood held every connection and the search waited behind it."""
    import psycopg

    alpha, beta = make_key(settings, "alpha"), make_key(settings, "beta")
    url = settings.database_url.get_secret_value()
    flood = 30

    def stuck_checks() -> int:
        return sql(settings, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                             " AND wait_event_type = 'Lock' AND query LIKE '%%api_usage%%'")[0][0]

    with live_server(create_app(settings.model_copy(update={"api_uploads_per_day": 1}))) as base, \
            httpx.Client(base_url=base, timeout=20) as client, ThreadPoolExecutor(flood) as pool:
        assert client.post("/v1/documents", headers=auth(alpha), files={"file": ("a.md", MARKDOWN)}).status_code == 201
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE api_usage IN ACCESS EXCLUSIVE MODE")

            def upload(i: int) -> httpx.Response:
                with httpx.Client(base_url=base, timeout=120) as own:
                    return own.post("/v1/documents", headers=auth(alpha),
                                    files={"file": (f"tide-{i}.md", MARKDOWN + str(i).encode())})

            uploads = [pool.submit(upload, i) for i in range(flood)]
            deadline = time.monotonic() + 30
            while stuck_checks() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the rest of the flood arrives and queues for a connection
            assert stuck_checks() >= 2
            searched = client.post("/v1/search", headers=auth(beta), json={"query": "north quay", "k": 3})
            assert searched.status_code == 200, searched.text
            assert not any(u.done() for u in uploads)  # the search went first
            assert stuck_checks() >= 2
            holder.rollback()
        responses = [u.result(timeout=60) for u in uploads]
    assert Counter(r.status_code for r in responses) == {429: flood}
    assert all(r.json()["error"]["code"] == "upload_limit" for r in responses)
