"""Cohere's Rerank API (``POST /v2/rerank``) over httpx, one validated request per call.

Plain httpx rather than the ``cohere`` SDK: the call is one JSON request, httpx is already
ours, and the SDK would bring ``tokenizers``, ``fastavro`` and ``requests`` plus retries of
its own that would have to be switched off (the guard is the single retry layer).

Request: ``model``, ``query``, ``documents`` (strings), ``top_n`` and ``max_tokens_per_doc``
(sent explicitly, so a long passage is cut rather than split into more billed documents).
Response: ``id``, ``results`` [{``index``, ``relevance_score``}] best first, and
``meta.billed_units.search_units``. Errors answer ``{"message": ...}``: 400 (or 422) a bad
request, 401 a bad key, 402 no payment method or credit, 404 an unknown model, 429 rate
limited (a trial key allows 10 calls a minute), 5xx Cohere's trouble; services/failures.py
decides what each means for the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from ingestflow.catalogue import cohere_rerank_model
from ingestflow.errors import TransientError
from ingestflow.redaction import register as register_secrets
from ingestflow.redaction import scrub
from ingestflow.services import http
from ingestflow.services.base import RerankResult

PROVIDER = "Cohere"
DEFAULT_BASE_URL = "https://api.cohere.com"
RERANK = "/v2/rerank"
CONNECT_TIMEOUT = 5.0


class CohereReranker:
    """A ``Reranker`` on Cohere; ``search_units`` is what the request billed. The httpx
    client is injectable, so a test can script the far end."""

    provider = "cohere"

    def __init__(self, *, api_key: str, model: str = "rerank-v3.5", base_url: str = DEFAULT_BASE_URL,
                 timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        self.spec = cohere_rerank_model(model)  # ValueError for a model the catalogue cannot price
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        register_secrets([api_key])
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))

    def __repr__(self) -> str:  # never show the key
        return f"CohereReranker(model={self.model!r}, base_url={self.base_url!r})"

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankResult:
        """Raises ``TransientError("invalid_response")`` (billed) rather than return a
        ranking it could not verify."""
        if not documents:
            return RerankResult((), self.provider, self.model, search_units=0, requests=0)
        top_n = min(top_n, len(documents))
        body = await self._post(RERANK, {"model": self.model, "query": query, "documents": list(documents),
                                         "top_n": top_n, "max_tokens_per_doc": self.spec.max_tokens_per_doc})
        billed = _search_units(body.get("meta"))
        if billed is None:
            billed = self.spec.search_units(len(documents))
        try:
            ranking = _ranking(body.get("results"), len(documents), top_n)
        except TransientError as exc:
            exc.billed_units = billed  # unusable, but answered: Cohere billed it
            raise
        return RerankResult(ranking, self.provider, self.model, search_units=billed)

    async def health(self) -> tuple[bool, str]:
        """Free: reads the model's metadata (``GET /v1/models/{model}``); never raises."""
        try:
            await self._send("GET", f"/v1/models/{self.model}", timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure means "unhealthy"
            return False, scrub(str(exc) or type(exc).__name__)[:500]
        return True, f"{self.model} reachable"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("POST", path, json=payload)
        try:
            body = response.json()
        except ValueError:
            raise _invalid("a body that is not JSON", self.spec.search_units(len(payload["documents"]))) from None
        if not isinstance(body, dict):
            raise _invalid(f"{type(body).__name__}, not an object", self.spec.search_units(len(payload["documents"])))
        return body

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await http.send(self._client, PROVIDER, method, self.base_url + path, key=self._key,
                               not_found="model_not_found", **kwargs)


def _ranking(results: object, n: int, top_n: int) -> tuple[tuple[int, float], ...]:
    """``top_n`` distinct documents, each a valid position with a finite score; best first."""
    if not isinstance(results, list) or len(results) != top_n:
        raise _invalid(f"{len(results) if isinstance(results, list) else 'no'} results, expected {top_n}")
    ranking = []
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            raise _invalid(f"result index {index!r} outside 0..{n - 1}")
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            raise _invalid(f"relevance_score {score!r} is not a finite number")
        ranking.append((index, float(score)))
    if len({i for i, _ in ranking}) != len(ranking):
        raise _invalid("a document is ranked twice")
    # Cohere sends them best first; sorting again (stable) costs nothing and relies on nothing.
    return tuple(sorted(ranking, key=lambda r: -r[1]))


def _invalid(what: str, billed_units: int | None = None) -> TransientError:
    return TransientError("invalid_response", f"{PROVIDER} sent {what}", billed_units=billed_units)


def _search_units(meta: object) -> int | None:
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    units = billed.get("search_units") if isinstance(billed, dict) else None
    # Documented as a number; a whole one in practice.
    if isinstance(units, int | float) and not isinstance(units, bool) and math.isfinite(units) and units >= 0:
        return math.ceil(units)
    return None

