"""What each paid service, embedding model and reranking model is: sizes, limits,
tokenizer and prices; and the search modes, which the CLI, the API and the settings all offer.

One entry per model. The chunker caps chunks by the chosen model, the request packer and
the fake OpenAI server enforce the same per-request limits, the cost table and the config
validation read the prices, and ``doctor`` shows them. Prices follow the providers'
public lists (late 2026, see ../shared/PROVIDERS.md); settings may override them.

This module imports nothing of ingestflow's, so that any layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

# hybrid: nearest vectors and keyword matches, fused; vector or keyword: one list alone.
SearchMode = Literal["hybrid", "vector", "keyword"]

CL100K = "cl100k_base"  # every OpenAI embedding model's tokenizer
WORDPIECE = "bert-wordpiece"  # sentence-transformers' BERT models


@dataclass(frozen=True)
class EmbeddingModel:
    provider: str
    name: str
    dimensions: int
    max_input_tokens: int  # per input, counted by the model's own tokenizer
    tokenizer: str
    shortenable: bool = False  # accepts a smaller ``dimensions``
    max_inputs_per_request: int | None = None
    max_tokens_per_request: int | None = None
    usd_per_mtok: Decimal = Decimal(0)  # synchronous price per million input tokens
    batch_usd_per_mtok: Decimal = Decimal(0)  # OpenAI Batch API price (half)
    # Search with this model's vectors, chosen on bench/retrieval.py (settings
    # SEARCH_VECTOR_WEIGHT and SEARCH_MIN_SCORE override them): a hybrid score's share of
    # cosine similarity (the rest is keyword relevance) when the keyword list is flat
    # (vector_weight) and when its best match stands clearly above its fifth
    # (vector_weight_min; search.sql's evidence), and the least score a hit of a hybrid
    # (min_score) or a vector search (min_similarity) has: below it, no answer.
    # Cosines differ by model. The defaults are a semantic model's (the local one's);
    # OpenAI's were not measured (no network here), so they get no threshold.
    vector_weight: float = 0.7
    vector_weight_min: float = 0.1
    min_score: float = 0.0
    min_similarity: float = 0.0
    # Chunk size and overlap (cl100k tokens, the context line included) when CHUNK_MAX_TOKENS
    # and CHUNK_OVERLAP_TOKENS are not set: chosen per model on bench/retrieval.py
    # --chunk-sizes (mock 384/48, local 127/15); OpenAI's, not measurable offline, stay 512/64.
    chunk_tokens: int = 512
    chunk_overlap_tokens: int = 64

    @property
    def max_chunk_tokens(self) -> int:
        """The largest chunk, in cl100k_base tokens (the chunker's unit), that fits one
        input. For a WordPiece model this is half its limit less [CLS] and [SEP]: a cl100k
        token is rarely more than two word pieces, and the embedder refuses (never
        truncates) an input that still does not fit."""
        if self.tokenizer == CL100K:
            return self.max_input_tokens
        return (self.max_input_tokens - 2) // 2


def _openai(name: str, dimensions: int, usd_per_mtok: str, *, shortenable: bool) -> EmbeddingModel:
    return EmbeddingModel(
        provider="openai", name=name, dimensions=dimensions,
        # The API documents 8192 tokens per input; one of margin, as pgai keeps.
        max_input_tokens=8191, tokenizer=CL100K, shortenable=shortenable,
        max_inputs_per_request=2048, max_tokens_per_request=300_000,
        usd_per_mtok=Decimal(usd_per_mtok), batch_usd_per_mtok=Decimal(usd_per_mtok) / 2,
    )


LOCAL_MODEL = "all-MiniLM-L6-v2"  # the sentence-transformers model packaged for offline use
MOCK_MODEL = "mock-hashing-v2"  # v1 hashed with signs: its vectors are another space
EMBEDDING_MODELS: dict[str, EmbeddingModel] = {m.name: m for m in (
    _openai("text-embedding-3-small", 1536, "0.02", shortenable=True),
    _openai("text-embedding-3-large", 3072, "0.13", shortenable=True),
    _openai("text-embedding-ada-002", 1536, "0.10", shortenable=False),
    # max_seq_length of the sentence-transformers model; inputs per call bound memory.
    EmbeddingModel(provider="local", name=LOCAL_MODEL, dimensions=384,
                   max_input_tokens=256, tokenizer=WORDPIECE, max_inputs_per_request=64,
                   chunk_tokens=127, chunk_overlap_tokens=15,
                   vector_weight=0.7, vector_weight_min=0.1, min_score=0.21, min_similarity=0.29),
    # Mirrors OpenAI's input limit, so MOCK accepts what REAL will. Its hashed words know
    # no meaning: keyword relevance carries most of a hybrid score.
    EmbeddingModel(provider="mock", name=MOCK_MODEL, dimensions=1536,
                   max_input_tokens=8191, tokenizer=CL100K, max_inputs_per_request=256,
                   chunk_tokens=384, chunk_overlap_tokens=48,
                   vector_weight=0.4, vector_weight_min=0.1, min_score=0.05, min_similarity=0.09),
)}


# No chunk is ever larger than the largest input any model takes.
MAX_CHUNK_TOKENS = max(m.max_chunk_tokens for m in EMBEDDING_MODELS.values())


def embedding_model(name: str) -> EmbeddingModel:
    try:
        return EMBEDDING_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown embedding model {name!r}; known: {', '.join(EMBEDDING_MODELS)}") from None


@dataclass(frozen=True)
class PageParser:
    name: str
    credits_per_page: Decimal  # the tier's credits per page
    usd_per_1000_credits: Decimal


LLAMAPARSE = PageParser("llamaparse", credits_per_page=Decimal(3), usd_per_1000_credits=Decimal("1.25"))


def openai_model(name: str, dimensions: int | None = None) -> EmbeddingModel:
    """The catalogue entry of an OpenAI model, shortened to ``dimensions`` if asked."""
    model = EMBEDDING_MODELS.get(name)
    if model is None or model.provider != "openai":
        known = ", ".join(m.name for m in EMBEDDING_MODELS.values() if m.provider == "openai")
        raise ValueError(f"unknown OpenAI embedding model {name!r}; known: {known}")
    if dimensions is None or dimensions == model.dimensions:
        return model
    if not model.shortenable or not 1 <= dimensions <= model.dimensions:
        raise ValueError(f"{name} cannot return {dimensions} dimensions")
    return replace(model, dimensions=dimensions)


@dataclass(frozen=True)
class RerankModel:
    """A reranking model, billed per search unit: one query with up to
    ``documents_per_search_unit`` documents, each cut to ``max_tokens_per_doc`` tokens (sent
    explicitly, so that no document is split and counted twice)."""

    provider: str
    name: str
    usd_per_1000_searches: Decimal = Decimal(0)
    documents_per_search_unit: int = 100
    max_tokens_per_doc: int = 4096  # Rerank 3.5's context, and the API's default

    def search_units(self, documents: int) -> int:
        """What a request reranking ``documents`` is billed: the exact estimate reserved."""
        return -(-documents // self.documents_per_search_unit) if documents else 0


MOCK_RERANK_MODEL = "mock-overlap-v1"
RERANK_MODELS: dict[str, RerankModel] = {m.name: m for m in (
    # Cohere's list price, $2.00 per 1,000 searches, for each model of the Rerank 3 family.
    RerankModel("cohere", "rerank-v3.5", Decimal("2.00")),
    RerankModel("cohere", "rerank-english-v3.0", Decimal("2.00")),
    RerankModel("cohere", "rerank-multilingual-v3.0", Decimal("2.00")),
    RerankModel("mock", MOCK_RERANK_MODEL),
)}


def cohere_rerank_model(name: str) -> RerankModel:
    model = RERANK_MODELS.get(name)
    if model is None or model.provider != "cohere":
        known = ", ".join(m.name for m in RERANK_MODELS.values() if m.provider == "cohere")
        raise ValueError(f"unknown Cohere rerank model {name!r}; known: {known}")
    return model
