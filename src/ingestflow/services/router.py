"""The service router: which parser and embedder serve each mode, and how they are guarded.

- MOCK: the deterministic hashing embedder and the free local parser; no network at all.
- REAL: the configured provider behind its guard (breaker, shared rate limiter, budget,
  retries). Failures surface as classified errors: retried or deferred, never faked.
- HYBRID: the same real provider, plus a fallback (mock embedder / local parser) that the
  pipeline uses when the real one is unhealthy or out of budget. Fallback vectors go to
  the fallback's own embedding space and the document is marked degraded until the
  repair re-embeds it with the real model.

The reranker (RERANK_PROVIDER, off by default) follows RERANK_MODE the same way, but a
search never waits for it to recover: in REAL and HYBRID alike, a reranker that cannot
answer leaves the fused order in place (operations/reranking.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property, partial
from typing import TYPE_CHECKING

from ingestflow.catalogue import MOCK_MODEL, EmbeddingModel, embedding_model, openai_model
from ingestflow.config import ServiceMode, Settings
from ingestflow.services.base import CallbackParser, Embedder, Parser, Reranker
from ingestflow.services.breaker import CircuitBreaker
from ingestflow.services.budget import Budget
from ingestflow.services.costs import (
    cohere_rerank_prices,
    daily_total_limit,
    embedder_spec,
    embedding_cost,
    llamaparse_prices,
    parse_cost,
    rerank_cost,
    service_limits,
)
from ingestflow.services.guard import Pricing, ServiceGuard
from ingestflow.services.local_parser import LocalParser
from ingestflow.services.ratelimit import MAX_WAIT_SECONDS, RateLimiter, RateLimits
from ingestflow.services.retry import RetryPolicy
from ingestflow.services.webhooks import job_secret
from ingestflow.store.database import Database

if TYPE_CHECKING:
    from ingestflow.services.llamaparse import LlamaParseParser
    from ingestflow.services.openai_batch import OpenAIBatchClient

# A person waits on a search, so its reranking call waits at most this long for a slot
# under RATE_LIMIT_RPM_COHERE, and a retry at most RERANK_RETRY_CAP_SECONDS (a provider's
# Retry-After, four times that: retry.py); past that the search answers in the fused order.
RERANK_MAX_WAIT_SECONDS = 5.0
RERANK_RETRY_CAP_SECONDS = 1.0


@dataclass(frozen=True)
class ParseCallbacks:
    """LlamaParse posts results to this deployment's API instead of being waited on."""

    parser: CallbackParser
    base_url: str  # the API's public address
    master_secret: str
    poll_seconds: float  # a waiting job polls this often in case the callback is lost
    timeout_seconds: float  # a job with no result by then is submitted again

    def url(self, key: uuid.UUID) -> str:
        return f"{self.base_url.rstrip('/')}/v1/webhooks/llamaparse?job={key}"

    def secret(self, key: uuid.UUID) -> str:
        return job_secret(self.master_secret, str(key))


@dataclass(frozen=True)
class SpaceModel:
    """What fills or queries one embedding space: its embedder and the guard of its calls."""

    embedder: Embedder
    guard: ServiceGuard


@dataclass(frozen=True)
class Reranking:
    """What reranks a search's candidates, and the guard of its calls."""

    reranker: Reranker
    guard: ServiceGuard


@dataclass(frozen=True)
class BatchEmbedding:
    """The OpenAI Batch API for the configured model: half price, results within a day."""

    client: OpenAIBatchClient
    guard: ServiceGuard  # retries and breaker for its calls; the budget is reserved per batch
    cost: Callable[[int], Decimal]  # the batch price of so many tokens
    poll_seconds: float


