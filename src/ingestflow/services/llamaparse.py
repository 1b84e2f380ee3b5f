"""LlamaParse (LlamaCloud) over httpx: upload, poll with backoff, fetch the Markdown.

Jobs can take seconds or hours, so polling backs off (1 s growing to 10 s) under an overall
timeout, after which the job counts as transiently failed and is submitted again later.
For the webhook flow, ``submit`` passes a callback URL and the per-job secret with which
the provider signs its delivery (see ``services/webhooks.py``); the HTTP API verifies it.
The transport is injectable (``httpx.AsyncClient``), so tests talk to a fake server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ingestflow.errors import DeferredError, IngestError, PermanentError, TransientError
from ingestflow.services.base import ParsedDocument
from ingestflow.services.openai_embedder import retry_after_seconds

DONE = {"SUCCESS", "PARTIAL_SUCCESS"}


class LlamaParseParser:
    name = "llamaparse"

    def __init__(self, *, api_key: str, base_url: str = "https://api.cloud.llamaindex.ai", timeout: float = 1800.0,
                 poll_initial: float = 1.0, poll_max: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.poll_initial, self.poll_max = poll_initial, poll_max
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))

    def __repr__(self) -> str:  # never show the key
        return f"LlamaParseParser(base_url={self.base_url!r})"

    async def parse(self, data: bytes, mime: str, filename: str) -> ParsedDocument:
        job_id = await self.submit(data, filename, mime=mime)
        deadline = time.monotonic() + self.timeout
        delay = self.poll_initial
        while True:
            job = await self._request("GET", f"/api/v1/parsing/job/{job_id}")
            status = str(job.get("status", "")).upper()
            if status in DONE:
                return await self.fetch_markdown(job_id)
            if status == "ERROR":
                reason = job.get("error_message") or job.get("error_code") or "unknown error"
                raise PermanentError("parse_failed", f"LlamaParse could not parse the document: {self._scrub(str(reason))}")
            if status == "CANCELED":
                raise TransientError("parse_canceled", "LlamaParse canceled the job; it will be submitted again")
            if time.monotonic() + delay > deadline:
                raise TransientError("parse_timeout", f"LlamaParse job still {status or 'PENDING'} after {self.timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.poll_max)

    async def submit(self, data: bytes, filename: str, *, mime: str = "application/octet-stream",
                     webhook_url: str | None = None, webhook_secret: str | None = None) -> str:
        form = {"result_type": "markdown"}
        if webhook_url:
            form["webhook_url"] = webhook_url
            if webhook_secret:
                form["webhook_secret"] = webhook_secret
        body = await self._request("POST", "/api/v1/parsing/upload", data=form,
                                   files={"file": (filename.rsplit("/", 1)[-1] or "document", data, mime)})
        job_id = body.get("id")
        if not job_id:
            raise TransientError("invalid_response", "LlamaParse returned no job id")
        return str(job_id)

    async def fetch_markdown(self, job_id: str) -> ParsedDocument:
        body = await self._request("GET", f"/api/v1/parsing/job/{job_id}/result/markdown")
        markdown = body.get("markdown")
        if not isinstance(markdown, str):
            raise TransientError("invalid_response", "LlamaParse result has no markdown")
        if not markdown.strip():
            raise PermanentError("empty_document", "LlamaParse found no text in the document")
        meta = body.get("job_metadata") or {}
        pages = int(meta.get("job_pages") or meta.get("credits_used") or 0)
        return ParsedDocument(markdown, self.name, usage_pages=pages)

    async def health(self) -> tuple[bool, str]:
        """Free: lists supported file types; never raises."""
        try:
            await self._request("GET", "/api/v1/parsing/supported_file_extensions")
        except IngestError as exc:
            return False, exc.message
        except Exception as exc:  # noqa: BLE001
            return False, self._scrub(f"{type(exc).__name__}: {exc}")
        return True, "LlamaParse reachable"

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(
                method, self.base_url + path, headers={"Authorization": f"Bearer {self._key}"}, **kwargs)
        except httpx.TimeoutException:
            raise TransientError("timeout", f"LlamaParse {method} {path} timed out") from None
        except httpx.TransportError as exc:
            raise TransientError("connection_error", f"LlamaParse unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise self._classify(response)
        try:
            body = response.json()
        except ValueError:
            raise TransientError("invalid_response", "LlamaParse sent a body that is not JSON") from None
        return body if isinstance(body, dict) else {"data": body}

    def _classify(self, response: httpx.Response) -> IngestError:
        status = response.status_code
        try:
            detail = response.json()
            message = detail.get("detail") or detail.get("error") or detail.get("message") or response.text
        except ValueError:
            message = response.text
        message = self._scrub(str(message))[:500]
        retry_after = retry_after_seconds(response.headers)
        if status == 429 or status >= 500 or status == 408:
            code = "rate_limited" if status == 429 else "server_error"
            return TransientError(code, f"LlamaParse {status}: {message}", retry_after=retry_after)
        if status == 402:
            return DeferredError("provider_quota", f"LlamaParse account is out of credits: {message}", retry_after=3600)
        if status in (401, 403):
            return PermanentError("auth_failed", f"LlamaParse rejected the API key ({status}): {message}")
        return PermanentError("parse_rejected", f"LlamaParse {status}: {message}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text
