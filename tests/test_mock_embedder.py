"""The offline hashing embedder: stable, unit-length, and good enough to find a phrase."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from ingestflow.services.base import Embedder, EmbeddingResult
from ingestflow.services.mock import HashingEmbedder

TOPICS = [
    "Install the package on Linux with apt and configure the systemd service unit.",
    "Windows users download the installer and run setup as administrator.",
    "The chunker splits Markdown at headings and packs paragraphs into chunks.",
    "Embeddings are stored in PostgreSQL using the pgvector extension.",
    "Rate limiting uses a token bucket per provider with a refill interval.",
    "The circuit breaker opens after repeated failures and half-opens later.",
    "Budgets cap daily spend; deferred jobs wait until the budget resets.",
    "Webhooks are signed with HMAC SHA-256 over the timestamp and body.",
    "PDF parsing extracts text per page and keeps page spans for citations.",
    "The worker claims jobs with SKIP LOCKED so two workers never collide.",
    "Retries use exponential backoff with jitter and honour Retry-After.",
    "Search ranks chunks by cosine similarity between query and chunk vectors.",
    "The CLI offers doctor, costs and ingest commands for operators.",
    "Logs are structured JSON lines with a request id on every record.",
    "Metrics expose counters and histograms in the Prometheus text format.",
    "A purple elephant danced quietly under the old railway bridge at midnight.",
    "Configuration comes from environment variables validated by pydantic.",
    "Local embeddings run a small sentence transformer model on the CPU.",
    "OpenAI embeddings are batched so each request stays under the token limit.",
    "Documents are deduplicated by the SHA-256 of their bytes before parsing.",
]


def embed(texts: list[str], dimensions: int = 1536) -> np.ndarray:
    return HashingEmbedder(dimensions).embed_texts(texts)


def test_implements_the_embedder_protocol() -> None:
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder)
    assert (embedder.provider, embedder.model, embedder.dimensions) == ("mock", "mock-hashing-v2", 1536)
    assert asyncio.run(embedder.health())[0] is True


def test_embed_returns_a_full_result() -> None:
    texts = TOPICS[:5]
    result = asyncio.run(HashingEmbedder(64).embed(texts))
    assert isinstance(result, EmbeddingResult)
    assert result.vectors.shape == (5, 64) and result.vectors.dtype == np.float32
    assert (result.provider, result.model, result.dimensions) == ("mock", "mock-hashing-v2", 64)
    assert result.usage_tokens == 0 and result.requests == 0  # free: nothing billed
    assert result.requests == 0
    assert np.array_equal(result.vectors, HashingEmbedder(64).embed_texts(texts))


def test_embed_of_nothing() -> None:
    result = asyncio.run(HashingEmbedder(8).embed([]))
    assert result.vectors.shape == (0, 8) and result.usage_tokens == 0


@pytest.mark.parametrize("dimensions", [1, 2, 3, 256, 1536, 3072])
def test_unit_norm_float32_no_nan(dimensions: int) -> None:
    texts = [*TOPICS, "", "   ", "!!! ???", "a", "a a a a", "日本語のテキスト", "🎉", "x" * 10_000,
             "\ud800 lone surrogate"]
    vectors = embed(texts, dimensions)
    assert vectors.shape == (len(texts), dimensions) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_wordless_texts_share_one_fixed_unit_vector() -> None:
    vectors = embed(["", "  \n", "!?.,", "🎉"])
    assert np.abs(vectors).sum() > 0
    assert all(np.array_equal(vectors[0], v) for v in vectors[1:])
    assert np.count_nonzero(vectors[0]) == 1


def test_deterministic_within_and_across_instances() -> None:
    a = embed(TOPICS)
    assert np.array_equal(a, embed(TOPICS))
    assert np.array_equal(a, embed(list(reversed(TOPICS)))[::-1])  # batch order is irrelevant
    assert np.array_equal(a[3], embed([TOPICS[3]])[0])  # batch size is irrelevant


def test_deterministic_across_processes() -> None:
    """Python's hash() is salted per process; the embedder must not depend on it."""
    code = ("import json, sys; from ingestflow.services.mock import HashingEmbedder; "
            "v = HashingEmbedder(256).embed_texts(json.loads(sys.argv[1])); "
            "print(json.dumps(v.tolist()))")
    texts = TOPICS[:3] + [""]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    theirs = np.array(json.loads(out), dtype=np.float32)
    assert np.array_equal(theirs, embed(texts, 256))


def test_distinct_texts_get_distinct_vectors() -> None:
    texts = [*TOPICS, "dog bites man", "man bites dog", "Dog bites man", "dog  bites\nman"]
    vectors = embed(texts)
    unique = {v.tobytes() for v in vectors}
    assert len(unique) == len(texts) - 2  # case and whitespace do not matter...
    assert not np.array_equal(vectors[-4], vectors[-3])  # ...but word order does (bigrams)


def test_lowercase_and_punctuation_insensitive() -> None:
    a, b = embed(["Hello, World!", "hello world"])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("query, expected", [
    ("purple elephant", 15),
    ("SKIP LOCKED", 9),
    ("circuit breaker", 5),
    ("token bucket", 4),
    ("pgvector extension", 3),
    ("HMAC SHA-256", 7),
    ("exponential backoff with jitter", 10),
    ("sentence transformer model", 17),
])
def test_phrase_search_ranks_the_right_text_first(query: str, expected: int) -> None:
    embedder = HashingEmbedder()
    docs = embedder.embed_texts(TOPICS)
    scores = docs @ embedder.embed_texts([query])[0]
    assert int(np.argmax(scores)) == expected, TOPICS[int(np.argmax(scores))]
    assert scores[expected] > np.sort(scores)[-2] + 0.05  # a clear winner


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    a, b, c = embed(["the quick brown fox jumps over the lazy dog",
                     "the quick brown fox jumps over the sleepy cat",
                     "quarterly revenue grew in the enterprise segment"])
    assert a @ b > 0.5 > a @ c


def test_repeated_words_are_sublinear() -> None:
    once, many, other = embed(["vector", "vector " * 50 + "search", "search"])
    assert many @ once > 0.5 and many @ other > 0  # 50 repeats do not drown out one word
    assert many @ once < 1.0


def test_large_batches_are_processed_in_blocks() -> None:
    texts = [f"text number {i} about topic {i % 7}" for i in range(2500)]
    vectors = embed(texts, 64)
    assert np.array_equal(vectors[2400:], embed(texts[2400:], 64))


def test_a_shared_word_never_makes_a_score_negative() -> None:
    """v1 hashed with signs: a word shared with a text could collide with another feature of
    the opposite sign and push the score below zero. Every weight is now positive."""
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(20, 400))) for _ in range(300)]
    vectors = embed(texts, 256)  # few dimensions: many collisions
    for i, text in enumerate(texts):
        words = text.split()
        queries = [rng.choice(words), " ".join(rng.choices(words, k=3)), f"{rng.choice(words)} unrelated words"]
        scores = embed(queries, 256) @ vectors.T
        assert (scores >= 0).all()
        assert (scores[:, i] > 0).all()  # the text holding the word scores above zero
