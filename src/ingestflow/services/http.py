"""One authorised request to a provider over httpx, its failures classified: what every
client that speaks a provider's HTTP API itself (LlamaParse, Cohere) shares."""

from __future__ import annotations

from typing import Any

import httpx

from ingestflow.redaction import scrub
from ingestflow.services import failures


async def send(client: httpx.AsyncClient, provider: str, method: str, url: str, *, key: str, not_found: str,
               **kwargs: Any) -> httpx.Response:
    """The response of a 2xx answer; transport failures and error statuses raise the errors
    services/failures.py gives them, with the provider's message scrubbed of secrets.
    ``not_found``: what a 404 means for this call."""
    try:
        response = await client.request(method, url, headers={"Authorization": f"Bearer {key}"}, **kwargs)
    except httpx.TimeoutException as exc:
        raise failures.timed_out(provider, exc) from None
    except httpx.TransportError as exc:
        raise failures.unreachable(provider, type(exc).__name__) from None
    if response.status_code >= 400:
        message = scrub(_message(response))[:500]
        raise failures.from_status(provider, response.status_code, message, response.headers, not_found=not_found)
    return response


def _message(response: httpx.Response) -> str:
    """The message of an error answer: LlamaCloud's ``{"detail": ...}`` (FastAPI), Cohere's
    ``{"message": ...}`` and the like; anything else as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error_message", "message", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)
