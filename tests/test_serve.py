"""``ingestflow serve`` as a real process: alone it takes an upload to complete (its own
worker); API only (``--workers 0``) it says that documents wait for a worker; worker
processes show up through their heartbeats, age out when killed and leave when stopped."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from api_support import auth, make_key, serving, wait_for
from conftest import TEMPLATE, new_database
from ingestflow.config import Settings
from ingestflow.operations.workers import NO_WORKER
from support import SAMPLES, run_cli, sql, start_worker

HEARTBEAT = "0.2"  # seconds: a killed worker ages out after three of them


def upload(client: httpx.Client, key: str, name: str) -> dict[str, Any]:
    response = client.post("/v1/documents", headers=auth(key), files={"file": (name, (SAMPLES / name).read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()


def document(client: httpx.Client, key: str, document_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/documents/{document_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def ready_workers(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    return response.json()["workers"]


def board_workers(client: httpx.Client, key: str) -> dict[str, Any]:
    """The live workers listed on the dashboard (/readyz needs no key: it gives only a count)."""
    response = client.get("/v1/dashboard", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["workers"]


def status_workers(settings: Settings) -> dict[str, Any]:
    result = run_cli(settings, "status", "--json", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["workers"]


def test_serve_alone_takes_an_upload_to_complete(settings: Settings, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    with serving(settings, tmp_path / "serve.log", "--workers", "3") as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        [worker] = wait_for(lambda: board_workers(client, key)["alive"])
        assert worker["slots"] == 3
        sent = upload(client, key, "notes.txt")
        assert sent["warning"] is None  # its own worker will take it
        done = wait_for(lambda: (d := document(client, key, sent["id"]))["stage"] in ("complete", "failed") and d)
        assert done["stage"] == "complete" and done["warning"] is None
        hits = client.post("/v1/search", headers=auth(key), json={"query": "lighthouse restoration", "k": 1}).json()["hits"]
        assert hits and hits[0]["document_id"] == sent["id"]
    # Stopped with SIGTERM: its worker left the table as it stopped, nothing ages out.
    assert sql(settings, "SELECT count(*) FROM workers") == [(0,)]
    assert "worker_stopped" in (tmp_path / "serve.log").read_text()


def test_api_only_server_warns_that_documents_wait_for_a_worker(settings: Settings, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    with serving(settings, tmp_path / "serve.log", "--workers", "0") as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        sent = upload(client, key, "notes.txt")
        assert sent["stage"] == "queued" and sent["warning"] == NO_WORKER
        assert document(client, key, sent["id"])["warning"] == NO_WORKER
        assert ready_workers(client) == {"count": 0, "warning": NO_WORKER}  # no host or pid without a key
        assert status_workers(settings) == {"alive": [], "count": 0, "warning": NO_WORKER}
        plain = run_cli(settings, "status", "--tenant", "acme")
        assert plain.returncode == 0 and "workers: 0 alive" in plain.stdout
        assert "ingestflow worker" in plain.stderr
        # Another tenant's queue is not this one's: its dashboard has nothing waiting.
        other = make_key(settings, "other")
        board = client.get("/v1/dashboard", headers=auth(other)).json()["workers"]
        assert board == {"count": 0, "alive": [], "warning": None}
        assert client.get("/v1/dashboard", headers=auth(key)).json()["workers"]["warning"] == NO_WORKER


def test_worker_heartbeats_show_it_alive_until_killed_or_stopped(settings: Settings, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    # A worker dead for two days: the live ones forget it.
    sql(settings, "INSERT INTO workers (owner, host, pid, slots, interval_seconds, started_at, heartbeat_at)"
                  " VALUES ('gone:1:x', 'gone', 1, 2, 5, now() - interval '3 days', now() - interval '2 days')")
    with serving(settings, tmp_path / "serve.log", "--workers", "0") as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        first = start_worker(settings, tmp_path / "first.log", "--concurrency", "2", WORKER_HEARTBEAT_SECONDS=HEARTBEAT)
        try:
            [alive] = wait_for(lambda: board_workers(client, key)["alive"])
            assert alive["pid"] == first.pid and alive["slots"] == 2
            assert sql(settings, "SELECT owner FROM workers WHERE host = 'gone'") == []
            [listed] = status_workers(settings)["alive"]
            assert listed["pid"] == first.pid and listed["owner"].split(":")[1] == str(first.pid)
            sent = upload(client, key, "notes.txt")
            assert sent["warning"] is None
            wait_for(lambda: document(client, key, sent["id"])["stage"] == "complete")
        finally:
            first.send_signal(signal.SIGKILL)  # no clean stop: its row stays and ages out
            first.wait(timeout=30)
        gone = wait_for(lambda: (w := ready_workers(client))["count"] == 0 and w)
        assert gone["warning"] is None  # nothing is waiting
        assert status_workers(settings)["count"] == 0
        assert sql(settings, "SELECT count(*) FROM workers WHERE pid = %s", (first.pid,)) == [(1,)]
        waiting = upload(client, key, "release-notes.md")
        assert waiting["warning"] == NO_WORKER and ready_workers(client)["warning"] == NO_WORKER

        second = start_worker(settings, tmp_path / "second.log", WORKER_HEARTBEAT_SECONDS=HEARTBEAT)
        wait_for(lambda: [w for w in board_workers(client, key)["alive"] if w["pid"] == second.pid])
        wait_for(lambda: document(client, key, waiting["id"])["stage"] == "complete")
        second.terminate()  # a clean stop: it leaves at once
        second.wait(timeout=60)
        assert sql(settings, "SELECT count(*) FROM workers WHERE pid = %s", (second.pid,)) == [(0,)]
        assert ready_workers(client)["count"] == 0


def test_the_dashboard_shows_no_other_tenants_activity(settings: Settings, tmp_path: Path) -> None:
    """Tenant beta's uploads, done by the worker both tenants share, change nothing alpha's
    dashboard says about that worker but its heartbeat."""
    alpha, beta = make_key(settings, "alpha"), make_key(settings, "beta")

    def alpha_sees() -> list[dict[str, Any]]:
        return [{k: v for k, v in w.items() if k != "heartbeat_at"} for w in board_workers(client, alpha)["alive"]]

    with serving(settings, tmp_path / "serve.log", "--workers", "2", WORKER_HEARTBEAT_SECONDS=HEARTBEAT) as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        before = wait_for(alpha_sees)
        for name in ("notes.txt", "release-notes.md"):
            sent = upload(client, beta, name)["id"]
            wait_for(lambda sent=sent: document(client, beta, sent)["stage"] == "complete")
        done_at = board_workers(client, alpha)["alive"][0]["heartbeat_at"]
        wait_for(lambda: board_workers(client, alpha)["alive"][0]["heartbeat_at"] > done_at)  # one beat since
        assert alpha_sees() == before
        assert set(before[0]) == {"host", "pid", "slots", "started_at"}
        assert board_workers(client, alpha)["warning"] is None


def test_serve_says_which_home_it_opened_and_a_key_from_elsewhere_is_told_why(settings: Settings, pg_server: str,
                                                                              tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    with new_database(pg_server, TEMPLATE) as elsewhere:  # another home's database
        stranger = make_key(settings.model_copy(update={"database_url": SecretStr(elsewhere)}), "acme")
    with serving(settings, tmp_path / "serve.log", "--workers", "0") as base, \
            httpx.Client(base_url=base, timeout=60) as client:
        said = (tmp_path / "serve.log").read_text()
        assert f"home {settings.home}, set by INGESTFLOW_HOME; database: DATABASE_URL" in said, said
        assert client.get("/v1/dashboard", headers=auth(key)).status_code == 200
        refused = client.get("/v1/dashboard", headers=auth(stranger))
        assert refused.status_code == 401
        message = refused.json()["error"]["message"]
        assert "database it was made in" in message and "`ingestflow keys create`" in message
        assert str(settings.home) not in message  # the path is for the operator, not for any caller
        nothing = client.get("/v1/dashboard").json()["error"]["message"]
        assert nothing == "A valid API key is required (Authorization: Bearer <key>)."
