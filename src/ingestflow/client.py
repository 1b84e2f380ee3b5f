"""The Python API: ``ingestflow.Client`` (sync) and ``ingestflow.AsyncClient``.

Both open the database the CLI opens (settings from the environment and ``.env``; the
embedded PostgreSQL unless DATABASE_URL is set) and call the operations layer, as the CLI
and the HTTP API do; or, given ``url`` and ``api_key``, they speak to an ingestflow API
server over HTTP. Either way the methods and the result types are the same, and every
refusal is an :class:`IngestflowError` whose ``code`` is the API's error code.

    with ingestflow.Client() as client:
        client.ingest("docs/")
        for hit in client.search("how do I reset my password?").hits:
            print(hit.source_name, hit.pages, hit.snippet)
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from ingestflow.config import ConfigError, Settings, find_home, load_settings
from ingestflow.lifecycle import TERMINAL, Stage
from ingestflow.operations.bounds import Filters as SearchFilters
from ingestflow.operations.bounds import check_arguments
from ingestflow.operations.costs import ServiceSpend
from ingestflow.operations.errors import Refused
from ingestflow.operations.naming import check_sync, check_tenant, project_of, sources, synced_names
from ingestflow.operations.search import SearchHit, SearchResult
from ingestflow.redaction import scrub
from ingestflow.store import embedded

if TYPE_CHECKING:
    import httpx

    from ingestflow.runtime import Runtime

__all__ = ["AsyncClient", "Client", "Costs", "DaySpend", "Document", "DocumentStatus", "Ingested",
           "IngestflowError", "Queue", "SearchFilters", "SearchHit", "SearchResult", "ServiceSpend", "Status"]

T = TypeVar("T")
REFUSED = "refused"  # an Ingested's stage when nothing was stored
DELETED = "deleted"  # an Ingested's stage when the document was deleted while waited for
COST_DAYS = 30  # GET /v1/costs's default history
POLL_SECONDS = 0.5
PAGE_LIMIT = 500  # the API's largest page of documents


class IngestflowError(Exception):
    """An operation was refused (nothing changed): ``code`` is the HTTP API's error code
    (``not_found``, ``not_failed``, ``unknown_mode``, ``unauthorized``...), ``message`` is
    for people; ``retry_after`` (seconds) when trying again later can succeed."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Document:
    """A document (the current version of a source unless ``is_current`` is false)."""

    id: uuid.UUID
    source_name: str
    version: int
    mime: str
    size_bytes: int
    stage: str
    is_current: bool
    degraded: bool
    error_code: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentStatus(Document):
    """One document in detail: its job, progress, cost and, when failed, why."""

    parser: str | None
    job_state: str | None
    attempts: int | None
    deferred_reason: str | None
    next_attempt_at: datetime | None
    chunks: int
    chunks_embedded: int
    tokens: int
    cost_usd: float
    error_stage: str | None  # these two only for a failed document
    error_message: str | None


@dataclass(frozen=True)
class Queue:
    runnable: int
    waiting: int
    running: int


@dataclass(frozen=True)
class Status:
    """The tenant's documents by stage, its queue, and the embedding spaces search uses."""

    stages: dict[str, int]
    queue: Queue
    search_space: str | None  # None before anything is embedded
    configured_space: str
    switching: bool  # a model change is under way (see `ingestflow reembed`)


@dataclass(frozen=True)
class DaySpend:
    day: date
    service: str
    cost_usd: float
    units: int
    requests: int


@dataclass(frozen=True)
class Costs:
    """The tenant's spend (UTC windows) next to the limits, which all tenants share."""

    services: list[ServiceSpend]
    today_usd: float
    daily_limit_total_usd: float | None
    by_day: list[DaySpend]  # the last 30 days


@dataclass(frozen=True)
class Ingested:
    """One file's outcome. ``stage`` is where the document is now (after a wait, a terminal
    one: ``complete``, ``failed``, or ``superseded`` when a newer version of its source
    replaced it), ``"refused"`` when nothing was stored, or ``"deleted"`` when it was
    deleted during the wait; the error fields say why it was refused or failed."""

    name: str
    document_id: uuid.UUID | None
    version: int | None
    duplicate: bool
    stage: str
    error_code: str | None = None
    error_message: str | None = None


