"""A fake LlamaParse (LlamaCloud v1 parsing API) on loopback.

    with FakeLlamaParse(api_key="llx-test", polls_until_done=2) as fake:
        parser = LlamaParseParser(api_key="llx-test", base_url=fake.url, poll_initial=0.01)

Upload (multipart ``file``), job status and Markdown result, bearer auth, page counts in
``job_metadata``. A job finishes after ``polls_until_done`` status polls and
``seconds_until_done`` seconds. The Markdown is the uploaded text (PDF pages extracted
with pypdfium2 and joined by LlamaParse's ``\\n---\\n`` page separator) under a
``# Parsed by fake LlamaParse`` heading.

Faults, from ``faults.inject`` / ``set_rate``, are drawn once per upload: ``429``, ``500``,
``402`` answer the upload itself; ``error`` (status ERROR with a message), ``canceled``,
``partial`` (PARTIAL_SUCCESS) and ``stuck`` (PENDING forever) become the job's fate.
``poll_faults`` (kinds ``429``, ``500``, ``503``) answer the next status polls instead, and
``faults.down`` answers everything with 503. ``POST /_control/faults`` takes the
``FaultPlan.configure`` body, with ``{"poll": {...}}`` for the poll faults.

With a ``webhook_url`` (and ``webhook_secret``) the finished job is POSTed to the URL as
JSON (``job_id``, ``status``, ``markdown``, ``pages``), signed as ``services/webhooks.py``
specifies, unless ``deliver_webhooks`` is off. ``stats``: ``uploads``, ``polls``,
``pages_billed``, ``webhooks``, ``status_<code>`` of answered errors.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.services.webhooks import signed_headers
from ingestflow.testing._server import FakeServer
from ingestflow.testing.faults import FaultPlan

PARSING = "/api/v1/parsing"
ERROR_FAULTS = {"429": 429, "500": 500, "503": 503, "402": 402}
FATES = {"error": "ERROR", "canceled": "CANCELED", "partial": "PARTIAL_SUCCESS"}
PAGE_SEPARATOR = "\n---\n"
ERROR_MESSAGE = "The document could not be read by the parser"


@dataclass
class _Job:
    id: str
    markdown: str
    pages: int
    fate: str | None  # error | canceled | partial | stuck | None (success)
    created: float
    webhook_url: str | None = None
    webhook_secret: str | None = None
    polls: int = 0
    delivered: list[int] = field(default_factory=list)  # HTTP statuses the webhook answered; 0: unreachable


def _text_of(data: bytes) -> tuple[str, int]:
    """The document's text and page count (a non-PDF counts as one page)."""
    if data.startswith(b"%PDF"):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
        finally:
            pdf.close()
        return PAGE_SEPARATOR.join(p.strip() for p in pages), len(pages)
    return data.decode("utf-8", errors="replace"), 1


