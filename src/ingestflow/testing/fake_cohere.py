"""A fake Cohere Rerank API on loopback, speaking the real wire format.

    with FakeCohere(api_key="co-test") as fake:
        reranker = CohereReranker(api_key="co-test", base_url=fake.url)
        fake.faults.inject("429", "500")      # the next two requests fail that way

``POST /v2/rerank`` takes ``model``, ``query``, ``documents`` (strings, or objects with a
``text``), ``top_n`` and ``max_tokens_per_doc`` and answers ``id``, ``results`` [{``index``,
``relevance_score``}] best first and ``meta`` with ``billed_units.search_units``: one per
100 documents, as Cohere bills (documents are cut to ``max_tokens_per_doc``, never split).
Relevance is the mock reranker's (the share of the query's words a document holds), so
answers are deterministic. ``GET /v1/models/{model}`` is the free health check.

Refused as Cohere refuses, with ``{"message": ...}``: a missing or wrong bearer key (401),
an unknown model (404), no query, no documents, more than 10,000 documents, a ``top_n``
below 1 or a ``max_tokens_per_doc`` below 1 (400).

Faults (``faults.inject`` / ``set_rate``, or ``POST /_control/faults``): ``429`` (with
Retry-After; ``429:2`` asks for 2 s), ``500``, ``503``, ``402`` (no payment method),
``timeout`` (hang past the client's timeout), ``slow`` (answer late), ``malformed_json``,
``bad_index`` (a result outside the documents) and ``fewer_results``; the last three are
answered and billed, as the real service bills what it answered. ``faults.down`` answers
everything with 503. ``stats``: ``requests``, ``search_units_billed``, ``documents`` and
``status_<code>``; ``last_request`` holds the last rerank body.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingestflow.catalogue import RERANK_MODELS
from ingestflow.services.mock import OverlapReranker
from ingestflow.testing._server import FakeServer
from ingestflow.testing.faults import split_fault

MODELS = {m.name: m for m in RERANK_MODELS.values() if m.provider == "cohere"}
MAX_DOCUMENTS = 10_000


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


class FakeCohere(FakeServer):
    def __init__(self, *, api_key: str = "co-fake", retry_after: float = 0.1, timeout_seconds: float = 30.0,
                 slow_seconds: float = 0.5, seed: int = 0, port: int = 0) -> None:
        self.api_key = api_key
        self.retry_after = retry_after
        self.timeout_seconds = timeout_seconds
        self.slow_seconds = slow_seconds
        self.last_request: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._scorer = OverlapReranker()
        super().__init__([
            Route("/v2/rerank", self._rerank, methods=["POST"]),
            Route("/v1/models/{model}", self._model, methods=["GET"]),
            Route("/_control/stats", self._stats, methods=["GET"]),
        ], seed=seed, port=port)

    @property
    def url(self) -> str:
        return self.base

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.stats))

    async def _model(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        model = request.path_params["model"]
        if model not in MODELS:
            return _message(404, f"model '{model}' not found, make sure the correct model ID was used")
        return JSONResponse({"name": model, "endpoints": ["rerank"], "finetuned": False,
                             "context_length": MODELS[model].max_tokens_per_doc})

    async def _rerank(self, request: Request) -> Response:
        self.stats["requests"] += 1
        response = await self._answer(request)
        self.stats[f"status_{response.status_code}"] += 1
        return response

    def _denied(self, request: Request) -> Response | None:
        if self.faults.down:
            return _message(503, "service unavailable")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _message(401, "invalid api token")
        return None

    async def _answer(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        fault, arg = split_fault(self.faults.next())
        if fault == "429":
            wait = self.retry_after if arg is None else arg
            return _message(429, "You are using a Trial key, which is limited to 10 API calls / minute "
                                 "(fault injected).", {"retry-after": f"{wait:g}"})
        if fault in ("500", "503"):
            return _message(int(fault), "internal server error, this has been reported to our developers "
                                        "(fault injected)")
        if fault == "402":
            return _message(402, "Please add or update your payment method at dashboard.cohere.com (fault injected)")
        if fault == "timeout":
            await asyncio.sleep(self.timeout_seconds if arg is None else arg)
            return _message(504, "gateway timeout")
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds if arg is None else arg)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _message(400, "invalid request: could not parse the JSON body")
        if not isinstance(body, dict):
            return _message(400, "invalid request: the body must be an object")
        error, documents = self._validate(body)
        if error is not None:
            return error
        self.last_request = body
        units = -(-len(documents) // MODELS[body["model"]].documents_per_search_unit)
        with self._lock:
            self.stats["search_units_billed"] += units
            self.stats["documents"] += len(documents)
        if fault == "malformed_json":
            return Response('{"id": "x", "results": [', media_type="application/json")
        top_n = min(body.get("top_n") or len(documents), len(documents))
        ranked = await self._scorer.rerank(str(body["query"]), documents, top_n)
        results = [{"index": i, "relevance_score": round(score, 6)} for i, score in ranked.ranking]
        if fault == "bad_index":
            results[0]["index"] = len(documents)
        if fault == "fewer_results":
            results = results[:-1]
        return JSONResponse({"id": str(uuid.uuid4()), "results": results, "meta": {
            "api_version": {"version": "2", "is_experimental": False}, "billed_units": {"search_units": units}}})

    @staticmethod
    def _validate(body: dict[str, Any]) -> tuple[Response | None, list[str]]:
        model, query, raw = body.get("model"), body.get("query"), body.get("documents")
        if not model:
            return _message(400, "invalid request: model is required"), []
        if model not in MODELS:
            return _message(404, f"model '{model}' not found, make sure the correct model ID was used"), []
        if not isinstance(query, str) or not query.strip():
            return _message(400, "invalid request: query must not be empty or be only whitespace"), []
        if not isinstance(raw, list) or not raw:
            return _message(400, "invalid request: list of documents must not be empty"), []
        if len(raw) > MAX_DOCUMENTS:
            return _message(400, f"invalid request: too many documents, at most {MAX_DOCUMENTS}"), []
        documents = [d.get("text") if isinstance(d, dict) else d for d in raw]
        if not all(isinstance(d, str) for d in documents):
            return _message(400, "invalid request: each document must be a string or have a text field"), []
        for name in ("top_n", "max_tokens_per_doc"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or value < 1):
                return _message(400, f"invalid request: {name} must be at least 1"), []
        return None, documents
