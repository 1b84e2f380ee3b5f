"""What a paid call costs (the catalogue's prices, with this deployment's overrides) and
how much may be spent (the limits in force).

Embeddings are billed per input token (the Batch API at its own, half price), LlamaParse
per page in credits, reranking per search unit.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from ingestflow.catalogue import (
    LLAMAPARSE,
    LOCAL_MODEL,
    MOCK_MODEL,
    EmbeddingModel,
    PageParser,
    RerankModel,
    cohere_rerank_model,
    embedding_model,
    openai_model,
)
from ingestflow.config import ServiceMode, Settings
from ingestflow.services.budget import ServiceLimits

MILLION = Decimal(1_000_000)


def embedding_cost(model: EmbeddingModel, tokens: int, *, batch: bool = False) -> Decimal:
    return (model.batch_usd_per_mtok if batch else model.usd_per_mtok) * tokens / MILLION


def parse_cost(parser: PageParser, pages: int) -> Decimal:
    """Billed pages x credits per page x dollars per credit: credits are counted once."""
    return pages * parser.credits_per_page * parser.usd_per_1000_credits / 1000


def rerank_cost(model: RerankModel, search_units: int) -> Decimal:
    return model.usd_per_1000_searches * search_units / 1000


def cohere_rerank_prices(settings: Settings) -> RerankModel:
    """The configured Cohere model with COHERE_USD_PER_1000_SEARCHES applied."""
    model = cohere_rerank_model(settings.cohere_rerank_model)
    price = settings.cohere_usd_per_1000_searches
    return model if price is None else replace(model, usd_per_1000_searches=price)


def priced(model: EmbeddingModel, settings: Settings) -> EmbeddingModel:
    """The model with OPENAI_PRICE_PER_MTOK applied (the Batch API stays at half)."""
    if model.provider != "openai" or settings.openai_price_per_mtok is None:
        return model
    price = settings.openai_price_per_mtok
    return replace(model, usd_per_mtok=price, batch_usd_per_mtok=price / 2)


def embedder_spec(settings: Settings) -> EmbeddingModel:
    """The catalogue entry of the embedder the router configures, with its price (known
    without building the services: ``status`` imports no provider)."""
    if settings.embeddings_service_mode is ServiceMode.MOCK:
        return replace(embedding_model(MOCK_MODEL), dimensions=settings.mock_embedding_dimensions)
    if settings.embeddings_provider == "local":
        return embedding_model(LOCAL_MODEL)
    return priced(openai_model(settings.openai_embedding_model, settings.openai_embedding_dimensions), settings)


def llamaparse_prices(settings: Settings) -> PageParser:
    return replace(
        LLAMAPARSE,
        credits_per_page=settings.llamaparse_credits_per_page or LLAMAPARSE.credits_per_page,
        usd_per_1000_credits=settings.llamaparse_usd_per_1000_credits or LLAMAPARSE.usd_per_1000_credits,
    )


def service_limits(settings: Settings) -> dict[str, ServiceLimits]:
    """The spend limits in force per paid service: the one map from settings to limits,
    read by the budget that enforces them and by every report that shows them."""
    def dollars(value: float | None) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    return {
        "openai": ServiceLimits(dollars(settings.daily_cost_limit_openai), settings.hourly_rate_limit_openai),
        "llamaparse": ServiceLimits(dollars(settings.daily_cost_limit_llamaparse),
                                    settings.hourly_rate_limit_llamaparse),
        "cohere": ServiceLimits(dollars(settings.daily_cost_limit_cohere), settings.hourly_rate_limit_cohere),
    }


def daily_total_limit(settings: Settings) -> Decimal | None:
    value = settings.daily_cost_limit_total
    return None if value is None else Decimal(str(value))