Source = str | Path | bytes | Sequence[str | Path]


@dataclass(frozen=True)
class _Sources:
    """What ``ingest`` was given: files and folders, or one upload's bytes."""

    paths: list[str | Path]
    data: bytes | None
    name: str | None
    prefix: str
    sync: bool  # then delete the documents of these folders whose files are gone

    @classmethod
    def of(cls, source: Source, name: str | None, prefix: str, sync: bool) -> _Sources:
        if isinstance(source, bytes):
            if not name:
                raise IngestflowError("invalid_name", "Bytes need a name: ingest(data, name='report.pdf').")
            if sync:
                raise IngestflowError("invalid_sync", "sync=True keeps folders in sync; bytes have none.")
            return cls([], source, name, prefix, sync)
        given = cls([source] if isinstance(source, str | Path) else list(source), None, name, prefix, sync)
        if sync:
            with _public_errors():
                check_sync(given.paths, name)
        return given

    def files(self) -> list[tuple[str, Path | bytes]]:
        """(source name, bytes or file), named as the CLI names them (operations/naming.py),
        with the project folder of the home found from here."""
        if self.data is not None:
            assert self.name is not None
            return [(self.prefix + self.name, self.data)]
        return [(found, path) for path, found in sources(self.paths, prefix=self.prefix, name=self.name,
                                                          project=_project())]

    def stale(self, listed: Sequence[Document], present: set[str]) -> list[Document]:
        """Of the documents ``listed``, those named as a file of these folders would be
        whose file is gone (not in ``present``): what a sync deletes."""
        unders = synced_names(self.paths, prefix=self.prefix, project=_project())
        return [d for d in listed if d.source_name.startswith(unders) and d.source_name not in present]


def _project() -> Path | None:
    return project_of(find_home().path)


@contextmanager
def _public_errors() -> Iterator[None]:
    """What the operations and the local database refuse, as the one public exception,
    with the codes the API and the CLI's --json use."""
    try:
        yield
    except Refused as exc:
        raise IngestflowError(exc.code, exc.message, retry_after=exc.retry_after) from None
    except ConfigError as exc:
        raise IngestflowError("invalid_configuration", str(exc)) from None
    except embedded.EmbeddedServerUnusable as exc:
        raise IngestflowError("database_unavailable", str(exc)) from None


def _record(cls: type[T], data: dict[str, Any], **values: Any) -> T:
    """``cls`` from the fields of ``data`` it has (``values`` win)."""
    return cls(**{f.name: values.get(f.name, data.get(f.name)) for f in fields(cls)})  # type: ignore[arg-type]


