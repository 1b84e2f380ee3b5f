"""The command line as a user runs it: real processes, real database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support import SAMPLES, run_cli, settings_env

from ingestflow.config import Settings


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
    found = run_cli(settings, "search", "steady winds for box kites", "-k", "1")
    assert "good.md" in found.stdout and "twenty knots" in found.stdout
    status = run_cli(settings, "status", "bad.pdf")
    assert status.returncode == 1  # not found by bare name: source names keep their folder
    status = run_cli(settings, "status", str(inbox / "bad.pdf"))
    assert "corrupt_file" in status.stdout and "failed" in status.stdout
    retried = run_cli(settings, "retry", str(inbox / "bad.pdf"))
    assert "queued" in retried.stdout
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


def test_fake_providers_command_serves_both(settings: Settings) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ingestflow", "fake-providers", "--openai-port", "18081",
                             "--llamaparse-port", "18082"], env=settings_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request("http://127.0.0.1:18081/v1/models",
                                                 headers={"Authorization": "Bearer sk-fake"})
                models = json.load(urllib.request.urlopen(request, timeout=2))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert any(m["id"] == "text-embedding-3-small" for m in models["data"])
        request = urllib.request.Request("http://127.0.0.1:18082/api/v1/parsing/supported_file_extensions",
                                         headers={"Authorization": "Bearer sk-fake"})
        assert ".pdf" in json.load(urllib.request.urlopen(request, timeout=2))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert SAMPLES.exists()
