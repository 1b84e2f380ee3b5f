"""Sources and their versions through every face (issue 28): a re-upload after a delete is
a new version, every wait ends on every terminal stage and says which, a delete removes
every version and cannot race an upload of the same bytes. Real database, the real
pipeline (MOCK, or REAL against the fake OpenAI server), a real API server and a real
worker process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from api_support import live_server, make_key
from ingestflow import Client, IngestflowError, Ingested
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.operations.documents import check_file
from ingestflow.store.documents import sha256_hex
from ingestflow.store.files import LocalFileStore
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real
from support import run_cli, sql, start_worker

V1 = b"Handbook v1. The office opens at nine and closes at five.\n"
V2 = b"Handbook v2. The office opens at eight and closes at four.\n"


def two_versions(tmp_path: Path) -> list[Path]:
    """Two folders each holding handbook.txt: one ingest of both makes versions 1 and 2."""
    folders = []
    for label, data in (("a", V1), ("b", V2)):
        folder = tmp_path / label
        folder.mkdir()
        (folder / "handbook.txt").write_bytes(data)
        folders.append(folder)
    return folders


def reupload_after_delete(client: Client) -> Ingested:
    """v1 and v2 of handbook.txt, v2 deleted, v1's bytes again: what the last ingest says."""
    [v1] = client.ingest(V1, name="handbook.txt")
    [v2] = client.ingest(V2, name="handbook.txt")
    assert (v1.version, v1.stage, v2.version, v2.stage) == (1, "complete", 2, "complete")
    assert v2.document_id is not None
    client.delete(v2.document_id)
    [again] = client.ingest(V1, name="handbook.txt", timeout=60)
    return again


def searchable(client: Client) -> list[str]:
    return [h.source_name for h in client.search("office opens", mode="keyword").hits]


def test_a_reupload_after_a_delete_is_a_new_version_locally(settings: Settings) -> None:
    with Client(settings) as client:
        again = reupload_after_delete(client)
        assert (again.duplicate, again.stage) == (False, "complete")
        assert [d.source_name for d in client.documents()] == ["handbook.txt"]
        assert searchable(client) == ["handbook.txt"]


