"""A fake LlamaParse (LlamaCloud v1 parsing API) on loopback.

    with FakeLlamaParse(api_key="llx-test", polls_until_done=2) as fake:
        parser = LlamaParseParser(api_key="llx-test", base_url=fake.url, poll_initial=0.01)

Upload (multipart ``file``), job status and Markdown result, bearer auth, page counts in
``job_metadata``. Jobs finish after ``polls_until_done`` status polls. Faults, from
``faults.inject`` / ``set_rate``: on upload ``429``, ``500``, ``402``; as the job's fate
``error`` (status ERROR with a message), ``canceled``, ``partial`` (PARTIAL_SUCCESS) and
``stuck`` (PENDING forever). With a ``webhook_url`` (and ``webhook_secret``) the finished
job is POSTed to the URL, signed as ``services/webhooks.py`` specifies.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.services.webhooks import signed_headers
from ingestflow.testing._server import FakeServer

UPLOAD_FAULTS = {"429": 429, "500": 500, "402": 402}


@dataclass
class _Job:
    id: str
    markdown: str
    pages: int
    fate: str | None  # error | canceled | partial | stuck | None (success)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    polls: int = 0
    delivered: list[int] = field(default_factory=list)


def _text_of(data: bytes) -> tuple[str, int]:
    if data.startswith(b"%PDF"):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
        finally:
            pdf.close()
        return "\n\n".join(p.strip() for p in pages), len(pages)
    return data.decode("utf-8", errors="replace"), 1


class FakeLlamaParse(FakeServer):
    def __init__(self, *, api_key: str = "llx-fake", polls_until_done: int = 1, seed: int = 0, port: int = 0) -> None:
        self.api_key = api_key
        self.polls_until_done = polls_until_done
        self.jobs: dict[str, _Job] = {}
        super().__init__([
            Route("/api/v1/parsing/upload", self._upload, methods=["POST"]),
            Route("/api/v1/parsing/job/{job_id}", self._status, methods=["GET"]),
            Route("/api/v1/parsing/job/{job_id}/result/markdown", self._result, methods=["GET"]),
            Route("/api/v1/parsing/supported_file_extensions", self._extensions, methods=["GET"]),
        ], seed=seed, port=port)

    @property
    def url(self) -> str:
        return self.base

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"detail": "Invalid API key"}, status_code=401)
        if self.faults.down:
            return JSONResponse({"detail": "Service unavailable"}, status_code=503)
        return None

    async def _extensions(self, request: Request) -> Response:
        return self._denied(request) or JSONResponse([".pdf", ".docx", ".html", ".md", ".txt"])

    async def _upload(self, request: Request) -> Response:
        self.stats["uploads"] += 1
        if denied := self._denied(request):
            return denied
        fault = self.faults.next()
        if fault in UPLOAD_FAULTS:
            status = UPLOAD_FAULTS[fault]
            headers = {"retry-after": "0.1"} if status == 429 else None
            return JSONResponse({"detail": f"fault {fault}"}, status_code=status, headers=headers)
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"detail": "file is required"}, status_code=400)
        text, pages = _text_of(await upload.read())
        job = _Job(str(uuid.uuid4()), f"# Parsed by fake LlamaParse\n\n{text}", pages, fault,
                   str(form.get("webhook_url") or "") or None, str(form.get("webhook_secret") or "") or None)
        self.jobs[job.id] = job
        if job.webhook_url and fault not in ("stuck",):
            asyncio.get_running_loop().create_task(self._deliver(job))
        return JSONResponse({"id": job.id, "status": "PENDING"})

    def _state(self, job: _Job) -> str:
        if job.fate == "stuck" or job.polls < self.polls_until_done:
            return "PENDING"
        return {"error": "ERROR", "canceled": "CANCELED", "partial": "PARTIAL_SUCCESS"}.get(job.fate or "", "SUCCESS")

    async def _status(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"detail": "Job not found"}, status_code=404)
        job.polls += 1
        self.stats["polls"] += 1
        body = {"id": job.id, "status": self._state(job)}
        if body["status"] == "ERROR":
            body |= {"error_code": "PDF_UNREADABLE", "error_message": "The document could not be read by the parser"}
        return JSONResponse(body)

    async def _result(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or self._state(job) not in ("SUCCESS", "PARTIAL_SUCCESS"):
            return JSONResponse({"detail": "Result not ready"}, status_code=404)
        self.stats["pages_billed"] += job.pages
        return JSONResponse({"markdown": job.markdown, "job_metadata": {"job_pages": job.pages}})

    async def _deliver(self, job: _Job) -> None:
        """POST the finished job to its webhook, signed with the job's secret."""
        await asyncio.sleep(0.05)
        job.polls = max(job.polls, self.polls_until_done)
        status = self._state(job)
        payload = {"job_id": job.id, "status": status, "markdown": job.markdown if status in ("SUCCESS", "PARTIAL_SUCCESS") else "",
                   "pages": job.pages}
        if status == "ERROR":
            payload["error_message"] = "The document could not be read by the parser"
        body = json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if job.webhook_secret:
            headers |= signed_headers(job.webhook_secret, body, event_id=f"evt-{job.id}")
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(job.webhook_url or "", content=body, headers=headers)
        job.delivered.append(response.status_code)
        self.stats["webhooks"] += 1
        if status in ("SUCCESS", "PARTIAL_SUCCESS"):
            self.stats["pages_billed"] += job.pages