@dataclass(frozen=True)
class Services:
    parser: Parser
    make_embedder: Callable[[], Embedder]  # see ``embedder``
    parse_guard: ServiceGuard
    embed_guard: ServiceGuard
    parser_fallback: Parser | None = None  # HYBRID only
    embedder_fallback: Embedder | None = None  # HYBRID only
    budget: Budget | None = None
    callbacks: ParseCallbacks | None = None  # LLAMAPARSE_WEBHOOK_URL is set
    # Another model's space (a tenant's active space after a model change), if this
    # deployment can embed with it; see ``for_space``.
    make_space_model: Callable[[str, str, int], SpaceModel | None] = lambda *_: None
    # The catalogue entry of ``embedder``, known without building it (so without numpy or
    # the OpenAI SDK): its provider, model and dimensions name its space.
    embedder_spec: EmbeddingModel = embedding_model(MOCK_MODEL)
    make_batch: Callable[[], BatchEmbedding | None] = lambda: None  # see ``batch``
    batch_available: bool = False  # whether ``batch`` will be a client
    batch_mode: str = "off"  # EMBEDDING_BATCH_API: off | on | auto
    batch_auto_backlog: int = 0  # auto: queued documents from which the Batch API is used
    make_reranking: Callable[[], Reranking | None] = lambda: None  # see ``reranking``

    @cached_property
    def embedder(self) -> Embedder:
        """Built on first use: a command that never embeds (``status``, a no-op re-ingest)
        loads neither numpy for the mock nor the OpenAI SDK."""
        return self.make_embedder()

    @cached_property
    def reranking(self) -> Reranking | None:
        """The reranker and its guard, built on first use (the mock loads numpy); None with
        RERANK_PROVIDER=none: searches are not reranked."""
        return self.make_reranking()

    @cached_property
    def batch(self) -> BatchEmbedding | None:
        """The Batch API client, when the configured embedder is OpenAI in REAL or HYBRID."""
        return self.make_batch()

    async def aclose(self) -> None:
        """Close every client built so far (the SDKs' connection pools)."""
        built = self.__dict__
        embedders = [built.get("embedder"), self.embedder_fallback,
                     *(m.embedder for m in built.get("_space_models", {}).values() if m is not None)]
        reranking = built.get("reranking")
        others = (self.parser, self.parser_fallback, reranking.reranker if reranking else None)
        for service in {id(s): s for s in (*embedders, *others) if s is not None}.values():
            await service.aclose()
        if built.get("batch") is not None:
            await built["batch"].client.aclose()

    def for_space(self, provider: str, model: str, dimensions: int) -> SpaceModel | None:
        """The embedder of a space and its guard; None when this deployment cannot embed
        with that model (MOCK mode and a real model, no key, a model not installed)."""
        embedder = self.embedder
        if (provider, model, dimensions) == (embedder.provider, embedder.model, embedder.dimensions):
            return SpaceModel(embedder, self.embed_guard)
        cache = self.__dict__.setdefault("_space_models", {})
        key = (provider, model, dimensions)
        if key not in cache:
            cache[key] = self.make_space_model(provider, model, dimensions)
        return cache[key]


def mock_embedder(settings: Settings) -> Embedder:
    from ingestflow.services.mock import HashingEmbedder

    return HashingEmbedder(dimensions=settings.mock_embedding_dimensions)


def real_embedder(settings: Settings) -> Embedder:
    if settings.embeddings_provider == "local":
        from ingestflow.services.local_embedder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(settings.home)
    from ingestflow.services.openai_embedder import OpenAIEmbedder

    assert settings.openai_api_key is not None  # enforced by Settings validation
    return OpenAIEmbedder(
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.openai_embedding_model,
        dimensions=settings.openai_embedding_dimensions,
        base_url=settings.openai_api_url,
        timeout=settings.openai_timeout_seconds,
    )


def batch_available(settings: Settings) -> bool:
    return settings.embeddings_service_mode is not ServiceMode.MOCK and settings.embeddings_provider == "openai"


def batch_embedding(settings: Settings) -> BatchEmbedding | None:
    if not batch_available(settings):
        return None
    from ingestflow.services.openai_batch import OpenAIBatchClient

    assert settings.openai_api_key is not None  # enforced by Settings validation
    client = OpenAIBatchClient(
        api_key=settings.openai_api_key.get_secret_value(), model=settings.openai_embedding_model,
        dimensions=settings.openai_embedding_dimensions, base_url=settings.openai_api_url,
        timeout=settings.openai_timeout_seconds)
    spec = embedder_spec(settings)
    return BatchEmbedding(client, ServiceGuard("openai_batch", call_retry(settings)),
                          lambda n: embedding_cost(spec, n, batch=True),
                          settings.embedding_batch_poll_seconds)


def llamaparse(settings: Settings) -> LlamaParseParser:
    from ingestflow.services.llamaparse import LlamaParseParser

    assert settings.llamaparse_api_key is not None  # enforced by Settings validation
    return LlamaParseParser(
        api_key=settings.llamaparse_api_key.get_secret_value(),
        base_url=settings.llamaparse_base_url,
        timeout=settings.llamaparse_timeout_seconds,
    )


def parse_callbacks(settings: Settings, parser: LlamaParseParser) -> ParseCallbacks | None:
    secret = settings.llamaparse_webhook_secret
    if not settings.llamaparse_webhook_url or secret is None:
        return None
    return ParseCallbacks(parser, settings.llamaparse_webhook_url, secret.get_secret_value(),
                          settings.llamaparse_poll_seconds, settings.llamaparse_timeout_seconds)


def reranker(settings: Settings) -> Reranker | None:
    if settings.rerank_provider == "none":
        return None
    if settings.rerank_service_mode is ServiceMode.MOCK:
        from ingestflow.services.mock import OverlapReranker

        return OverlapReranker()
    from ingestflow.services.cohere_reranker import CohereReranker

    assert settings.cohere_api_key is not None  # enforced by Settings validation
    return CohereReranker(api_key=settings.cohere_api_key.get_secret_value(), model=settings.cohere_rerank_model,
                          base_url=settings.cohere_base_url, timeout=settings.cohere_timeout_seconds)


def call_retry(settings: Settings) -> RetryPolicy:
    """How a failed provider call is retried (the guard's one retry layer)."""
    return RetryPolicy(attempts=settings.call_retry_attempts, base_seconds=settings.call_retry_base_seconds,
                       cap_seconds=settings.call_retry_cap_seconds)


