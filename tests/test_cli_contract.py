"""The CLI contract (issue 17): every command's --json is one JSON document on stdout and
its errors are JSON on stderr with the API's codes; documents are listed and deleted from
the command line; the home is found as git finds a repository. Real processes, real
database."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ingestflow.config import Settings
from support import run_cli, sql


def json_out(done: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


def json_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code and done.stdout == "", done.stdout + done.stderr
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["message"], error
    return error["code"]


def test_every_command_prints_one_json_document(settings: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.md").write_text("# Kites\n\nBox kites fly best in steady winds of twenty knots.\n")
    (inbox / "bad.pdf").write_bytes(b"%PDF-1.7 broken")
    (inbox / "empty.md").write_bytes(b"")
    ingested = json_out(run_cli(settings, "ingest", "--json", str(inbox)), 1)  # a document failed
    by_name = {d["source_name"]: d for d in ingested["documents"]}
    assert by_name["good.md"]["stage"] == "complete" and by_name["good.md"]["chunks"] == 1
    assert by_name["good.md"]["error"] is None and by_name["good.md"]["cost_usd"] == 0.0  # MOCK is free
    assert by_name["bad.pdf"]["stage"] == "failed" and by_name["bad.pdf"]["error"]["code"] == "corrupt_file"
    assert by_name["empty.md"]["stage"] == "refused" and by_name["empty.md"]["id"] is None

    listed = json_out(run_cli(settings, "documents", "--json"))["documents"]
    assert sorted(d["source_name"] for d in listed) == ["bad.pdf", "good.md"]
    failed = json_out(run_cli(settings, "documents", "--stage", "failed", "--json"))["documents"]
    assert [(d["source_name"], d["chunks"]) for d in failed] == [("bad.pdf", 0)]
    table = run_cli(settings, "documents", "--stage", "complete")
    assert "good.md" in table.stdout and "bad.pdf" not in table.stdout
    assert str(by_name["good.md"]["id"])[:8] in table.stdout

    overview = json_out(run_cli(settings, "status", "--json"))
    assert overview["home"] == {"path": str(settings.home), "how": "env", "origin": "set by INGESTFLOW_HOME"}
    doctor = json_out(run_cli(settings, "doctor", "--json"))
    assert doctor["home"]["path"] == str(settings.home) and doctor["server_version"].startswith("18")
    (space,) = doctor["vector_indexes"]  # the mock model's space, too small yet for a graph
    assert space["dimensions"] == settings.mock_embedding_dimensions and space["index"] is None
    assert json_out(run_cli(settings, "retry", "bad.pdf", "--json"))["stage"] == "queued"

    key = json_out(run_cli(settings, "keys", "create", "--tenant", "acme", "--json"))
    assert key["key"].startswith(key["prefix"]) and key["tenant"] == "acme"
    keys = json_out(run_cli(settings, "keys", "list", "--json"))["keys"]
    assert [(k["prefix"], k["revoked_at"]) for k in keys] == [(key["prefix"], None)]
    assert json_out(run_cli(settings, "keys", "revoke", key["prefix"], "--json")) == {"revoked": 1}

    assert len(json_out(run_cli(settings, "db", "index", "--json"))["built"]) == 1  # the one space
    (space,) = json_out(run_cli(settings, "doctor", "--json"))["vector_indexes"]
    assert space["index"] == f"embeddings_hnsw_space_{space['space_id']}" and space["valid"] is True
    assert (space["m"], space["ef_construction"]) == (settings.hnsw_m, settings.hnsw_ef_construction)
    assert 0 < space["bytes"] < space["shared_buffers"] and space["outgrows_buffers"] is False
    assert "Vector indexes" in run_cli(settings, "doctor").stdout
    assert json_out(run_cli(settings, "db", "migrate", "--json")) == {"applied": []}
    assert "by_day" in json_out(run_cli(settings, "costs", "--json"))
    assert json_out(run_cli(settings, "reembed", "--json"))["queued"] == 0
    pinned = json_out(run_cli(settings, "init", str(tmp_path / "project"), "--json"))
    assert pinned["created"] is True and pinned["home"] == str(tmp_path / "project" / ".ingestflow")

    hits = json_out(run_cli(settings, "search", "steady winds for box kites", "--json"))["hits"]
    assert hits[0]["source_name"] == "good.md"
    deleted = json_out(run_cli(settings, "delete", "good.md", "--json"))  # --json never prompts
    assert deleted["deleted"] is True and deleted["id"] == by_name["good.md"]["id"]
    after = json_out(run_cli(settings, "search", "steady winds for box kites", "--json"))["hits"]
    assert all(h["source_name"] != "good.md" for h in after)


def test_errors_with_json_are_json_on_stderr_with_the_api_codes(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Note\n\nThe tide tables are printed weekly.\n")
    assert json_error(run_cli(settings, "retry", "nothing-by-this-name", "--json")) == "not_found"
    assert json_error(run_cli(settings, "delete", "nothing-by-this-name", "--json")) == "not_found"
    assert json_error(run_cli(settings, "status", "nothing-by-this-name", "--json")) == "not_found"
    assert json_error(run_cli(settings, "keys", "revoke", "ifk_nosuchkey", "--json")) == "not_found"
    assert json_error(run_cli(settings, "ingest", "--json", "missing.md"), 2) == "no_such_path"
    assert json_error(run_cli(settings, "ingest", "--json", "--server", "http://127.0.0.1:9", "--api-key",
                              "ifk_x", "note.md"), 2) == "server_unavailable"
    assert json_error(run_cli(settings, "ingest", "--json", "--server", "http://127.0.0.1:9", "--api-key",
                              "ifk_x", "missing.md"), 2) == "no_such_path"
    assert json_error(run_cli(settings, "doctor", "--json", CHUNK_MAX_TOKENS="1"), 2) == "invalid_configuration"
    # The command line itself: an unknown option, a value that is not of the option's type.
    assert json_error(run_cli(settings, "status", "--bogus", "--json"), 2) == "invalid_request"
    assert json_error(run_cli(settings, "search", "kites", "-k", "many", "--json"), 2) == "invalid_request"
    # A value the operations' rule refuses (operations/bounds.py): its code, exit 1, on every face.
    assert json_error(run_cli(settings, "documents", "--stage", "nope", "--json")) == "unknown_stage"
    usage = run_cli(settings, "status", "--bogus")
    assert usage.returncode == 2 and "No such option" in usage.stderr and usage.stdout == ""
    plain = run_cli(settings, "ingest", "--server", "http://127.0.0.1:9", "--api-key", "ifk_x", "note.md")
    assert plain.returncode == 2 and "cannot use the server" in plain.stderr and plain.stdout == ""


def test_delete_asks_first_and_takes_the_document_out_of_search(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Note\n\nThe lighthouse keeper logs every passing ship.\n")
    assert run_cli(settings, "ingest", "note.md").returncode == 0
    declined = run_cli(settings, "delete", "note.md", stdin="n\n")
    assert declined.returncode == 1 and "delete note.md and every version of it" in declined.stdout
    assert sql(settings, "SELECT count(*) FROM documents")[0][0] == 1
    assert run_cli(settings, "delete", "note.md").returncode == 1  # no answer is no
    agreed = run_cli(settings, "delete", "note.md", stdin="y\n")
    assert agreed.returncode == 0 and "deleted note.md (1 version)" in agreed.stdout, agreed.stdout + agreed.stderr
    assert sql(settings, "SELECT count(*) FROM documents")[0][0] == 0
    found = json_out(run_cli(settings, "search", "lighthouse keeper", "--json"))
    assert found["hits"] == []


def home_unset(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with no INGESTFLOW_HOME, whose per-user data folder is
    tmp_path/xdg (HOME: tmp_path/user)."""
    (tmp_path / "user").mkdir()
    return {"INGESTFLOW_HOME": "", "HOME": str(tmp_path / "user"), "XDG_DATA_HOME": str(tmp_path / "xdg")}