class _Backend(Protocol):
    """Where the work is done: this process (the operations layer) or an API server."""

    async def ingest(self, given: _Sources, tenant: str | None, *, wait: bool, batch_api: bool,
                     concurrency: int, timeout: float | None) -> list[Ingested]: ...
    async def search(self, query: str, k: int, mode: str | None, filters: SearchFilters,
                     min_score: float | None, tenant: str | None) -> SearchResult: ...
    async def status(self, tenant: str | None) -> Status: ...
    async def document(self, ref: str | uuid.UUID | Document, tenant: str | None) -> DocumentStatus: ...
    async def documents(self, stage: str | None, limit: int, tenant: str | None) -> list[Document]: ...
    async def delete(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None: ...
    async def retry(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None: ...
    async def costs(self, tenant: str | None) -> Costs: ...


class _Local:
    """The operations layer on the configured database, as the CLI uses it."""

    def __init__(self, rt: Runtime, tenant: str) -> None:
        self.rt = rt
        self.tenant = tenant

    def _tenant(self, tenant: str | None) -> str:
        return self.tenant if tenant is None else check_tenant(tenant)

    async def _id(self, ref: str | uuid.UUID | Document, tenant: str) -> uuid.UUID:
        from ingestflow.operations import documents

        if isinstance(ref, Document):
            return ref.id
        return (await documents.find(self.rt, tenant, str(ref)))["id"]

    async def ingest(self, given: _Sources, tenant: str | None, *, wait: bool, batch_api: bool,
                     concurrency: int, timeout: float | None) -> list[Ingested]:
        from ingestflow.operations import documents

        tenant = self._tenant(tenant)
        outcomes: list[Ingested] = []
        if given.data is not None:
            [(name, _)] = given.files()
            try:
                reg = await documents.register(self.rt, tenant, name, given.data, batch_api=batch_api)
                outcomes.append(Ingested(name, reg.document_id, reg.version, reg.duplicate, Stage.QUEUED))
            except Refused as exc:  # an outcome, as a refused file among paths is
                outcomes.append(_refused(name, exc))
        else:  # as `ingestflow ingest` registers them: many files per transaction
            for s in await documents.submit_paths(self.rt, given.paths, tenant, prefix=given.prefix,
                                                  name=given.name, batch_api=batch_api):
                outcomes.append(_refused(s.name, s.refused) if s.registration is None else
                                Ingested(s.name, s.registration.document_id, s.registration.version,
                                         s.registration.duplicate, Stage.QUEUED))
        ids = [o.document_id for o in outcomes if o.document_id is not None]
        if wait and not batch_api and await documents.has_work(self.rt, ids):
            worker = self.rt.drain(ids, concurrency)
            work = asyncio.ensure_future(worker.run())
            if not (await asyncio.wait({work}, timeout=timeout))[0]:
                worker.request_stop()  # releases its jobs, as on SIGTERM; the stages say what is unfinished
            await work
        rows = {r["id"]: r for r in await documents.progress(self.rt, tenant, ids)}
        result = [o if o.document_id is None else
                  _deleted(o) if o.document_id not in rows else
                  Ingested(o.name, o.document_id, o.version, o.duplicate, rows[o.document_id]["stage"],
                           *_failure(rows[o.document_id]))
                  for o in outcomes]
        if given.sync:
            for g in await documents.stale(self.rt, tenant, given.paths, prefix=given.prefix,
                                           present={o.name for o in outcomes}):
                await documents.delete(self.rt, tenant, g["id"])
                result.append(Ingested(g["source_name"], g["id"], g["version"], False, DELETED))
        return result

    async def search(self, query: str, k: int, mode: str | None, filters: SearchFilters,
                     min_score: float | None, tenant: str | None) -> SearchResult:
        from ingestflow.operations.search import search

        return await search(self.rt, self._tenant(tenant), query, k=k, mode=mode, filters=filters,
                            min_score=min_score)

    async def status(self, tenant: str | None) -> Status:
        from ingestflow.operations import documents

        view = await documents.overview(self.rt, self._tenant(tenant), recent=0)
        return _status(view["stages"], view["queue"], view["spaces"])

    async def document(self, ref: str | uuid.UUID | Document, tenant: str | None) -> DocumentStatus:
        from ingestflow.operations import documents

        tenant = self._tenant(tenant)
        doc = await documents.describe(self.rt, tenant, await self._id(ref, tenant))
        failed = doc["stage"] == Stage.FAILED
        # Scrubbed as the API scrubs them: a provider's message may quote a key.
        return _record(DocumentStatus, doc, deferred_reason=scrub(doc["deferred_reason"]),
                       chunks=int(doc["chunks"]), chunks_embedded=int(doc["chunks_embedded"]),
                       tokens=int(doc["tokens"]), cost_usd=sum(float(c["cost_usd"]) for c in doc["costs"]),
                       error_stage=doc["error_stage"] if failed else None,
                       error_message=scrub(doc["error_message"]) if failed else None)

    async def documents(self, stage: str | None, limit: int, tenant: str | None) -> list[Document]:
        from ingestflow.operations import documents

        page = await documents.page(self.rt, self._tenant(tenant), stage=stage, cursor=None, limit=limit)
        return [_record(Document, r) for r in page.items]

    async def delete(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None:
        from ingestflow.operations import documents

        tenant = self._tenant(tenant)
        await documents.delete(self.rt, tenant, await self._id(ref, tenant))

    async def retry(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None:
        from ingestflow.operations import documents

        tenant = self._tenant(tenant)
        await documents.retry(self.rt, tenant, await self._id(ref, tenant))

    async def costs(self, tenant: str | None) -> Costs:
        from ingestflow.operations import costs

        tenant = self._tenant(tenant)
        spend = await costs.spend(self.rt, tenant)
        days = await costs.by_day(self.rt, tenant, COST_DAYS)
        return Costs(spend.services, spend.today_usd, spend.daily_limit_total_usd,
                     [DaySpend(r["day"], r["service"], float(r["cost_usd"]), int(r["units"]), int(r["requests"]))
                      for r in days])


def _refused(name: str, exc: Refused | IngestflowError) -> Ingested:
    return Ingested(name, None, None, False, REFUSED, exc.code, exc.message)


def _deleted(o: Ingested) -> Ingested:
    return Ingested(o.name, o.document_id, o.version, o.duplicate, DELETED, "not_found",
                    "The document was deleted while it was waited for.")


def _failure(row: dict[str, Any]) -> tuple[str | None, str | None]:
    if row["stage"] != Stage.FAILED:
        return None, None
    return row["error_code"], scrub(row["error_message"])


def _status(stages: dict[str, int], queue: dict[str, Any], spaces: dict[str, Any]) -> Status:
    return Status(dict(stages), _record(Queue, queue), spaces["active"], spaces["configured"], spaces["switching"])


class _Remote:
    """The HTTP API of an ingestflow server; the API key says the tenant."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _call(self, method: str, path: str, read: Callable[[Any], T] = lambda body: body,
                    **kwargs: Any) -> T:
        """The route's answer, read by ``read`` (see ``answer``)."""
        import httpx

        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise IngestflowError("server_unreachable", f"Cannot reach {self.http.base_url}: {exc}.") from None
        return answer(response, read)

    @staticmethod
    def _no_tenant(tenant: str | None) -> None:
        if tenant is not None:
            raise IngestflowError("invalid_tenant", "A remote server acts for the API key's tenant; "
                                                    "do not pass tenant= with url=.")

    async def _id(self, ref: str | uuid.UUID | Document) -> uuid.UUID:
        """A document's id; a source name or an id prefix is resolved by the server, by the
        rule a local client uses (operations/documents.py ``find``)."""
        if isinstance(ref, Document | uuid.UUID):
            return ref if isinstance(ref, uuid.UUID) else ref.id
        return await self._call("GET", "/v1/documents/lookup", lambda r: uuid.UUID(r["id"]), params={"ref": ref})

    async def _upload(self, name: str, data: Path | bytes, batch_api: bool) -> Ingested:
        body = data if isinstance(data, bytes) else await asyncio.to_thread(data.read_bytes)
        try:
            return await self._call(
                "POST", "/v1/documents", lambda r: Ingested(name, uuid.UUID(r["id"]), r["version"], r["duplicate"],
                                                           r["stage"]),
                files={"file": (name, body, "application/octet-stream")}, params={"batch": "true"} if batch_api else None)
        except IngestflowError as exc:
            if exc.code in ("unauthorized", "server_unreachable", "invalid_response"):
                raise  # nothing else will work either
            return _refused(name, exc)

    async def ingest(self, given: _Sources, tenant: str | None, *, wait: bool, batch_api: bool,
                     concurrency: int, timeout: float | None) -> list[Ingested]:
        self._no_tenant(tenant)
        outcomes = [await self._upload(name, data, batch_api) for name, data in given.files()]
        deadline = None if timeout is None else time.monotonic() + timeout
        details: dict[uuid.UUID, dict[str, Any] | None] = {}  # None: deleted meanwhile
        # The server's workers do the work; follow each document until its stage is terminal.
        while wait and not batch_api:
            pending = [o.document_id for o in outcomes if o.document_id is not None
                       and _unfinished(details.get(o.document_id, {"stage": o.stage}))]
            if not pending or (deadline is not None and time.monotonic() > deadline):
                break
            for ident in pending:
                try:
                    details[ident] = await self._call("GET", f"/v1/documents/{ident}", followed)
                except IngestflowError as exc:
                    if exc.code != "not_found":
                        raise
                    details[ident] = None
            await asyncio.sleep(POLL_SECONDS)
        result = []
        for o in outcomes:
            if o.document_id is None or o.document_id not in details:
                result.append(o)
                continue
            detail = details[o.document_id]
            if detail is None:
                result.append(_deleted(o))
                continue
            error = detail["error"] or {}
            result.append(Ingested(o.name, o.document_id, o.version, o.duplicate, detail["stage"],
                                   error.get("code"), error.get("message")))
        if given.sync:
            listed = {d.source_name: d for d in await self.documents(None, sys.maxsize, None)}  # one per source
            for d in given.stale(list(listed.values()), {o.name for o in outcomes}):
                await self.delete(d, None)
                result.append(Ingested(d.source_name, d.id, d.version, False, DELETED))
        return result

    async def search(self, query: str, k: int, mode: str | None, filters: SearchFilters,
                     min_score: float | None, tenant: str | None) -> SearchResult:
        self._no_tenant(tenant)
        wanted = {key: [str(i) for i in value] if key == "document_ids" else value
                  for key, value in asdict(filters).items() if value is not None}
        return await self._call("POST", "/v1/search", lambda r: SearchResult(
            [SearchHit(**h) for h in r["hits"]], r["provider"], r["model"], r["mode"], r["degraded"], r["notes"],
            r.get("reranker")), json={"query": query, "k": k, "mode": mode, "filters": wanted or None,
                                      "min_score": min_score})

    async def status(self, tenant: str | None) -> Status:
        self._no_tenant(tenant)
        return await self._call("GET", "/v1/dashboard", lambda r: _status(r["stages"], r["queue"], r["spaces"]))

    async def document(self, ref: str | uuid.UUID | Document, tenant: str | None) -> DocumentStatus:
        self._no_tenant(tenant)
        return await self._call("GET", f"/v1/documents/{await self._id(ref)}", _document_status)

    async def documents(self, stage: str | None, limit: int, tenant: str | None) -> list[Document]:
        self._no_tenant(tenant)
        found: list[Document] = []
        cursor = None
        while len(found) < limit:
            params = {"limit": min(PAGE_LIMIT, limit - len(found)), "stage": stage, "cursor": cursor}
            items, cursor = await self._call(
                "GET", "/v1/documents", lambda r: ([_parsed(Document, d) for d in r["items"]], r["next_cursor"]),
                params={k: v for k, v in params.items() if v is not None})
            found += items
            if cursor is None:
                break
        return found

    async def delete(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None:
        self._no_tenant(tenant)
        await self._call("DELETE", f"/v1/documents/{await self._id(ref)}")

    async def retry(self, ref: str | uuid.UUID | Document, tenant: str | None) -> None:
        self._no_tenant(tenant)
        await self._call("POST", f"/v1/documents/{await self._id(ref)}/retry")

    async def costs(self, tenant: str | None) -> Costs:
        self._no_tenant(tenant)
        return await self._call("GET", "/v1/costs", lambda r: Costs(
            [ServiceSpend(**s) for s in r["services"]], r["today_usd"], r["daily_limit_total_usd"],
            [_parsed(DaySpend, d) for d in r["by_day"]]), params={"days": COST_DAYS})


def answer(response: httpx.Response, read: Callable[[Any], T]) -> T:
    """What an ingestflow server answered: ``read`` applied to a success's JSON, or the
    IngestflowError an error answer means (its code and message, Retry-After). A success
    that is not JSON, or JSON of another shape (a proxy's ``{}`` or list, another
    version's fields), is ``invalid_response`` naming the route: never a KeyError. The
    remote Client and ``ingest --server`` read every answer with it."""
    route = f"{response.request.method} {response.request.url.copy_with(query=None)}"
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            raise IngestflowError("invalid_response", f"{route} answered HTTP {response.status_code} with a body "
                                  "that is not JSON: is it an ingestflow server?") from None
        try:
            return read(body)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise IngestflowError("invalid_response", f"{route} answered JSON of another shape than an "
                                  f"ingestflow server's ({type(exc).__name__}: {exc}): is it an ingestflow "
                                  "server of this version?") from None
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"{route} answered HTTP {response.status_code}."
    raise IngestflowError(code, message, retry_after=_retry_after(response.headers.get("retry-after")))


def followed(r: dict[str, Any]) -> dict[str, Any]:
    """What following a document (``GET /v1/documents/{id}``) reads of it, each field
    checked here: its stage, chunks so far, cost, and why it failed."""
    error = r["error"]
    return {"stage": str(r["stage"]), "progress": {"chunks": int(r["progress"]["chunks"])},
            "cost_usd": float(r["cost_usd"]),
            "error": None if error is None else {"code": error["code"], "message": error["message"]}}


def _document_status(r: dict[str, Any]) -> DocumentStatus:
    error = r["error"] or {}
    return _parsed(DocumentStatus, r, **r["progress"], error_stage=error.get("stage"),
                   error_message=error.get("message"))


def _unfinished(detail: dict[str, Any] | None) -> bool:
    return detail is not None and detail["stage"] not in TERMINAL


def _parsed(cls: type[T], data: dict[str, Any], **values: Any) -> T:
    """``cls`` from an API answer: ids, times and days parsed from their JSON strings; a
    field the answer lacks is a KeyError (``answer`` says the shape is wrong)."""
    out = {**data, **values}
    if missing := [f.name for f in fields(cls) if f.name not in out]:  # type: ignore[arg-type]
        raise KeyError(", ".join(missing))
    for key in ("id",):
        if key in out:
            out[key] = uuid.UUID(out[key])
    for key in ("created_at", "updated_at", "next_attempt_at"):
        if out.get(key) is not None:
            out[key] = datetime.fromisoformat(out[key])
    if "day" in out:
        out["day"] = date.fromisoformat(out["day"])
    return _record(cls, out)


def _quiet(settings: Settings) -> Settings:
    """A library logs warnings only, unless LOG_LEVEL (environment, .env or an override:
    each one sets the field) asks for more: a worker's info lines are noise in someone
    else's program."""
    if "log_level" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"log_level": "WARNING"})


class AsyncClient:
    """ingestflow from async code: the same methods as :class:`Client`, awaited.

    ``AsyncClient()`` opens the configured database as the CLI does (settings from the
    environment and ``.env``; keyword arguments override them, e.g.
    ``AsyncClient(database_url=...)``, or pass ``settings=``).
    ``AsyncClient(url="http://host:8000", api_key="...")`` uses an API server instead;
    the key's tenant is the only one it can act for.
    Use ``async with AsyncClient() as client:`` or ``await client.aclose()``."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None, api_key: str | None = None,
                 tenant: str = "default", timeout: float = 60.0, **overrides: Any) -> None:
        if url is not None:
            if settings is not None or overrides or tenant != "default":
                raise ValueError("url= talks to a server, for the API key's tenant: settings, their overrides "
                                 "and tenant= do not apply")
            if not api_key:
                raise ValueError("url= needs api_key= (an API key from `ingestflow keys create`)")
        elif settings is not None and overrides:
            raise ValueError("give settings= or keyword overrides of the settings, not both")
        self._url, self._api_key, self._timeout = url, api_key, timeout
        with _public_errors():
            self._tenant = check_tenant(tenant)
            self._settings = None if url is not None else settings or _quiet(load_settings(**overrides))
        self._stack = AsyncExitStack()
        self._backend: _Backend | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def _open(self) -> _Backend:
        """The backend, opened at first use (the database is migrated and its pool filled)."""
        async with self._opening:
            if self._closed:
                raise RuntimeError("this ingestflow client is closed")
            if self._backend is not None:
                return self._backend
            if self._settings is None:
                import httpx

                assert self._url is not None
                http = httpx.AsyncClient(base_url=self._url.rstrip("/"), timeout=httpx.Timeout(self._timeout),
                                         headers={"Authorization": f"Bearer {self._api_key}"})
                self._backend = _Remote(await self._stack.enter_async_context(http))
            else:
                from ingestflow.runtime import open_runtime

                with _public_errors():
                    rt = await self._stack.enter_async_context(open_runtime(self._settings))
                self._backend = _Local(rt, self._tenant)
            return self._backend

    async def __aenter__(self) -> AsyncClient:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the database pool (or the HTTP connection); the client cannot be used after."""
        self._closed = True
        await self._stack.aclose()

    async def ingest(self, source: Source, *, tenant: str | None = None, name: str | None = None, prefix: str = "",
                     wait: bool = True, batch_api: bool = False, concurrency: int = 2,
                     timeout: float | None = None, sync: bool = False) -> list[Ingested]:
        """Ingest files and folders (recursively, named as ``ingestflow ingest`` names them),
        or ``bytes`` with a ``name``. ``wait``: until every document reaches a terminal
        stage, which its outcome says (at most ``timeout`` seconds): locally a worker runs
        in this process (``concurrency`` jobs at once), remotely the server's workers do
        the work. ``batch_api``: embed through the OpenAI Batch API (within a day; never
        waited for). One outcome per file; a refused file does not stop the others.
        ``sync`` (folders only; what ``ingest --sync --yes`` does): then delete the documents
        named as a file of these folders would be whose file is gone, one more outcome
        each, with stage ``"deleted"``."""
        given = _Sources.of(source, name, prefix, sync)
        backend = await self._open()
        with _public_errors():
            try:
                return await backend.ingest(given, tenant, wait=wait, batch_api=batch_api,
                                            concurrency=concurrency, timeout=timeout)
            except FileNotFoundError as exc:
                raise IngestflowError("no_such_path", str(exc)) from None

    async def search(self, query: str, k: int = 5, mode: str | None = None,
                     filters: SearchFilters | Mapping[str, Any] | None = None, *, min_score: float | None = None,
                     tenant: str | None = None) -> SearchResult:
        """The ``k`` passages (1-100) that best answer ``query`` (``mode``: hybrid, vector or
        keyword; SEARCH_MODE when None; ``filters``: SearchFilters or a dict of its fields),
        with where each comes from (document, version, pages, headings) and notes on how the
        answer was found. Passages scoring less than ``min_score`` (the model's default when
        None) are left out: none left is "no answer". Arguments out of bounds are refused as
        the API refuses them (operations/bounds.py: ``invalid_k``, ``query_too_long``...),
        before any call."""
        with _public_errors():  # the rule every face checks with, before either backend
            query, k, mode, checked, min_score = check_arguments(query, k, mode, filters, min_score)
        backend = await self._open()
        with _public_errors():
            return await backend.search(query, k, mode, checked, min_score, tenant)

    @overload
    async def status(self, document: None = None, *, tenant: str | None = None) -> Status: ...
    @overload
    async def status(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> DocumentStatus: ...

    async def status(self, document: str | uuid.UUID | Document | None = None, *,
                     tenant: str | None = None) -> Status | DocumentStatus:
        """The tenant's documents by stage and its queue; or, given a document (its id, an id
        prefix or its source name), that document in detail."""
        backend = await self._open()
        with _public_errors():
            return await (backend.status(tenant) if document is None else backend.document(document, tenant))

    async def documents(self, stage: str | None = None, *, limit: int = 100,
                        tenant: str | None = None) -> list[Document]:
        """Current documents, newest first, at most ``limit``; only those in ``stage`` if given
        (``superseded``: the older versions)."""
        backend = await self._open()
        with _public_errors():
            return await backend.documents(stage, limit, tenant)

    async def delete(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> None:
        """Remove the document's source, every version, with their chunks, vectors, texts and
        stored bytes (IngestflowError ``not_found`` if unknown); the ledger keeps amounts only."""
        backend = await self._open()
        with _public_errors():
            await backend.delete(document, tenant)

    async def retry(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> None:
        """Queue a failed document again from its first stage (``not_failed`` otherwise).
        Its work is done by a worker (``ingestflow worker``, or the server's)."""
        backend = await self._open()
        with _public_errors():
            await backend.retry(document, tenant)

    async def costs(self, *, tenant: str | None = None) -> Costs:
        """Spend today, this hour and by day, per service, against the limits."""
        backend = await self._open()
        with _public_errors():
            return await backend.costs(tenant)


class Client:
    """ingestflow from Python: ingest, search, status, documents, delete, retry, costs.

    ``Client()`` opens the configured database as the CLI does (settings from the
    environment and ``.env``, the embedded PostgreSQL unless DATABASE_URL is set; keyword
    arguments override settings, e.g. ``Client(database_url=...)``, or pass ``settings=``).
    ``Client(url="http://host:8000", api_key="...")`` uses an API server instead, with the
    same methods and results. Close it with ``close()`` or ``with Client() as client:``.

    The client runs its own event loop, so it cannot be called from a running one (a
    Jupyter notebook, an async web app): use :class:`AsyncClient` there and await the
    same methods. Calls from several threads are served one at a time. Method
    documentation: see :class:`AsyncClient`.
    """

    def __init__(self, settings: Settings | None = None, *, url: str | None = None, api_key: str | None = None,
                 tenant: str = "default", timeout: float = 60.0, **overrides: Any) -> None:
        _outside_a_loop()
        self._turn = threading.Lock()
        self._closed = False
        self._runner = asyncio.Runner()
        try:
            self._client = self._runner.run(self._open(settings, url=url, api_key=api_key, tenant=tenant,
                                                       timeout=timeout, **overrides))
        except BaseException:
            self._runner.close()
            raise

    @staticmethod
    async def _open(settings: Settings | None, **kwargs: Any) -> AsyncClient:
        client = AsyncClient(settings, **kwargs)  # made inside the loop its pool will run on
        await client._open()
        return client

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        if _in_a_loop():
            call.close()  # never awaited: no "coroutine was never awaited" warning
            _outside_a_loop()
        with self._turn:  # one loop runs one call at a time; other threads wait
            if self._closed:  # checked in turn: close() may have run while this thread waited
                call.close()
                raise RuntimeError("this ingestflow client is closed")
            return self._runner.run(call)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database pool (or the HTTP connection) and the client's event loop;
        closing again does nothing."""
        _outside_a_loop()
        with self._turn:  # after the call under way in another thread, before any waiting
            if self._closed:
                return
            self._closed = True
            try:
                self._runner.run(self._client.aclose())
            finally:
                self._runner.close()

    def ingest(self, source: Source, *, tenant: str | None = None, name: str | None = None, prefix: str = "",
               wait: bool = True, batch_api: bool = False, concurrency: int = 2,
               timeout: float | None = None, sync: bool = False) -> list[Ingested]:
        """See :meth:`AsyncClient.ingest`."""
        return self._run(self._client.ingest(source, tenant=tenant, name=name, prefix=prefix, wait=wait,
                                             batch_api=batch_api, concurrency=concurrency, timeout=timeout,
                                             sync=sync))

    def search(self, query: str, k: int = 5, mode: str | None = None,
               filters: SearchFilters | Mapping[str, Any] | None = None, *, min_score: float | None = None,
               tenant: str | None = None) -> SearchResult:
        """See :meth:`AsyncClient.search`."""
        return self._run(self._client.search(query, k, mode, filters, min_score=min_score, tenant=tenant))

    @overload
    def status(self, document: None = None, *, tenant: str | None = None) -> Status: ...
    @overload
    def status(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> DocumentStatus: ...

    def status(self, document: str | uuid.UUID | Document | None = None, *,
               tenant: str | None = None) -> Status | DocumentStatus:
        """See :meth:`AsyncClient.status`."""
        return self._run(self._client.status(document, tenant=tenant))

    def documents(self, stage: str | None = None, *, limit: int = 100, tenant: str | None = None) -> list[Document]:
        """See :meth:`AsyncClient.documents`."""
        return self._run(self._client.documents(stage, limit=limit, tenant=tenant))

    def delete(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> None:
        """See :meth:`AsyncClient.delete`."""
        self._run(self._client.delete(document, tenant=tenant))

    def retry(self, document: str | uuid.UUID | Document, *, tenant: str | None = None) -> None:
        """See :meth:`AsyncClient.retry`."""
        self._run(self._client.retry(document, tenant=tenant))

    def costs(self, *, tenant: str | None = None) -> Costs:
        """See :meth:`AsyncClient.costs`."""
        return self._run(self._client.costs(tenant=tenant))


def _retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds: given as seconds or as an HTTP date (RFC 9110);
    None when absent or unreadable (the refusal matters more than the hint)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _in_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _outside_a_loop() -> None:
    if not _in_a_loop():
        return
    raise RuntimeError("ingestflow.Client runs its own event loop and cannot be used inside a running one "
                       "(a notebook, an async app): use ingestflow.AsyncClient and await its methods.")