def build_budget(settings: Settings, db: Database) -> Budget:
    return Budget(db, limits=service_limits(settings), daily_total_usd=daily_total_limit(settings),
                  enforce=settings.cost_tracking_enabled, alert_ratio=settings.cost_alert_ratio)


def build_services(settings: Settings, db: Database, *, owner: str) -> Services:
    retry = call_retry(settings)
    budget = build_budget(settings, db)

    def paid_guard(service: str, pricing: Pricing, limits: RateLimits, *, policy: RetryPolicy = retry,
                   max_wait_seconds: float = MAX_WAIT_SECONDS) -> ServiceGuard:
        return ServiceGuard(
            service, policy, pricing=pricing, budget=budget,
            limiter=RateLimiter(db, service, limits, max_wait_seconds=max_wait_seconds),
            breaker=CircuitBreaker(db, service, owner=owner,
                                   failure_threshold=settings.breaker_failure_threshold,
                                   failure_rate=settings.breaker_failure_rate,
                                   min_calls=settings.breaker_min_calls,
                                   cooldown_seconds=settings.breaker_cooldown_seconds),
        )

    def openai_guard(spec: EmbeddingModel) -> ServiceGuard:
        return paid_guard("openai", Pricing(spec.name, "tokens", lambda n: embedding_cost(spec, n)),
                          RateLimits(settings.rate_limit_rpm_openai, settings.rate_limit_tpm_openai))

    free = ServiceGuard("local", retry)
    embed_mode, parse_mode = settings.embeddings_service_mode, settings.parser_service_mode

    if embed_mode is ServiceMode.MOCK:
        make_embedder, embed_guard = partial(mock_embedder, settings), free
    else:
        make_embedder, embed_guard = partial(real_embedder, settings), free
        if settings.embeddings_provider == "openai":
            embed_guard = openai_guard(embedder_spec(settings))

    def space_model(provider: str, model: str, dimensions: int) -> SpaceModel | None:
        """Another model than the configured one: the tenant's old space during a switch."""
        if provider == "mock":
            from ingestflow.services.mock import HashingEmbedder

            return SpaceModel(HashingEmbedder(dimensions=dimensions), free)
        if embed_mode is ServiceMode.MOCK:
            return None  # offline: no real model is called
        if provider == "local":
            from ingestflow.services.local_embedder import SentenceTransformerEmbedder

            local = SentenceTransformerEmbedder(settings.home)
            return SpaceModel(local, free) if (local.model, local.dimensions) == (model, dimensions) else None
        if provider != "openai" or settings.openai_api_key is None:
            return None
        from ingestflow.services.openai_embedder import OpenAIEmbedder

        try:
            spec = openai_model(model, dimensions)
        except ValueError:
            return None
        openai_embedder = OpenAIEmbedder(
            api_key=settings.openai_api_key.get_secret_value(), model=model, dimensions=dimensions,
            base_url=settings.openai_api_url, timeout=settings.openai_timeout_seconds)
        # OPENAI_PRICE_PER_MTOK prices the configured model; an old one keeps the catalogue's.
        return SpaceModel(openai_embedder, openai_guard(spec))

    callbacks = None
    if parse_mode is ServiceMode.MOCK or settings.parser_provider == "local":
        parser, parse_guard = LocalParser(), free
    else:
        parser = llamaparse(settings)
        callbacks = parse_callbacks(settings, parser)
        pages = llamaparse_prices(settings)
        parse_guard = paid_guard(
            "llamaparse", Pricing("llamaparse", "pages", lambda n: parse_cost(pages, n)),
            RateLimits(settings.rate_limit_rpm_llamaparse, None),
        )

    def reranking() -> Reranking | None:
        rerank = reranker(settings)
        if rerank is None or rerank.provider != "cohere":
            return None if rerank is None else Reranking(rerank, free)
        prices = cohere_rerank_prices(settings)
        return Reranking(rerank, paid_guard(
            "cohere", Pricing(prices.name, "search_units", lambda n: rerank_cost(prices, n)),
            RateLimits(settings.rate_limit_rpm_cohere, None), max_wait_seconds=RERANK_MAX_WAIT_SECONDS,
            policy=replace(retry, cap_seconds=min(retry.cap_seconds, RERANK_RETRY_CAP_SECONDS)),
        ))

    return Services(
        parser=parser,
        make_embedder=make_embedder,
        parse_guard=parse_guard,
        embed_guard=embed_guard,
        parser_fallback=LocalParser() if parse_mode is ServiceMode.HYBRID and parser.name != "local" else None,
        embedder_fallback=mock_embedder(settings) if embed_mode is ServiceMode.HYBRID else None,
        budget=budget,
        callbacks=callbacks,
        make_space_model=space_model,
        embedder_spec=embedder_spec(settings),
        make_batch=partial(batch_embedding, settings),
        batch_available=batch_available(settings),
        batch_mode=settings.embedding_batch_api,
        batch_auto_backlog=settings.embedding_batch_auto_backlog,
        make_reranking=reranking,
    )