class FakeLlamaParse(FakeServer):
    def __init__(self, *, api_key: str = "llx-fake", polls_until_done: int = 1, seconds_until_done: float = 0.0,
                 deliver_webhooks: bool = True, retry_after: float = 0.1, seed: int = 0, port: int = 0) -> None:
        self.api_key = api_key
        self.polls_until_done = polls_until_done
        self.seconds_until_done = seconds_until_done
        self.deliver_webhooks = deliver_webhooks
        self.retry_after = retry_after
        self.poll_faults = FaultPlan(seed)
        self.jobs: dict[str, _Job] = {}
        self._deliveries: set[asyncio.Task[None]] = set()  # held so they are not collected mid-flight
        super().__init__([
            Route(f"{PARSING}/upload", self._upload, methods=["POST"]),
            Route(f"{PARSING}/job/{{job_id}}", self._status, methods=["GET"]),
            Route(f"{PARSING}/job/{{job_id}}/result/markdown", self._result, methods=["GET"]),
            Route(f"{PARSING}/supported_file_extensions", self._extensions, methods=["GET"]),
            Route("/_control/stats", self._stats, methods=["GET"]),
        ], seed=seed, port=port)

    @property
    def url(self) -> str:
        return self.base

    # -- routes --------------------------------------------------------------------------

    async def _extensions(self, request: Request) -> Response:
        return self._denied(request) or JSONResponse([".pdf", ".docx", ".html", ".md", ".txt"])

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.stats))

    async def _upload(self, request: Request) -> Response:
        self.stats["uploads"] += 1
        if denied := self._denied(request):
            return denied
        fault = self.faults.next()
        if fault in ERROR_FAULTS:
            return self._fault(ERROR_FAULTS[fault])
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return self._error(400, "file is required")
        text, pages = _text_of(await upload.read())
        job = _Job(str(uuid.uuid4()), f"# Parsed by fake LlamaParse\n\n{text}", pages, fault, time.monotonic(),
                   str(form.get("webhook_url") or "") or None, str(form.get("webhook_secret") or "") or None)
        self.jobs[job.id] = job
        if job.webhook_url and self.deliver_webhooks and fault != "stuck":
            task = asyncio.get_running_loop().create_task(self._deliver(job))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return JSONResponse({"id": job.id, "status": "PENDING"})

    async def _status(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        if (fault := self.poll_faults.next()) in ERROR_FAULTS:
            return self._fault(ERROR_FAULTS[fault])
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return self._error(404, "Job not found")
        job.polls += 1
        self.stats["polls"] += 1
        body = {"id": job.id, "status": self._state(job)}
        if body["status"] == "ERROR":
            body |= {"error_code": "PDF_UNREADABLE", "error_message": ERROR_MESSAGE}
        return JSONResponse(body)

    async def _result(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or self._state(job) not in ("SUCCESS", "PARTIAL_SUCCESS"):
            return self._error(404, "Result not ready")
        self.stats["pages_billed"] += job.pages
        return JSONResponse({"markdown": job.markdown,
                             "job_metadata": {"job_pages": job.pages, "job_is_cache_hit": False}})

    async def _control(self, request: Request) -> Response:
        body = await request.json()
        if isinstance(body.get("poll"), dict):
            self.poll_faults.configure(body.pop("poll"))
        self.faults.configure(body)
        return JSONResponse({"ok": True})

    # -- helpers -------------------------------------------------------------------------

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Invalid API key")
        if self.faults.down:
            return self._error(503, "Service unavailable")
        return None

    def _error(self, status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        self.stats[f"status_{status}"] += 1
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    def _fault(self, status: int) -> JSONResponse:
        if status == 429:
            return self._error(429, "Too many requests (fault injected)", {"retry-after": str(self.retry_after)})
        if status == 402:
            return self._error(402, "Insufficient credits: add credits to your organization (fault injected)")
        return self._error(status, f"Internal error (fault injected {status})")

    def _finished(self, job: _Job) -> bool:
        return (job.polls >= self.polls_until_done
                and time.monotonic() - job.created >= self.seconds_until_done)

    def _state(self, job: _Job) -> str:
        if job.fate == "stuck" or not self._finished(job):
            return "PENDING"
        return FATES.get(job.fate or "", "SUCCESS")

    async def _deliver(self, job: _Job) -> None:
        """POST the finished job to its webhook, signed with the job's secret."""
        await asyncio.sleep(max(0.05, self.seconds_until_done))
        job.polls = max(job.polls, self.polls_until_done)  # the provider does not wait for polls
        status = self._state(job)
        done = status in ("SUCCESS", "PARTIAL_SUCCESS")
        payload = {"job_id": job.id, "status": status, "markdown": job.markdown if done else "", "pages": job.pages}
        if status == "ERROR":
            payload["error_message"] = ERROR_MESSAGE
        body = json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if job.webhook_secret:
            headers |= signed_headers(job.webhook_secret, body, event_id=f"evt-{job.id}")
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(job.webhook_url or "", content=body, headers=headers)
        except httpx.TransportError:
            job.delivered.append(0)
            return
        job.delivered.append(response.status_code)
        self.stats["webhooks"] += 1
        if done:
            self.stats["pages_billed"] += job.pages

