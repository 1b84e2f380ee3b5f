"""``ingestflow ingest`` on this machine: register the files, then run a worker in this
process with one progress bar per stage until none of them has work due."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from ingestflow.cli import render
from ingestflow.cli.common import console, fail, run, warn
from ingestflow.lifecycle import RANK, Stage
from ingestflow.operations import documents, workers
from ingestflow.operations.documents import Submitted
from ingestflow.runtime import Runtime, worker_pool_size
from ingestflow.store.batches import AWAITING_BATCH

PROGRESS_STAGES = ((Stage.PARSED, "parse"), (Stage.CHUNKED, "chunk"), (Stage.EMBEDDED, "embed"),
                   (Stage.COMPLETE, "store"))


def ingest_here(paths: Sequence[str], *, tenant: str, wait: bool, concurrency: int, prefix: str,
                source_name: str | None, batch: bool = False, as_json: bool = False) -> int:
    """Exit code: 0 all complete (or all queued, without waiting; or, ``batch``, waiting for
    their batch); 1 a file was refused or a document failed or did not complete; 2 a path
    does not exist. ``as_json``: no progress, one JSON summary on stdout."""
    async def body(rt: Runtime) -> int:
        try:
            submitted = await documents.submit_paths(rt, paths, tenant, prefix=prefix, name=source_name,
                                                     batch_api=batch)
        except FileNotFoundError as exc:
            fail(str(exc), 2, error="no_such_path")
        registered = [s.registration for s in submitted if s.registration is not None]
        refused = [s for s in submitted if s.refused is not None]
        ids = [r.document_id for r in registered]
        new = sum(not r.duplicate for r in registered)
        if not as_json:
            console.print(f"{len(submitted)} files: {new} new, {len(registered) - new} unchanged, "
                          f"{len(refused)} refused")
        if wait and await documents.has_work(rt, ids):
            if as_json:  # no progress to draw: stdout holds only the summary
                await rt.drain(ids, concurrency).run()
            else:
                await work_with_progress(rt, tenant, ids, concurrency)
        rows = await documents.progress(rt, tenant, ids)
        warning = None if wait else await workers.warning_for(rt, ids)
        batched = [r for r in rows if (r["deferred_reason"] or "").startswith(AWAITING_BATCH)]
        if as_json:
            render.print_json({"documents": [_summary(r) for r in rows] + [_refused(s) for s in refused],
                               "warning": warning})
        else:
            render.ingest_summary(rows, refused)
            warn(warning)
        if batched and not as_json:
            console.print(f"{len(batched)} documents wait for the OpenAI Batch API (within 24 hours); "
                          "a running `ingestflow worker` stores their vectors when it answers")
        unfinished = wait and any(r["stage"] != Stage.COMPLETE and r not in batched for r in rows)
        return 1 if refused or unfinished or any(r["stage"] == Stage.FAILED for r in rows) else 0

    return run(body, pool_size=worker_pool_size(concurrency), quiet=wait)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """One document as ``ingest --json`` (here or with --server) reports it."""
    failed = row["stage"] == Stage.FAILED
    return {"source_name": row["source_name"], "id": row["id"], "version": row["version"], "stage": row["stage"],
            "chunks": row["chunks"], "cost_usd": float(row["cost_usd"]),
            "error": {"code": row["error_code"], "message": row["error_message"]} if failed else None}


def _refused(s: Submitted) -> dict[str, Any]:
    assert s.refused is not None
    return {"source_name": s.name, "id": None, "version": None, "stage": "refused", "chunks": 0, "cost_usd": 0.0,
            "error": {"code": s.refused.code, "message": s.refused.message}}


async def work_with_progress(rt: Runtime, tenant: str, ids: list[uuid.UUID], concurrency: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    worker = rt.drain(ids, concurrency)
    with Progress(
        TextColumn("{task.description:>6}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:
        tasks = {stage: progress.add_task(label, total=len(ids)) for stage, label in PROGRESS_STAGES}
        work = asyncio.create_task(worker.run())
        redraw = 0.2 if len(ids) <= 2000 else 1.0  # a large run is counted less often
        while True:
            tally = await documents.stage_tally(rt, tenant, ids)
            for stage, task in tasks.items():
                done = sum(n for s, n in tally.items() if RANK.get(s, -1) >= RANK[stage] or s == Stage.FAILED)
                progress.update(task, completed=done)
            if work.done():
                break
            await asyncio.wait({work}, timeout=redraw)  # redraw, or go on at once when done
        await work

