"""Helpers for tests that run worker processes against the fake providers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ingestflow.config import ServiceMode, Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from support import sql
from support import submit as submit_paths

KEY = "sk-e2e-SECRET-value-9f8e7d6c5b4a"


def real(settings: Settings, fake: FakeOpenAI, mode: ServiceMode = ServiceMode.REAL, **extra: object) -> Settings:
    values = dict(service_mode=mode, openai_api_key=KEY, openai_api_url=fake.url, openai_timeout_seconds=1.5,
                  call_retry_base_seconds=0.05, call_retry_cap_seconds=0.3, breaker_cooldown_seconds=1.0,
                  repair_interval_seconds=0.5, chunk_max_tokens=64, chunk_overlap_tokens=0)
    values.update(extra)
    return Settings(**{**settings.model_dump(), **values})


def worker_env(s: Settings) -> dict[str, str]:
    env = {
        "SERVICE_MODE": s.service_mode.value, "OPENAI_API_KEY": KEY, "OPENAI_API_URL": s.openai_api_url or "",
        "OPENAI_TIMEOUT_SECONDS": str(s.openai_timeout_seconds),
        "CALL_RETRY_BASE_SECONDS": str(s.call_retry_base_seconds), "CALL_RETRY_CAP_SECONDS": str(s.call_retry_cap_seconds),
        "BREAKER_COOLDOWN_SECONDS": str(s.breaker_cooldown_seconds),
        "REPAIR_INTERVAL_SECONDS": str(s.repair_interval_seconds),
    }
    for name in ("daily_cost_limit_openai", "hourly_rate_limit_openai", "rate_limit_tpm_openai"):
        if getattr(s, name) is not None:
            env[name.upper()] = str(getattr(s, name))
    return env


def write_docs(folder: Path, n: int, sentences: int = 12) -> None:
    folder.mkdir()
    topics = ["volcanoes", "glaciers", "honey bees", "tides", "comets", "coral", "deserts", "forests"]
    for i in range(n):
        topic = topics[i % len(topics)]
        (folder / f"doc{i:02}.md").write_text(f"# Notes on {topic} {i}\n\n" + " ".join(
            f"Fact {j} of document {i} is about {topic} and their behaviour." for j in range(sentences)))


def submit(s: Settings, folder: Path) -> list:
    return submit_paths(s, [folder])


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stages(s: Settings) -> dict[str, int]:
    return dict(sql(s, "SELECT stage, count(*) FROM documents GROUP BY stage"))


def spaces(s: Settings) -> dict[str, int]:
    return dict(sql(s, "SELECT sp.provider, count(e.chunk_id) FROM embedding_spaces sp"
                       " LEFT JOIN embeddings e ON e.space_id = sp.id GROUP BY sp.provider"))


def bad_vectors(s: Settings) -> int:
    return sql(s, "SELECT count(*) FROM embeddings WHERE NOT (l2_norm(embedding) BETWEEN 0.999 AND 1.001)"
                  " OR vector_dims(embedding) <> 1536")[0][0]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