def test_a_reupload_after_a_delete_is_a_new_version_remotely(settings: Settings, tmp_path: Path) -> None:
    key = make_key(settings, "acme")
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with live_server(create_app(settings)) as base, Client(url=base, api_key=key) as client:
            again = reupload_after_delete(client)
            assert (again.duplicate, again.stage) == (False, "complete")
            assert [d.source_name for d in client.documents()] == ["handbook.txt"]
            assert searchable(client) == ["handbook.txt"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _ingest_in_thread(client: Client, paths: list[Path]) -> list[Ingested]:
    """The client's wait, with no timeout of its own: a wait that never ends fails the test."""
    done: list[list[Ingested]] = []
    thread = threading.Thread(target=lambda: done.append(client.ingest(paths)), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert done, "the wait did not end on a terminal stage"
    return done[0]


def test_every_wait_ends_on_a_superseded_version_and_says_so(settings: Settings, tmp_path: Path) -> None:
    """Versions 1 and 2 of one source in one ingest: v1 ends superseded, and the Python API
    (local and remote), `ingest` and `ingest --server` all stop waiting and say so."""
    folders = two_versions(tmp_path)
    with Client(settings) as client:
        outcomes = _ingest_in_thread(client, folders)
        assert [(o.version, o.stage) for o in outcomes] == [(1, "superseded"), (2, "complete")]
    sql(settings, "DELETE FROM documents")

    out = run_cli(settings, "ingest", *map(str, folders))
    assert out.returncode == 1, out.stdout + out.stderr  # not everything asked for is searchable
    assert "superseded" in out.stdout and "a newer version of this source replaced it" in out.stdout
    sql(settings, "DELETE FROM documents")

    key = make_key(settings, "acme")
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with live_server(create_app(settings)) as base:
            with Client(url=base, api_key=key) as remote:
                outcomes = _ingest_in_thread(remote, folders)
                assert [(o.version, o.stage) for o in outcomes] == [(1, "superseded"), (2, "complete")]
            sql(settings, "DELETE FROM documents")
            out = run_cli(settings, "ingest", "--server", base, "--api-key", key, *map(str, folders))
            assert out.returncode == 1, out.stdout + out.stderr
            assert "superseded: 1" in out.stdout and "a newer version of this source replaced it" in out.stdout
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_remote_wait_ends_when_the_document_is_deleted_and_says_so(settings: Settings) -> None:
    """Nothing processes the upload (no worker), then someone deletes it: the wait ends
    with 'deleted' (it used to stop only on complete or failed, and a 404 escaped)."""
    key = make_key(settings, "acme")
    with live_server(create_app(settings)) as base, Client(url=base, api_key=key) as client, \
            Client(settings, tenant="acme") as admin:
        waiting: list[list[Ingested]] = []
        thread = threading.Thread(target=lambda: waiting.append(client.ingest(V1, name="gone.txt")), daemon=True)
        thread.start()
        while not sql(settings, "SELECT id FROM documents"):
            thread.join(timeout=0.1)
        [(ident,)] = sql(settings, "SELECT id FROM documents")
        admin.delete(ident)
        thread.join(timeout=60)
        assert waiting, "the wait did not end when the document was deleted"
        [outcome] = waiting[0]
    assert (outcome.stage, outcome.error_code) == ("deleted", "not_found")


# -- delete means gone ----------------------------------------------------------------------


def test_delete_removes_the_source_and_every_version_and_the_ledger_keeps_amounts_only(
        settings: Settings, fake: FakeOpenAI) -> None:
    paid = real(settings, fake)
    store = LocalFileStore(settings.home / "files")
    with Client(paid) as client:
        [v1] = client.ingest(V1, name="handbook.txt")
        [v2] = client.ingest(V2, name="handbook.txt")
        [kept] = client.ingest(b"Parking is behind the office.\n", name="parking.txt")
        assert (v1.stage, v2.stage, kept.stage) == ("complete", "complete", "complete")  # v1 until v2 came
        shas = [sha for (sha,) in sql(settings, "SELECT sha256 FROM documents WHERE source_name = 'handbook.txt'")]
        spent = sql(settings, "SELECT count(*), sum(cost_usd) FROM ledger")
        assert spent[0][0] >= 3 and spent[0][1] > 0
        assert v2.document_id is not None
        client.delete(v2.document_id)  # the current version names the source: every version goes

        assert [d.source_name for d in client.documents()] == ["parking.txt"]
        assert [d.source_name for d in client.documents("superseded")] == []
        assert searchable(client) == ["parking.txt"]
    gone = (v1.document_id, v2.document_id)
    for table, column in (("documents", "id"), ("chunks", "document_id"), ("document_texts", "document_id"),
                          ("events", "document_id"), ("jobs", "document_id"), ("ledger_shares", "document_id")):
        assert sql(settings, f"SELECT count(*) FROM {table} WHERE {column} = ANY(%s)", (list(gone),)) == [(0,)], table
    assert sql(settings, "SELECT count(*) FROM chunks c JOIN embeddings e ON e.chunk_id = c.id") == \
        sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (kept.document_id,))
    assert not any(store.path(sha).exists() for sha in shas)
    assert sql(settings, "SELECT count(*), sum(cost_usd) FROM ledger") == spent  # the amounts stay...
    ledger = " ".join(str(row) for row in sql(settings, "SELECT l.*, s.* FROM ledger l"
                                                        " LEFT JOIN ledger_shares s ON s.ledger_id = l.id"))
    assert "handbook" not in ledger and "office" not in ledger  # ...and no text
    assert str(v1.document_id) not in ledger and str(v2.document_id) not in ledger


# -- a delete and an upload of the same bytes cannot race -------------------------------------


@pytest.mark.parametrize(("uploader", "data"), [("beta", V2), ("alpha", V1)])
def test_an_upload_of_bytes_a_delete_is_removing_keeps_them(settings: Settings, uploader: str, data: bytes) -> None:
    """The bad interleaving, forced: an upload of bytes already stored (so not written again)
    is not committed yet when a delete checks whether anything still uses them. The delete
    waits for the upload's commit and keeps the file; the upload is processed. Across
    tenants (the current version's bytes), and within one (a superseded version's bytes,
    under another name: the current one's would be a duplicate)."""
    from ingestflow.operations import documents as operations
    from ingestflow.runtime import open_runtime
    from ingestflow.store import documents

    with Client(settings, tenant="alpha") as alpha:
        alpha.ingest(V1, name="handbook.txt")
        [current] = alpha.ingest(V2, name="handbook.txt")
    assert current.document_id is not None
    stored = LocalFileStore(settings.home / "files").path(sha256_hex(data))

    async def race() -> tuple[uuid.UUID, object]:
        async with open_runtime(settings) as rt:
            async with rt.db.pool.connection() as conn, conn.transaction():
                [reg] = await documents.register(conn, tenant=uploader, files=[check_file("copy.txt", data)],
                                                 store=rt.files)
                assert not reg.duplicate and stored.exists()  # there already: not written again
                deleting = asyncio.create_task(operations.delete(rt, "alpha", current.document_id))
                await asyncio.sleep(1.0)  # the delete checks the bytes' use while this is uncommitted
            return reg.document_id, await deleting

    upload, deleted = asyncio.run(race())
    assert stored.exists()
    assert deleted == 2  # versions
    with Client(settings, tenant=uploader) as client:
        [again] = client.ingest(data, name="copy.txt")  # a duplicate: the wait runs its work
        assert (again.document_id, again.duplicate) == (upload, True)
        assert (client.status(upload).stage, client.status(upload).error_code) == ("complete", None)


# -- naming a document ------------------------------------------------------------------------


def test_an_id_prefix_needs_four_characters_and_a_name_comes_first(settings: Settings) -> None:
    with Client(settings) as client:
        [year] = client.ingest(b"Notes of the year.\n", name="2024")
        [other] = client.ingest(b"Other notes.\n", name="n212125.txt")
        ident = str(other.document_id)
        assert ident.startswith("2024")  # the name chosen for this: "2024" is both
        assert client.status("2024").id == year.document_id
        cli = run_cli(settings, "status", "2024", "--json")
        assert cli.returncode == 0 and f'"id": "{year.document_id}"' in cli.stdout, cli.stdout + cli.stderr
        for short in (ident[:1], ident[:2], ident[:3]):
            with pytest.raises(IngestflowError) as refused:
                client.delete(short)
            assert refused.value.code == "not_found" and "4 characters" in refused.value.message
        assert [d.source_name for d in client.documents()] == ["n212125.txt", "2024"]
        assert client.status(ident[:6]).id == other.document_id
        client.delete("2024")
        assert client.status("2024").id == other.document_id


# -- one file is one source, and a folder can be kept in sync ---------------------------------


def project(tmp_path: Path) -> Path:
    """A project folder (it holds the home) with mydocs/a.md, mydocs/sub/volcano.html,
    other/c.md and an empty work/ to run commands from."""
    proj = tmp_path / "proj"
    for folder in (".ingestflow", "mydocs/sub", "other", "work"):
        (proj / folder).mkdir(parents=True)
    (proj / "mydocs" / "a.md").write_text("# A\n\nAlpha notes.\n")
    (proj / "mydocs" / "sub" / "volcano.html").write_text("<h1>Volcano</h1><p>Lava flows slowly.</p>")
    (proj / "other" / "c.md").write_text("# C\n\nOther notes.\n")
    return proj


def in_project(settings: Settings, proj: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``ingestflow *args`` run from proj/work, with the home proj/.ingestflow."""
    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(settings, *args, cwd=proj / "work", stdin=stdin, INGESTFLOW_HOME=str(proj / ".ingestflow"))

    return cli


def names(settings: Settings, tenant: str = "default") -> list[tuple[str, int, bool]]:
    return sql(settings, "SELECT source_name, version, is_current FROM documents WHERE tenant = %s"
                         " ORDER BY source_name, version", (tenant,))


def test_a_file_in_the_project_is_one_source_however_it_is_reached(settings: Settings, tmp_path: Path) -> None:
    proj = project(tmp_path)
    here = in_project(settings, proj)
    assert here("ingest", "../mydocs").returncode == 0
    (proj / "mydocs" / "sub" / "volcano.html").write_text("<h1>Volcano</h1><p>Lava flows fast.</p>")
    assert here("ingest", "../mydocs/sub/volcano.html").returncode == 0
    assert names(settings) == [("mydocs/a.md", 1, True), ("mydocs/sub/volcano.html", 1, False),
                               ("mydocs/sub/volcano.html", 2, True)]
    outside = tmp_path / "outside"  # not in the project: named relative to the folder given, as before
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.md").write_text("# X\n\nOutside notes.\n")
    assert here("ingest", str(outside)).returncode == 0
    assert ("deep/x.md", 1, True) in names(settings)


def test_ingest_sync_deletes_the_documents_whose_files_are_gone_once_agreed(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path)
    here = in_project(settings, proj)
    assert here("ingest", "../mydocs", "../other").returncode == 0
    (proj / "mydocs" / "sub" / "volcano.html").unlink()
    declined = here("ingest", "--sync", "../mydocs", stdin="n\n")
    assert "sync: 1 documents of ../mydocs have no file any more: mydocs/sub/volcano.html" in declined.stdout
    assert "deleted nothing" in declined.stdout and len(names(settings)) == 3
    agreed = here("ingest", "--sync", "../mydocs", stdin="y\n")
    assert agreed.returncode == 0 and "deleted 1 documents" in agreed.stdout, agreed.stdout + agreed.stderr
    assert names(settings) == [("mydocs/a.md", 1, True), ("other/c.md", 1, True)]  # other/ is not mydocs/

    (proj / "mydocs" / "a.md").unlink()
    counted = here("ingest", "--sync", "../mydocs", "--json")
    assert json.loads(counted.stdout)["sync"] == {"stale": ["mydocs/a.md"], "deleted": []}  # --json asks nobody
    refused = here("ingest", "--sync", "../other/c.md", "--json")
    assert refused.returncode == 1 and json.loads(refused.stderr)["error"]["code"] == "invalid_sync"

    monkeypatch.chdir(proj / "work")
    monkeypatch.setenv("INGESTFLOW_HOME", str(proj / ".ingestflow"))
    local = Settings(**{**settings.model_dump(), "ingestflow_home": proj / ".ingestflow"})
    with Client(local) as client:
        outcomes = client.ingest(proj / "mydocs", sync=True)
    assert [(o.name, o.stage) for o in outcomes] == [("mydocs/a.md", "deleted")]
    assert names(settings) == [("other/c.md", 1, True)]

    key = make_key(settings, "acme")  # no worker: nothing waits, the sync is what is tested
    (proj / "mydocs" / "a.md").write_text("# A\n\nAlpha notes.\n")
    (proj / "mydocs" / "b.md").write_text("# B\n\nBeta notes.\n")
    with live_server(create_app(settings)) as base:
        with Client(url=base, api_key=key) as remote:
            assert {o.name for o in remote.ingest(proj / "mydocs", wait=False)} == {"mydocs/a.md", "mydocs/b.md"}
            (proj / "mydocs" / "a.md").unlink()
            outcomes = remote.ingest("../mydocs", wait=False, sync=True)
            assert [(o.name, o.stage) for o in outcomes][-1] == ("mydocs/a.md", "deleted")
        assert [n for n, _, _ in names(settings, "acme")] == ["mydocs/b.md"]
        (proj / "mydocs" / "b.md").unlink()
        (proj / "mydocs" / "d.md").write_text("# D\n\nDelta notes.\n")
        over_http = here("ingest", "--server", base, "--api-key", key, "--no-wait", "--sync", "--yes", "../mydocs")
        assert "deleted 1 documents" in over_http.stdout, over_http.stdout + over_http.stderr
    assert [n for n, _, _ in names(settings, "acme")] == ["mydocs/d.md"]
