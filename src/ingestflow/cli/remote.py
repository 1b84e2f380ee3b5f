"""``ingestflow ingest --server URL``: upload files to an API server and follow them.

The server's workers do the processing; this client only uploads (the server detects
each type and hashes the bytes itself) and polls each document until it is complete or
failed, so it needs nothing but the URL and an API key: no database, no provider keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ingestflow.cli.common import console
from ingestflow.cli.render import tail
from ingestflow.lifecycle import Stage
from ingestflow.operations.errors import Refused
from ingestflow.operations.naming import sources

DONE = (Stage.COMPLETE, Stage.FAILED)
REJECTED = "rejected"  # the upload itself was refused: not a stage, nothing was stored
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@dataclass
class Tracked:
    name: str
    id: str | None = None
    version: int | None = None
    duplicate: bool = False
    stage: str = "uploading"
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # upload refused: the server's error code and message


def _error_text(response: httpx.Response) -> str:
    try:
        err = response.json()["error"]
        return f"{err['code']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _upload(client: httpx.Client, path: Path, name: str, batch: bool) -> Tracked:
    item = Tracked(name)
    with path.open("rb") as f:
        response = client.post("/v1/documents", files={"file": (name, f, "application/octet-stream")},
                               params={"batch": "true"} if batch else None)
    if response.status_code in (200, 201):
        body = response.json()
        item.id, item.version, item.duplicate, item.stage = body["id"], body["version"], body["duplicate"], body["stage"]
    else:
        item.stage, item.error = REJECTED, _error_text(response)
    return item


def _follow(client: httpx.Client, items: list[Tracked], poll_interval: float, timeout: float | None) -> None:
    pending = [i for i in items if i.id is not None]
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("processed", total=len(pending))
        while True:
            for item in pending:
                if item.stage in DONE:
                    continue
                response = client.get(f"/v1/documents/{item.id}")
                if response.status_code == 404:
                    item.stage, item.error = Stage.FAILED, "not_found: the document was deleted"
                    continue
                response.raise_for_status()
                item.detail = response.json()
                item.stage = item.detail["stage"]
            done = sum(i.stage in DONE for i in pending)
            progress.update(task, completed=done)
            if done == len(pending) or (deadline is not None and time.monotonic() > deadline):
                return
            time.sleep(poll_interval)


def _summary(items: list[Tracked]) -> None:
    """Names and messages come from users and the server: escaped, never Rich markup."""
    table = Table(title="Ingest summary")
    for col in ("document", "v", "stage", "chunks", "cost $", "note"):
        table.add_column(col, justify="right" if col in ("v", "chunks", "cost $") else "left")
    for i in items:
        d = i.detail
        note = i.error or ""
        if not note and d.get("error"):
            note = f"{d['error']['code']}: {d['error']['message']}"
        elif not note and i.stage not in DONE:
            note = f"still {i.stage}"
        elif not note and i.duplicate:
            note = "unchanged"
        note = escape(note)
        table.add_row(escape(tail(i.name)), str(i.version or "-"), i.stage,
                      str(d.get("progress", {}).get("chunks", "-")), f"{d.get('cost_usd', 0.0):.6f}",
                      f"[red]{note}[/red]" if i.stage in (Stage.FAILED, REJECTED) else note)
    console.print(table)
    counts = {s: sum(i.stage == s for i in items) for s in (Stage.COMPLETE, Stage.FAILED, REJECTED)}
    console.print(f"documents: {len(items)}  complete: {counts['complete']}  failed: {counts['failed']}  "
                  f"rejected: {counts['rejected']}")


def ingest_remote(server: str, api_key: str, paths: list[str], *, poll_interval: float = 0.5,
                  timeout: float | None = None, wait: bool = True, prefix: str = "",
                  source_name: str | None = None, batch: bool = False) -> int:
    """Upload, follow until every document is complete or failed (unless ``wait`` is
    false, or ``batch``: the Batch API answers within a day), print a summary.

    Exit codes: 0 all complete (or all accepted, without waiting), 1 some failed, were
    rejected or did not finish within ``timeout``, 2 the server could not be used
    (unreachable, bad key, bad path).
    """
    try:
        files = list(sources(paths, prefix=prefix, name=source_name))
    except (FileNotFoundError, Refused) as exc:
        console.print(str(exc), style="red", markup=False)
        return 2
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=TIMEOUT) as client:
            items = []
            for path, name in files:
                item = _upload(client, path, name, batch)
                if item.error and item.error.startswith("unauthorized"):
                    console.print(f"the server refused the API key ({item.error})", style="red", markup=False)
                    return 2
                items.append(item)
            new = sum(1 for i in items if i.id and not i.duplicate)
            console.print(f"{len(items)} files uploaded to {server}: {new} new, "
                          f"{sum(i.duplicate for i in items)} unchanged, {sum(i.error is not None for i in items)} rejected")
            if wait and not batch:
                _follow(client, items, poll_interval, timeout)
    except httpx.HTTPError as exc:
        console.print(f"cannot use the server at {server}: {exc}", style="red", markup=False)
        return 2
    _summary(items)
    if not wait or batch:
        return 0 if all(i.error is None for i in items) else 1
    return 0 if all(i.stage == Stage.COMPLETE for i in items) else 1