def test_the_home_is_found_walking_up_else_the_per_user_default(settings: Settings, tmp_path: Path) -> None:
    """INGESTFLOW_HOME unset: a project's .ingestflow is found from any folder below it, with
    the .env beside it; elsewhere the per-user default, said when it is new."""
    found_env = home_unset(tmp_path)
    user, xdg = tmp_path / "user", tmp_path / "xdg"
    project = tmp_path / "project"
    deep = project / "docs" / "2026"
    deep.mkdir(parents=True)
    assert run_cli(settings, "init", cwd=project, **found_env).returncode == 0
    (project / ".env").write_text("SEARCH_MODE=keyword\n")
    doctor = run_cli(settings, "doctor", "--json", cwd=deep, **found_env)
    report = json_out(doctor)
    assert report["home"] == {"path": str(project / ".ingestflow"), "how": "found",
                              "origin": f"found walking up from {deep}"}
    assert report["settings"]["search_mode"] == "keyword"  # the .env beside the home
    assert "new empty home" not in doctor.stderr
    (deep / "note.md").write_text("# Note\n\nThe ferry leaves at noon.\n")
    assert run_cli(settings, "ingest", "note.md", cwd=deep, **found_env).returncode == 0
    assert list((project / ".ingestflow" / "files").rglob("*"))  # the bytes went to the found home

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "note.md").write_text("# Note\n\nThe last ferry leaves at midnight.\n")  # new bytes to store
    first = run_cli(settings, "ingest", "note.md", cwd=elsewhere, **found_env)
    assert first.returncode == 0 and first.stderr.count(f"new empty home at {xdg / 'ingestflow'}") == 1, first.stderr
    assert "ingestflow init" in first.stderr
    again = run_cli(settings, "status", cwd=elsewhere, **found_env)
    assert "new empty home" not in again.stderr and f"home: {xdg / 'ingestflow'}, per-user default" in again.stdout
    no_xdg = json_out(run_cli(settings, "status", "--json", cwd=elsewhere, **{**found_env, "XDG_DATA_HOME": ""}))
    assert no_xdg["home"]["path"] == str(user / ".local" / "share" / "ingestflow")
    assert no_xdg["home"]["how"] == "default"


