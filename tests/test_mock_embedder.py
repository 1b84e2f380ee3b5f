"""The MOCK embedder: deterministic across processes, unit length, and useful for search."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np

from ingestflow.services.mock import HashingEmbedder
from ingestflow.tokens import count_tokens

TEXTS = [f"Document {i} talks about {topic} in some depth." for i, topic in enumerate([
    "volcanic eruptions and lava", "honey bee waggle dances", "glacier ice colour", "spring tides",
    "sourdough fermentation", "compost heaps", "aurora borealis", "coral reefs", "lighthouse lenses",
    "jam jar sterilisation", "tomato sunlight", "release notes", "vector databases", "budget limits",
    "circuit breakers", "rate limiting", "token counting", "markdown headings", "PDF parsing", "queues",
])]


def test_unit_length_finite_and_distinct() -> None:
    vectors = HashingEmbedder().embed_texts(TEXTS + ["", "!!!"])
    assert vectors.shape == (22, 1536) and vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({v.tobytes() for v in vectors[:20]}) == 20


def test_same_vector_in_another_process() -> None:
    here = HashingEmbedder().embed_texts(["the waggle dance of bees"])[0]
    code = ("from ingestflow.services.mock import HashingEmbedder; import sys;"
            "sys.stdout.write(HashingEmbedder().embed_texts(['the waggle dance of bees'])[0].tobytes().hex())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout
    assert np.array_equal(here, np.frombuffer(bytes.fromhex(there), dtype=np.float32))


def test_phrase_search_ranks_the_right_text_first() -> None:
    embedder = HashingEmbedder()
    docs = embedder.embed_texts(TEXTS)
    for query, expected in [("waggle dances", 1), ("aurora borealis", 6), ("circuit breakers", 14)]:
        scores = docs @ embedder.embed_texts([query])[0]
        assert int(np.argmax(scores)) == expected


def test_embed_reports_usage_and_batches_cover_inputs() -> None:
    embedder = HashingEmbedder(dimensions=64)
    result = asyncio.run(embedder.embed(["hello world", "bees"]))
    assert result.vectors.shape == (2, 64)
    assert result.usage_tokens == count_tokens("hello world") + count_tokens("bees")
    assert (result.provider, result.model, result.requests) == ("mock", "mock-hashing-v1", 0)
    ranges = embedder.batches([10] * 600)
    assert [len(r) for r in ranges] == [256, 256, 88] and ranges[-1].stop == 600
