"""The MOCK embedder: deterministic, offline, and meaningful enough to demo search.

A signed, hashed bag of lowercased word unigrams and bigrams (sublinear term frequency),
normalised to unit length. Texts sharing words and phrases get close vectors, so a search
for a phrase finds the chunk that contains it. Hashing uses CRC-32 (fast, stable), not
Python's salted ``hash()``, so every process and machine computes the same vector.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ingestflow.services.base import EmbeddingResult
from ingestflow.tokens import encoding

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_BATCH = 256


class HashingEmbedder:
    provider = "mock"
    model = "mock-hashing-v1"

    def __init__(self, dimensions: int = 1536) -> None:
        self.dimensions = dimensions
        self._features: dict[str, int] = {}  # feature -> signed bucket, memoised

    def batches(self, token_counts: Sequence[int]) -> list[range]:
        n = len(token_counts)
        return [range(i, min(i + MAX_BATCH, n)) for i in range(0, n, MAX_BATCH)]

    def _feature(self, feature: str) -> int:
        """Signed bucket of a feature: index in [0, dimensions), sign in the top bit."""
        hit = self._features.get(feature)
        if hit is None:
            digest = zlib.crc32(feature.encode())
            hit = digest % self.dimensions if digest >> 31 else -1 - digest % self.dimensions
            if len(self._features) < 2_000_000:
                self._features[feature] = hit
        return hit

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        buckets: list[int] = []
        freqs: list[int] = []
        feature = self._feature
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            counts = Counter(words)
            counts.update(map(" ".join, zip(words, words[1:])))
            if not counts:
                counts = Counter({"\x00empty": 1})  # a fixed unit vector, never a zero vector
            rows.extend([row] * len(counts))
            buckets.extend(map(feature, counts.keys()))
            freqs.extend(counts.values())
        signed = np.asarray(buckets, dtype=np.int64)
        negative = signed < 0
        index = np.where(negative, -1 - signed, signed)
        weight = (1.0 + np.log(np.asarray(freqs, dtype=np.float64))) * np.where(negative, -1.0, 1.0)
        flat = np.asarray(rows, dtype=np.int64) * self.dimensions + index
        out = np.bincount(flat, weights=weight, minlength=len(texts) * self.dimensions)
        out = out.reshape(len(texts), self.dimensions).astype(np.float32)
        norms = np.linalg.norm(out, axis=1)
        zero = norms == 0  # features cancelled out exactly: use the fixed vector
        if zero.any():
            out[zero, abs(feature("\x00empty")) % self.dimensions] = 1.0
            norms[zero] = 1.0
        return out / norms[:, None]

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        tokens = sum(len(t) for t in encoding().encode_ordinary_batch(list(texts))) if texts else 0
        return EmbeddingResult(self.embed_texts(texts), self.provider, self.model, self.dimensions,
                               usage_tokens=tokens, requests=0)

    async def health(self) -> tuple[bool, str]:
        return True, "offline, deterministic"
