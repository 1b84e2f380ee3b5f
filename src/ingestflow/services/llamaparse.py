"""LlamaParse (LlamaCloud v1 parsing API) over httpx: upload, poll with backoff, fetch.

Jobs take seconds or hours, so polling backs off (1 s, x1.5, up to 10 s) under an overall
timeout, after which the job counts as transiently failed and is submitted again later.
An unanswered poll (429, 5xx, connection) does not end the wait: the job is already
uploaded and paid for, and re-uploading would only pay again. Everything else raises a
classified error for the caller's single retry layer.

For the webhook flow, ``submit`` passes a callback URL (and the per-job secret with which
the delivery is signed, see ``services/webhooks.py``) and returns at once; the HTTP API
receives the result. The client or transport is injectable, so tests use a fake server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ingestflow.errors import IngestError, PermanentError, TransientError
from ingestflow.logging import get_logger
from ingestflow.redaction import register as register_secrets
from ingestflow.redaction import scrub
from ingestflow.services import http
from ingestflow.services.base import ParsedDocument, clean_text

PROVIDER = "LlamaParse"
DEFAULT_BASE_URL = "https://api.cloud.llamaindex.ai"
PARSING = "/api/v1/parsing"
DONE = frozenset({"SUCCESS", "PARTIAL_SUCCESS"})
PAGE_SEPARATOR = "\n---\n"  # LlamaParse's default between pages of the Markdown result

log = get_logger("ingestflow.llamaparse")


class LlamaParseParser:
    """A ``Parser`` on LlamaParse; ``usage_pages`` is what the job billed."""

    name = "llamaparse"

    def __init__(self, *, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 1800.0,
                 poll_initial: float = 1.0, poll_factor: float = 1.5, poll_max: float = 10.0,
                 request_timeout: float = 60.0, client: httpx.AsyncClient | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._key = api_key
        register_secrets([api_key])
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.poll_initial, self.poll_factor, self.poll_max = poll_initial, poll_factor, poll_max
        self._client = client or httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(request_timeout, connect=10.0))

    def __repr__(self) -> str:  # never show the key
        return f"LlamaParseParser(base_url={self.base_url!r})"

    async def parse(self, data: bytes, mime: str, filename: str) -> ParsedDocument:
        """Upload, wait for the job, fetch its Markdown."""
        job_id = await self._upload(data, filename, mime, {})
        status = await self._wait(job_id)
        parsed = await self.fetch_markdown(job_id)
        if status == "PARTIAL_SUCCESS":  # some pages failed; the rest is still worth indexing
            log.warning("llamaparse_partial_success", job=job_id, pages=parsed.usage_pages)
        return parsed

    async def submit(self, data: bytes, filename: str, *, webhook_url: str, webhook_secret: str | None = None,
                     mime: str = "application/octet-stream") -> str:
        """Start a job whose result is POSTed to ``webhook_url``; returns the job id."""
        form = {"webhook_url": webhook_url}
        if webhook_secret:
            form["webhook_secret"] = webhook_secret
        return await self._upload(data, filename, mime, form)

    async def fetch_markdown(self, job_id: str) -> ParsedDocument:
        """The finished job's Markdown and billed pages."""
        body = await self._request("GET", f"{PARSING}/job/{job_id}/result/markdown")
        markdown = body.get("markdown")
        if not isinstance(markdown, str):
            raise TransientError("invalid_response", "LlamaParse result has no markdown")
        markdown = clean_text(markdown)
        if not markdown.strip():
            raise PermanentError("empty_document", "LlamaParse found no text in the document")
        return ParsedDocument(markdown, self.name, usage_pages=_pages(body.get("job_metadata"), markdown))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def health(self) -> tuple[bool, str]:
        """Free: lists the supported file types; never raises."""
        try:
            await self._send("GET", f"{PARSING}/supported_file_extensions", timeout=10)
        except IngestError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure means "unhealthy"
            return False, scrub(f"{type(exc).__name__}: {exc}")
        return True, "LlamaParse reachable"

    async def _upload(self, data: bytes, filename: str, mime: str, form: dict[str, str]) -> str:
        body = await self._request("POST", f"{PARSING}/upload", data=form,
                                   files={"file": (filename.rsplit("/", 1)[-1] or "document", data, mime)})
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise TransientError("invalid_response", "LlamaParse returned no job id")
        return job_id

    async def status(self, job_id: str) -> str:
        """One poll: PENDING, SUCCESS or PARTIAL_SUCCESS. ERROR is permanent (the provider
        cannot read the document); CANCELED is transient (submit again)."""
        job = await self._request("GET", f"{PARSING}/job/{job_id}")
        state = str(job.get("status", "")).upper() or "PENDING"
        if state == "ERROR":
            reason = job.get("error_message") or job.get("error_code") or "no reason given"
            raise PermanentError("parse_failed", f"LlamaParse could not parse the document: "
                                                 f"{scrub(str(reason))[:500]}")
        if state == "CANCELED":
            raise TransientError("parse_canceled", "LlamaParse canceled the job; it will be submitted again")
        return state

    async def _wait(self, job_id: str) -> str:
        """Poll the job until it is done; returns SUCCESS or PARTIAL_SUCCESS."""
        deadline = time.monotonic() + self.timeout
        delay, state = self.poll_initial, "PENDING"
        while True:
            try:
                state = await self.status(job_id)
            except TransientError as exc:
                if exc.code == "parse_canceled":
                    raise
                state = f"unanswered ({exc.code})"
                delay = max(delay, exc.retry_after or 0.0)
            if state in DONE:
                return state
            if time.monotonic() + delay > deadline:
                raise TransientError("parse_timeout", f"LlamaParse job {job_id} still {state} after {self.timeout:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * self.poll_factor, self.poll_max)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object a successful call answers."""
        response = await self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise TransientError("invalid_response", "LlamaParse sent a body that is not JSON") from None
        if not isinstance(body, dict):
            raise TransientError("invalid_response", f"LlamaParse sent {type(body).__name__}, not an object")
        return body

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await http.send(self._client, PROVIDER, method, self.base_url + path, key=self._key,
                               not_found="parse_rejected", **kwargs)

def _pages(metadata: object, markdown: str) -> int:
    """Billed pages from ``job_metadata.job_pages``; else the pages the Markdown separates."""
    pages = metadata.get("job_pages") if isinstance(metadata, dict) else None
    if isinstance(pages, int) and pages >= 0:
        return pages
    return markdown.count(PAGE_SEPARATOR) + 1
