"""The command line as a user runs it: real processes, real database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ingestflow.config import Settings
from support import SAMPLES, run_cli, run_cli_imports, settings_env, sql


def test_ingest_status_search_retry_doctor_costs(settings: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.md").write_text("# Kites\n\nBox kites fly best in steady winds of twenty knots.\n")
    (inbox / "bad.pdf").write_bytes(b"%PDF-1.7 broken")
    out = run_cli(settings, "ingest", str(inbox))
    assert out.returncode == 1, out.stderr  # a document failed
    assert "documents: 2  complete: 1  failed: 1" in out.stdout and "corrupt_file" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    again = run_cli(settings, "ingest", "--no-wait", str(inbox / "good.md"))
    assert again.returncode == 0 and "0 new, 1 unchanged" in again.stdout
    assert again.stderr == ""  # nothing waits: no warning
    (tmp_path / "later.md").write_text("# Later\n\nOnly queued, no worker runs.\n")
    queued = run_cli(settings, "ingest", "--no-wait", str(tmp_path / "later.md"))
    assert queued.returncode == 0 and "No worker is running" in queued.stderr and "`ingestflow worker`" in queued.stderr
    found = run_cli(settings, "search", "steady winds for box kites", "-k", "1")
    assert "good.md" in found.stdout and "twenty knots" in found.stdout
    status = run_cli(settings, "status", "bad.pdf")  # named relative to the folder given
    assert "corrupt_file" in status.stdout and "failed" in status.stdout
    assert run_cli(settings, "status", "nothing-by-this-name").returncode == 1
    retried = run_cli(settings, "retry", "bad.pdf")
    assert "queued bad.pdf v1 again" in retried.stdout and "No worker is running" in retried.stderr
    assert run_cli(settings, "retry", "good.md").returncode == 1  # only failed documents
    doctor = run_cli(settings, "doctor")
    assert doctor.returncode == 0 and "PostgreSQL 18" in doctor.stdout and "MOCK" in doctor.stdout
    costs = run_cli(settings, "costs")
    assert costs.returncode == 0 and "openai" in costs.stdout
    migrate = run_cli(settings, "db", "migrate")
    assert "schema is up to date" in migrate.stdout


def test_doctor_fails_when_a_real_service_is_unusable(settings: Settings) -> None:
    out = run_cli(settings, "doctor", SERVICE_MODE="REAL", OPENAI_API_KEY="sk-nothing-listens-here",
                  OPENAI_API_URL="http://127.0.0.1:9/v1")
    assert out.returncode == 1
    assert "sk-nothing-listens-here" not in out.stdout + out.stderr


def test_fake_providers_command_serves_all_three(settings: Settings) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ingestflow", "fake-providers", "--openai-port", "18081",
                             "--llamaparse-port", "18082", "--cohere-port", "18083"], env=settings_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30

    def get_json(url: str) -> object:
        """Each server answers once it is up; the two start independently."""
        while True:
            try:
                request = urllib.request.Request(url, headers={"Authorization": "Bearer sk-fake"})
                return json.load(urllib.request.urlopen(request, timeout=2))
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    try:
        models = get_json("http://127.0.0.1:18081/v1/models")
        assert any(m["id"] == "text-embedding-3-small" for m in models["data"])  # type: ignore[index]
        assert ".pdf" in get_json("http://127.0.0.1:18082/api/v1/parsing/supported_file_extensions")  # type: ignore[operator]
        assert get_json("http://127.0.0.1:18083/v1/models/rerank-v3.5")["endpoints"] == ["rerank"]  # type: ignore[index]
    finally:
        # SIGTERM, not SIGINT: a shell running the suite in the background (nohup, `cmd &`)
        # starts it with SIGINT ignored, and the child inherits that, so SIGINT never stopped it.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM  # a clean exit: the servers stopped, exit hooks ran
    assert SAMPLES.exists()


def test_one_file_is_one_source_however_its_path_is_spelled(settings: Settings, tmp_path: Path) -> None:
    """``docs/a.md``, ``./docs/a.md``, the absolute path and the folder all name ``a.md``:
    one source, deduplicated; --prefix and --source-name name it otherwise, on purpose."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe anemometer measures wind speed.\n")
    for spelling in ("docs/a.md", "./docs/a.md", str(docs / "a.md"), "docs", "./docs/"):
        out = run_cli(settings, "ingest", "--no-wait", spelling, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
    # the same bytes under another name are the same document (dedup within a tenant)
    (docs / "a.md").write_text("# A\n\nThe anemometer measures wind speed and gusts.\n")
    run_cli(settings, "ingest", "--no-wait", "--prefix", "site/", "docs", cwd=tmp_path)
    (docs / "a.md").write_text("# A\n\nThe anemometer is read every hour.\n")
    run_cli(settings, "ingest", "--no-wait", "--source-name", "manual.md", "docs/a.md", cwd=tmp_path)
    names = run_cli(settings, "status", "--json")
    recent = json.loads(names.stdout)["recent"]
    assert sorted((r["source_name"], r["version"]) for r in recent) == [
        ("a.md", 1), ("manual.md", 1), ("site/a.md", 1)]
    two = run_cli(settings, "ingest", "--no-wait", "--source-name", "x.md", "docs", str(docs / "a.md"),
                  cwd=tmp_path)
    assert two.returncode == 1 and "--source-name names one file" in two.stderr


def test_json_output_and_long_names(settings: Settings, tmp_path: Path) -> None:
    deep = tmp_path / "archive" / "customers" / "northwind-trading-company" / "correspondence" / "2026"
    deep.mkdir(parents=True)
    (deep / "letter-about-the-delayed-shipment.md").write_text("# Delay\n\nThe shipment of lanterns is late.\n")
    assert run_cli(settings, "ingest", str(tmp_path / "archive")).returncode == 0
    table = run_cli(settings, "status", COLUMNS="100")
    assert "…" in table.stdout and "letter-about-the-delayed-shipment.md" in table.stdout  # the end is kept
    found = json.loads(run_cli(settings, "search", "late lanterns", "-k", "1", "--json").stdout)
    assert found["hits"][0]["source_name"].endswith("letter-about-the-delayed-shipment.md")
    assert found["provider"] == "mock" and found["degraded"] is False
    detail = json.loads(run_cli(settings, "status", found["hits"][0]["document_id"], "--json").stdout)
    assert detail["stage"] == "complete" and detail["chunks"] == 1


def test_names_beyond_the_terminals_encoding_print_without_a_crash(settings: Settings, tmp_path: Path) -> None:
    """An ASCII or Latin-1 terminal (or pipe) cannot show "日本": tables show "?", JSON
    escapes it, and nothing fails mid-output."""
    (tmp_path / "日本の寿司.md").write_text("# 寿司\n\nSushi rice is seasoned with vinegar.\n")
    assert run_cli(settings, "ingest", "日本の寿司.md", cwd=tmp_path).returncode == 0
    for encoding in ("ascii", "latin-1"):
        table = run_cli(settings, "status", PYTHONIOENCODING=encoding)
        assert table.returncode == 0 and "??.md" in table.stdout, table.stdout + table.stderr
        hits = run_cli(settings, "search", "seasoned sushi rice", "-k", "1", PYTHONIOENCODING=encoding)
        assert hits.returncode == 0 and "vinegar" in hits.stdout, hits.stdout + hits.stderr
        found = run_cli(settings, "search", "seasoned sushi rice", "-k", "1", "--json", PYTHONIOENCODING=encoding)
        assert json.loads(found.stdout)["hits"][0]["source_name"] == "日本の寿司.md"
        assert "Traceback" not in table.stderr + hits.stderr + found.stderr


def test_tenants_and_queries_follow_the_rules_the_api_follows(settings: Settings, tmp_path: Path) -> None:
    """A tenant no API key could name or an overlong query is refused by the CLI too; a blank
    query finds nothing, by either face."""
    (tmp_path / "note.md").write_text("# Note\n\nThe ferry leaves at noon.\n")
    bad = run_cli(settings, "ingest", "note.md", "--tenant", "acme corp", cwd=tmp_path)
    assert bad.returncode == 2 and "Tenant names are 1-100 letters" in bad.stderr, bad.stdout + bad.stderr
    assert sql(settings, "SELECT count(*) FROM documents")[0][0] == 0
    assert run_cli(settings, "costs", "--tenant", "../etc").returncode == 2
    assert run_cli(settings, "keys", "create", "--tenant", "").returncode == 2
    assert run_cli(settings, "ingest", "note.md", cwd=tmp_path).returncode == 0
    empty = json.loads(run_cli(settings, "search", " \t ", "--json").stdout)
    assert empty["hits"] == [] and "the query is blank: no passages" in empty["notes"]
    long = run_cli(settings, "search", "w" * 8001)
    assert long.returncode == 1 and "query_too_long" in long.stderr, long.stdout + long.stderr
    assert "Traceback" not in bad.stderr + long.stderr


def test_an_id_prefix_of_two_documents_is_refused_not_guessed(settings: Settings, tmp_path: Path) -> None:
    from ingestflow.store.documents import document_id

    first: dict[str, str] = {}  # the id's first 4 hex digits (the shortest prefix taken) -> file name
    for i in range(100_000):  # two of a few hundred documents share them
        name = f"note{i}.md"
        digits = str(document_id("default", name, 1))[:4]
        if digits in first:
            pair = (first[digits], name)
            break
        first[digits] = name
    for name in pair:
        (tmp_path / name).write_text(f"# {name}\n\nA short note.\n")
    assert run_cli(settings, "ingest", *pair, cwd=tmp_path).returncode == 0
    shared = run_cli(settings, "status", digits)
    assert shared.returncode == 1 and "ambiguous_reference" in shared.stderr, shared.stdout + shared.stderr
    assert run_cli(settings, "retry", digits).returncode == 1
    one = str(document_id("default", pair[1], 1))[:8]
    assert pair[1] in run_cli(settings, "status", one).stdout
    assert pair[0] in run_cli(settings, "status", pair[0]).stdout  # a source name is never ambiguous


def test_version_prints_the_installed_version(settings: Settings) -> None:
    from importlib.metadata import version

    done = run_cli(settings, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ingestflow {version('ingestflow')}"


def test_keys_revoke_takes_the_prefix_as_keys_list_shows_it(settings: Settings) -> None:
    created = run_cli(settings, "keys", "create", "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    listed = run_cli(settings, "keys", "list", COLUMNS="200")
    (shown,) = [cell.strip() for line in listed.stdout.splitlines() if "acme" in line
                for cell in line.split("│")[1:2]]
    assert shown.endswith("…") and created.stdout.strip().splitlines()[-1].startswith(shown[:-1])
    revoked = run_cli(settings, "keys", "revoke", shown)
    assert revoked.returncode == 0 and "revoked 1 key(s)" in revoked.stdout, revoked.stdout + revoked.stderr
    assert sql(settings, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE tenant = 'acme'") == [(True,)]


def test_with_json_errors_are_json_on_stderr_with_the_api_codes(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Note\n\nThe tide tables are printed weekly.\n")
    assert run_cli(settings, "ingest", "note.md", cwd=tmp_path).returncode == 0
    for args, code, exit_code in [
        (("search", "w" * 8001, "--json"), "query_too_long", 1),  # the API answers this code too
        (("status", "no-such-document", "--json"), "not_found", 1),
        (("search", "tide", "--json"), "invalid_configuration", 2),
    ]:
        env = {"SEARCH_LANGUAGE": "klingon"} if code == "invalid_configuration" else {}
        out = run_cli(settings, *args, cwd=tmp_path, **env)
        assert out.returncode == exit_code and out.stdout == "", (args, out.stdout, out.stderr)
        error = json.loads(out.stderr.strip().splitlines()[-1])["error"]
        assert error["code"] == code and error["message"], (args, error)
    plain = run_cli(settings, "status", "no-such-document", cwd=tmp_path)
    assert plain.stdout == "" and "not_found" in plain.stderr and not plain.stderr.lstrip().startswith("{")


def test_what_a_person_reads_is_finished(settings: Settings, tmp_path: Path) -> None:
    """Marks rendered (kept in --json), event details as text, doctor's figures labelled and
    right, doctor explaining a configuration it cannot load, the words of the --mode error."""
    (tmp_path / "aurora.md").write_text("# Lights\n\nThe aurora borealis glows green over Tromsø in winter.\n")
    (tmp_path / "empty.md").write_text("")
    out = run_cli(settings, "ingest", str(tmp_path / "aurora.md"), str(tmp_path / "empty.md"))
    assert "cost $" in out.stdout and "refused: 1" in out.stdout and "tokens " not in out.stdout, out.stdout
    found = run_cli(settings, "search", "aurora", "-k", "1", "--mode", "keyword")
    assert "aurora" in found.stdout and "**" not in found.stdout, found.stdout
    as_json = json.loads(run_cli(settings, "search", "aurora", "-k", "1", "--mode", "keyword", "--json").stdout)
    assert "**aurora**" in as_json["hits"][0]["snippet"]
    detail = run_cli(settings, "status", "aurora.md")
    events = detail.stdout.split("Recent events", 1)[1]
    assert "{" not in events and "'" not in events, events  # no Python dict
    doctor = run_cli(settings, "doctor", CHUNK_MAX_TOKENS="512")
    assert "chunks up to 512 cl100k tokens (CHUNK_MAX_TOKENS" in doctor.stdout, doctor.stdout
    assert "planner's estimate" in doctor.stdout and " ? " not in doctor.stdout
    home_row = next(line for line in doctor.stdout.splitlines() if "ingestflow_home" in line)
    assert "None" not in home_row and str(settings.home) in home_row
    invalid = run_cli(settings, "doctor", SERVICE_MODE="REAL")
    assert invalid.returncode == 2 and "OPENAI_API_KEY is required" in invalid.stderr, invalid.stderr
    assert "SERVICE_MODE=MOCK" in invalid.stderr and "read from" in invalid.stderr
    mode = run_cli(settings, "search", "aurora", "--mode", "semantic")  # the search's own rule (bounds.py)
    assert mode.returncode == 1 and "unknown_mode: Unknown search mode 'semantic'" in mode.stderr, mode.stderr
    assert "Value error" not in mode.stderr


def test_a_listing_cut_short_says_how_much_and_pages_on(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(55):
        (folder / f"note{i:02}.md").write_text(f"# Note {i}\n\nThe {i}th note.\n")
    assert run_cli(settings, "ingest", "--no-wait", str(folder)).returncode == 0
    first = run_cli(settings, "documents")
    assert first.returncode == 0 and "50 of 55 documents; the next page: ingestflow documents --limit 50 --cursor " \
        in first.stdout, first.stdout + first.stderr
    command = first.stdout.split("the next page: ")[1].split()
    rest = run_cli(settings, *command[1:])
    assert rest.stdout.count("note") == 5 and "5 of 55 documents" in rest.stdout and "next page" not in rest.stdout

    listed = json.loads(run_cli(settings, "documents", "--limit", "40", "--json").stdout)
    assert (len(listed["documents"]), listed["total"]) == (40, 55) and listed["next_cursor"]
    more = json.loads(run_cli(settings, "documents", "--limit", "40", "--cursor", listed["next_cursor"],
                              "--json").stdout)
    assert (len(more["documents"]), more["total"], more["next_cursor"]) == (15, 55, None)
    assert len({d["id"] for d in listed["documents"] + more["documents"]}) == 55
    bad = run_cli(settings, "documents", "--cursor", "not-a-cursor", "--json")
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"]["code"] == "invalid_cursor"

    (tmp_path / "policy.md").write_text("# Policy\n\nVersion one.\n")
    assert run_cli(settings, "ingest", str(tmp_path / "policy.md")).returncode == 0
    (tmp_path / "policy.md").write_text("# Policy\n\nVersion two.\n")
    assert run_cli(settings, "ingest", str(tmp_path / "policy.md")).returncode == 0
    older = json.loads(run_cli(settings, "documents", "--stage", "superseded", "--json").stdout)
    assert [(d["source_name"], d["version"]) for d in older["documents"]] == [("policy.md", 1)]
    assert older["total"] == 1


# What the everyday read commands must not import (issue 29: imports are most of their time).
NEVER_ON_READS = {"fastapi", "starlette", "uvicorn", "httpx", "openai", "opentelemetry", "prometheus_client", "mcp",
                  "structlog", "tiktoken", "torch", "sentence_transformers", "pypdfium2", "docx", "rich.progress"}
NOT_FOR_LISTINGS = {"numpy", "pgvector", "ingestflow.services.router", "ingestflow.services.mock"}


def test_everyday_commands_import_nothing_they_do_not_use(settings: Settings, tmp_path: Path) -> None:
    """status, documents and costs never build the services (no provider, no numpy);
    search and doctor (MOCK) build them, but no HTTP client, API framework, tracing,
    metrics or tokenizer. Not timed: what is imported is what regresses silently."""
    (tmp_path / "kites.md").write_text("# Kites\n\nBox kites fly best in steady winds of twenty knots.\n")
    assert run_cli(settings, "ingest", str(tmp_path / "kites.md")).returncode == 0
    for args, never in ((["status"], NEVER_ON_READS | NOT_FOR_LISTINGS),
                        (["documents"], NEVER_ON_READS | NOT_FOR_LISTINGS),
                        (["costs"], NEVER_ON_READS | NOT_FOR_LISTINGS),
                        (["search", "steady winds"], NEVER_ON_READS),
                        (["doctor"], NEVER_ON_READS)):
        out, modules = run_cli_imports(settings, *args)
        assert "kites.md" in out or args[0] in ("costs", "doctor"), out
        loaded = modules | {m.split(".")[0] for m in modules}
        assert not loaded & never, (args, sorted(loaded & never))