def test_a_home_or_env_planted_by_someone_else_is_skipped(settings: Settings, tmp_path: Path) -> None:
    """A shared folder (as the system's temp folder) holding a .ingestflow and a .env is not
    trusted by those working below it unless it is theirs and only theirs to write, as git's
    safe.directory: skipped with a warning, whatever it says is not read."""
    env, xdg = home_unset(tmp_path), tmp_path / "xdg"
    shared = tmp_path / "shared"
    work = shared / "me" / "work"
    work.mkdir(parents=True)
    planted = shared / ".ingestflow"
    planted.mkdir()
    (shared / ".env").write_text("SEARCH_MODE=keyword\n")

    def doctor() -> tuple[dict[str, Any], str]:
        done = run_cli(settings, "doctor", "--json", cwd=work, **env)
        return json_out(done), done.stderr

    report, _ = doctor()
    assert report["home"]["path"] == str(planted) and report["settings"]["search_mode"] == "keyword"  # ours: used

    planted.chmod(0o777)  # writable by every user
    report, warned = doctor()
    assert report["home"]["path"] == str(xdg / "ingestflow") and report["settings"]["search_mode"] == "hybrid"
    assert f"skipped {planted}: every user can write to it" in warned, warned

    planted.chmod(0o755)
    os.chown(planted, 54321, 54321)  # another user's
    report, warned = doctor()
    assert report["home"]["how"] == "default" and report["settings"]["search_mode"] == "hybrid"
    assert f"skipped {planted}: it is owned by another user (uid 54321)" in warned, warned

    # The home is ours, the .env beside it (or in the working folder) is not: the home is
    # used, that .env is not read.
    os.chown(planted, os.geteuid(), os.getegid())
    for dotenv in (shared / ".env", work / ".env"):
        dotenv.write_text("SEARCH_MODE=keyword\n")
        os.chown(dotenv, 54321, 54321)
        report, warned = doctor()
        assert report["home"]["path"] == str(planted) and report["settings"]["search_mode"] == "hybrid"
        assert f"skipped {dotenv}: it is owned by another user" in warned, warned
        os.chown(dotenv, os.geteuid(), os.getegid())
        dotenv.chmod(0o666)
        report, warned = doctor()
        assert report["settings"]["search_mode"] == "hybrid" and f"skipped {dotenv}: every user" in warned
        dotenv.unlink()
