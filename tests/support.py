"""Helpers for tests that drive the real pipeline, database and worker processes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from ingestflow.config import Settings

if TYPE_CHECKING:
    from ingestflow.operations.documents import Submitted

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
NEVER_BINARY = 1_000_000  # an HNSW_BINARY_MIN_DIMENSIONS no space reaches: halfvec indexes only


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a child process that reproduces ``settings``."""
    prefixes = ("SERVICE_", "EMBEDDINGS_", "PARSER_", "RERANK_", "OPENAI_", "LLAMA", "COHERE_", "CO_API",
                "DAILY_", "HOURLY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    assert settings.database_url is not None
    env.update(
        DATABASE_URL=settings.database_url.get_secret_value(),
        INGESTFLOW_HOME=str(settings.ingestflow_home),
        POLL_INTERVAL_SECONDS=str(settings.poll_interval_seconds),
        LEASE_SECONDS=str(settings.lease_seconds),
        RETRY_BASE_SECONDS=str(settings.retry_base_seconds),
        RETRY_MAX_SECONDS=str(settings.retry_max_seconds),
        EMBEDDING_BATCH_SIZE=str(settings.embedding_batch_size),
        PYTHONUNBUFFERED="1",
        COLUMNS="250",  # Rich tables unwrapped in captured output
    )
    for name in ("chunk_max_tokens", "chunk_overlap_tokens"):  # unset: the model's own
        env.pop(name.upper(), None)
        if getattr(settings, name) is not None:
            env[name.upper()] = str(getattr(settings, name))
    env.update(extra)
    return env


def start_worker(settings: Settings, log_path: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """A real ``ingestflow worker`` process; its output goes to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ingestflow", "worker", *args],
            env=settings_env(settings, **env), stdout=log, stderr=subprocess.STDOUT,
        )


def run_cli(settings: Settings, *args: str, cwd: Path | None = None, stdin: str | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
    """``ingestflow *args`` in a child process; ``stdin``: what a user types (nothing: EOF)."""
    return subprocess.run(
        [sys.executable, "-m", "ingestflow", *args], env=settings_env(settings, **env),
        capture_output=True, text=True, timeout=240, cwd=cwd, input=stdin or "",
    )


def imported(importtime: str) -> set[str]:
    """The modules a process imported, from its ``python -X importtime`` stderr."""
    return set(re.findall(r"^import time:\s+-?\d+ \|\s+\d+ \| *(\S+)$", importtime, re.MULTILINE))


def run_cli_imports(settings: Settings, *args: str, cwd: Path | None = None) -> tuple[str, set[str]]:
    """``ingestflow *args`` in a child process under ``-X importtime``: (stdout, the modules
    it imported); fails on a non-zero exit."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ingestflow", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=240, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout, imported(done.stderr)


def sql(settings: Settings, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def ingest(settings: Settings, paths: Iterable[str | Path], *, tenant: str = "default",
           concurrency: int = 2) -> tuple[list[Submitted], int]:
    """Submit files and run an in-process worker until they are done; (submitted, jobs run)."""
    from ingestflow.operations.documents import submit_paths
    from ingestflow.runtime import open_runtime

    async def main() -> tuple[list[Submitted], int]:
        async with open_runtime(settings) as rt:
            submitted = await submit_paths(rt, paths, tenant)
            worker = rt.drain([s.registration.document_id for s in submitted if s.registration], concurrency)
            await worker.run()
            return submitted, worker.processed

    return asyncio.run(main())


def submit(settings: Settings, paths: Iterable[str | Path], *, tenant: str = "default") -> list[Submitted]:
    from ingestflow.operations.documents import submit_paths
    from ingestflow.runtime import open_runtime

    async def main() -> list[Submitted]:
        async with open_runtime(settings) as rt:
            return await submit_paths(rt, paths, tenant)

    return asyncio.run(main())


def search(settings: Settings, text: str, *, k: int = 5, tenant: str = "default", mode: str | None = None,
           **filters: Any) -> list[Any]:
    return find(settings, text, k=k, tenant=tenant, mode=mode, **filters).hits


def find(settings: Settings, text: str, *, k: int = 5, tenant: str = "default", mode: str | None = None,
         min_score: float | None = None, **filters: Any) -> Any:
    """The whole SearchResult of one search through the operations layer."""
    from ingestflow.operations.bounds import Filters
    from ingestflow.operations.search import search as run_search
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(settings) as rt:
            return await run_search(rt, tenant, text, k=k, mode=mode, filters=Filters(**filters),
                                    min_score=min_score)

    return asyncio.run(main())


def stages(settings: Settings) -> dict[str, str]:
    return dict(sql(settings, "SELECT source_name, stage FROM documents WHERE superseded_at IS NULL"))


def event_details(settings: Settings, document: uuid.UUID, kind: str, stage: str) -> list[dict[str, Any]]:
    rows = sql(settings, "SELECT detail FROM events WHERE document_id = %s AND kind = %s AND stage = %s"
               " ORDER BY id", (document, kind, stage))
    return [r[0] for r in rows]


def force_stage(settings: Settings, stage: str, where: str, params: tuple[Any, ...] = (), **fields: str) -> None:
    """Put documents in a stage no legal move leads to from where they are (test set-up
    only: the lifecycle trigger is bypassed for this one statement)."""
    sets = ", ".join(["stage = %s", *(f"{name} = %s" for name in fields)])
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute("ALTER TABLE documents DISABLE TRIGGER documents_stage_transition")
        conn.execute(f"UPDATE documents SET {sets} WHERE {where}", (stage, *fields.values(), *params))
        conn.execute("ALTER TABLE documents ENABLE TRIGGER documents_stage_transition")
