"""``ingestflow ingest --server URL``: upload files to an API server and follow them.

The server's workers do the processing; this client only uploads (the server detects
each type and hashes the bytes itself) and polls each document until its stage is
terminal (complete, failed or superseded) or it is deleted, so it needs nothing but the
URL and an API key: no database, no provider keys.
Every answer is read as the remote Python client reads it (``client.answer``): an error
answer keeps the server's code and message, and one of the wrong shape is
``invalid_response``. Errors go through ``common.fail`` as every command's do (JSON on
stderr with --json).
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

from ingestflow.cli.common import agree_to_sync, console, fail
from ingestflow.cli.render import print_json, tail
from ingestflow.client import IngestflowError, answer, followed
from ingestflow.config import find_home
from ingestflow.lifecycle import TERMINAL, Stage
from ingestflow.operations.errors import Refused
from ingestflow.operations.naming import check_sync, project_of, sources, synced_names

REFUSED = "refused"  # the upload itself was refused: not a stage, nothing was stored (as `ingest` here says)
DELETED = "deleted"  # deleted while followed: not a stage either
DONE = TERMINAL | {REFUSED, DELETED}
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
PAGE_LIMIT = 500  # the API's largest page of documents


@dataclass
class Tracked:
    name: str
    id: str | None = None
    version: int | None = None
    duplicate: bool = False
    stage: str = "uploading"
    detail: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None  # upload refused: the server's error code and message


def _text(error: dict[str, str]) -> str:
    return f"{error['code']}: {error['message']}"


def _upload(client: httpx.Client, path: Path, name: str, batch: bool) -> Tracked:
    item = Tracked(name)
    with path.open("rb") as f:
        response = client.post("/v1/documents", files={"file": (name, f, "application/octet-stream")},
                               params={"batch": "true"} if batch else None)
    try:
        item.id, item.version, item.duplicate, item.stage = answer(
            response, lambda r: (str(r["id"]), int(r["version"]), bool(r["duplicate"]), str(r["stage"])))
    except IngestflowError as exc:
        if exc.code == "invalid_response":
            raise  # not an ingestflow server's answer: no other file fares better
        item.stage, item.error = REFUSED, {"code": exc.code, "message": exc.message}
    return item


def _follow(client: httpx.Client, items: list[Tracked], poll_interval: float, timeout: float | None,
            show: bool) -> None:
    pending = [i for i in items if i.id is not None]
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not show) as progress:
        task = progress.add_task("processed", total=len(pending))
        while True:
            for item in pending:
                if item.stage in DONE:
                    continue
                response = client.get(f"/v1/documents/{item.id}")
                if response.status_code == 404:
                    item.stage, item.error = DELETED, {"code": "not_found", "message": "The document was deleted."}
                    continue
                item.detail = answer(response, followed)
                item.stage = item.detail["stage"]
            done = sum(i.stage in DONE for i in pending)
            progress.update(task, completed=done)
            if done == len(pending) or (deadline is not None and time.monotonic() > deadline):
                return
            time.sleep(poll_interval)


def _document_error(item: Tracked) -> dict[str, str] | None:
    """Why the upload was refused or the document failed, as the server said it."""
    failed = item.detail.get("error")
    return item.error or ({"code": failed["code"], "message": failed["message"]} if failed else None)


def _sync(client: httpx.Client, folders: list[str], prefix: str, present: set[str], *, yes: bool,
          as_json: bool) -> dict[str, list[str]]:
    """Delete the folders' documents whose files are gone, once the user agrees."""
    listed: dict[str, str] = {}  # source name -> an id: a delete takes every version of the source
    cursor = None
    while True:
        response = client.get("/v1/documents", params={"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})})
        items, cursor = answer(response, lambda r: ([(str(d["source_name"]), str(d["id"])) for d in r["items"]],
                                                    r["next_cursor"]))
        listed.update(items)
        if cursor is None:
            break
    unders = synced_names(folders, prefix=prefix, project=project_of(find_home().path))
    names = [n for n in listed if n.startswith(unders) and n not in present]
    agreed = agree_to_sync(folders, names, yes=yes, as_json=as_json)
    for name in names if agreed else []:
        response = client.delete(f"/v1/documents/{listed[name]}")
        if response.status_code != 404:  # deleted meanwhile is deleted
            answer(response, lambda r: r)
    return {"stale": names, "deleted": names if agreed else []}


def _json_summary(items: list[Tracked], synced: dict[str, list[str]] | None) -> None:
    """The shape of ``ingest --json`` run here (cli/ingesting.py)."""
    print_json({"documents": [
        {"source_name": i.name, "id": i.id, "version": i.version, "stage": i.stage,
         "chunks": i.detail.get("progress", {}).get("chunks", 0), "cost_usd": i.detail.get("cost_usd", 0.0),
         "error": _document_error(i)} for i in items], **({"sync": synced} if synced is not None else {})})


def _summary(items: list[Tracked]) -> None:
    """Names and messages come from users and the server: escaped, never Rich markup."""
    table = Table(title="Ingest summary")
    for col in ("document", "v", "stage", "chunks", "cost $", "note"):
        table.add_column(col, justify="right" if col in ("v", "chunks", "cost $") else "left")
    for i in items:
        d = i.detail
        error = _document_error(i)
        note = _text(error) if error else ""
        if not note and i.stage not in DONE:
            note = f"still {i.stage}"
        elif not note and i.stage == Stage.SUPERSEDED:
            note = "a newer version of this source replaced it"
        elif not note and i.duplicate:
            note = "unchanged"
        note = escape(note)
        table.add_row(escape(tail(i.name)), str(i.version or "-"), i.stage,
                      str(d.get("progress", {}).get("chunks", "-")), f"{d.get('cost_usd', 0.0):.6f}",
                      f"[red]{note}[/red]" if i.stage in (Stage.FAILED, REFUSED, DELETED) else note)
    console.print(table)
    counts = {s: sum(i.stage == s for i in items)
              for s in (Stage.COMPLETE, Stage.FAILED, REFUSED, Stage.SUPERSEDED, DELETED)}
    shown = [f"{s}: {n}" for s, n in counts.items() if n or s in (Stage.COMPLETE, Stage.FAILED, REFUSED)]
    console.print("  ".join([f"documents: {len(items)}", *shown]))


def ingest_remote(server: str, api_key: str, paths: list[str], *, poll_interval: float = 0.5,
                  timeout: float | None = None, wait: bool = True, prefix: str = "",
                  source_name: str | None = None, batch: bool = False, as_json: bool = False, sync: bool = False,
                  yes: bool = False) -> int:
    """Upload, follow until every document's stage is terminal (unless ``wait`` is false,
    or ``batch``: the Batch API answers within a day), print a summary (with ``as_json``,
    one JSON document and no progress).

    Exit codes: 0 all complete (or all accepted, without waiting), 1 some failed, were
    rejected, superseded or deleted, or did not finish within ``timeout``, 2 the server
    could not be used (unreachable, bad key, bad path). ``sync``: then delete the
    documents of these folders whose files are gone, as ``ingest --sync`` does here.
    """
    try:
        if sync:
            check_sync(paths, source_name)
        files = list(sources(paths, prefix=prefix, name=source_name, project=project_of(find_home().path)))
    except FileNotFoundError as exc:
        fail(str(exc), 2, error="no_such_path")
    except Refused as exc:
        fail(exc.message if as_json else str(exc), 2, error=exc.code)
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=TIMEOUT) as client:
            items = []
            for path, name in files:
                item = _upload(client, path, name, batch)
                if item.error and item.error["code"] == "unauthorized":
                    fail(f"the server refused the API key ({_text(item.error)})", 2, error="unauthorized")
                items.append(item)
            new = sum(1 for i in items if i.id and not i.duplicate)
            if not as_json:
                console.print(f"{len(items)} files uploaded to {server}: {new} new, "
                              f"{sum(i.duplicate for i in items)} unchanged, "
                              f"{sum(i.error is not None for i in items)} refused")
            if wait and not batch:
                _follow(client, items, poll_interval, timeout, show=not as_json)
            if not as_json:
                _summary(items)
            synced = _sync(client, paths, prefix, {name for _, name in files}, yes=yes, as_json=as_json) \
                if sync else None
    except httpx.HTTPError as exc:
        fail(f"cannot use the server at {server}: {exc}", 2, error="server_unavailable")
    except IngestflowError as exc:  # refused or unreadable: the server's code, or invalid_response
        fail(f"cannot use the server at {server}: {exc}", 2, error=exc.code)
    if as_json:
        _json_summary(items, synced)
    if not wait or batch:
        return 0 if all(i.error is None for i in items) else 1
    return 0 if all(i.stage == Stage.COMPLETE for i in items) else 1
