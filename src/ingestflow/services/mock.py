"""The MOCK embedder and reranker: deterministic, offline, and meaningful enough to demo search.

A hashed bag of lowercased word unigrams and bigrams with sublinear term frequency
(1 + log tf), normalised to unit length. Texts sharing words and phrases get close vectors,
so a search for a phrase finds the chunk that contains it.

Every weight is positive (v1 gave each feature a random sign): a word the query shares
with a text can only raise their score, never make it negative through a collision with
another feature of opposite sign. Without signs, common words would make every text look
alike, so a short list of English function words is left out, and a trailing plural "s"
is dropped ("deductibles" counts as "deductible").

Stability: words are hashed with blake2b (not Python's salted ``hash()``) and bigrams are
derived from the two word hashes with fixed 64-bit integer arithmetic, so every process and
machine computes the same vector for the same text.

Speed: Python only splits words and looks each one up in a memo (word -> 64-bit hash);
bigram hashing, term counting and vector building are a handful of numpy calls per batch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ingestflow.catalogue import MOCK_MODEL, MOCK_RERANK_MODEL, RERANK_MODELS, embedding_model
from ingestflow.services.base import EmbeddingResult, RerankResult

_WORD = re.compile(r"\w+")
_ROWS_PER_BLOCK = 1024  # bounds the dense float64 scratch to ~12 MB at 1536 dimensions
_MEMO_LIMIT = 1_000_000  # words remembered; beyond that they are hashed every time
_KEY_BITS = 48  # feature hash bits kept next to the row number when counting
_STOP_WORDS = frozenset("""
a about after all also an and any are as at be been before but by can could did do does for from had
has have he her his how i if in into is it its may me more my no not of on or our out over she should
so than that the their them then there these they this those to too up us was we were what when where
which while who why will with would you your
""".split())
_SKIPPED = 0  # the hash of a stop word: its occurrences are dropped


def _term(word: str) -> str | None:
    """A lowercased word as the mock models count it: None for a stop word, a plural's "s"
    dropped ("claims" -> "claim", not "class", "status")."""
    if word in _STOP_WORDS:
        return None
    if len(word) > 3 and word[-1] == "s" and word[-2] not in "su":
        return word[:-1]
    return word


def _word_hash(word: str) -> int:
    """Stable 64-bit hash of a word (blake2b, identical in every process)."""
    term = _term(word)
    if term is None:
        return _SKIPPED
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8)
                          .digest(), "little")


class _WordHashes(dict[str, int]):
    """Memo word -> hash (``_SKIPPED`` for a stop word); ``__missing__`` keeps the hot path
    a C-level dict lookup."""

    def __missing__(self, word: str) -> int:
        value = _word_hash(word)
        if len(self) < _MEMO_LIMIT:
            self[word] = value
        return value


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the bits of a combined hash (wrapping uint64 math)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class HashingEmbedder:
    """Feature-hashing embedder implementing the ``Embedder`` protocol, fully offline."""

    provider = "mock"
    model = MOCK_MODEL

    def __init__(self, dimensions: int = 1536) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        self.dimensions = dimensions
        self.spec = replace(embedding_model(self.model), dimensions=dimensions)
        self._hashes = _WordHashes()
        # Texts without any word get this fixed unit vector: the hashed empty string.
        self._empty = self._unit_from_hash(_word_hash(""))

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """Free: no usage is billed, so none is counted (and no tokenizer is loaded)."""
        return EmbeddingResult(self.embed_texts(list(texts)), self.provider, self.model,
                               self.dimensions, usage_tokens=0, requests=0)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def health(self) -> tuple[bool, str]:
        return True, "offline, deterministic"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dimensions), row i = texts[i]."""
        texts = list(texts)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for first in range(0, len(texts), _ROWS_PER_BLOCK):
            block = texts[first:first + _ROWS_PER_BLOCK]
            out[first:first + len(block)] = self._embed_block(block)
        return out

    def _embed_block(self, texts: list[str]) -> np.ndarray:
        rows, features = self._features(texts)
        keys, tf = self._term_counts(rows, features)
        vectors = self._hashed_vectors(len(texts), keys, tf)
        norms = np.linalg.norm(vectors, axis=1)
        blank = norms == 0  # no words but stop words
        vectors[blank] = self._empty
        norms[blank] = 1.0
        return (vectors / norms[:, None]).astype(np.float32)

    def _features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row number and 64-bit hash of every unigram and bigram occurrence."""
        lookup = self._hashes.__getitem__
        hashes: list[int] = []
        lengths: list[int] = []
        for text in texts:
            words = _WORD.findall(text.lower())
            hashes.extend(map(lookup, words))
            lengths.append(len(words))
        unigrams = np.array(hashes, dtype=np.uint64)
        rows = np.repeat(np.arange(len(texts), dtype=np.uint64), lengths)
        kept = unigrams != _SKIPPED  # bigrams join the words either side of a stop word
        unigrams, rows = unigrams[kept], rows[kept]
        same_row = rows[:-1] == rows[1:]  # a bigram never spans two texts
        with np.errstate(over="ignore"):
            bigrams = _mix(unigrams[:-1][same_row] * np.uint64(0x9E3779B97F4A7C15)
                           + (unigrams[1:][same_row] ^ np.uint64(0xD6E8FEB86659FD93)))
        return np.concatenate([rows, rows[:-1][same_row]]), np.concatenate([unigrams, bigrams])

    @staticmethod
    def _term_counts(rows: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (row, feature) keys and how often each occurs: one sort for the block."""
        keys = (rows << np.uint64(_KEY_BITS)) | (features >> np.uint64(64 - _KEY_BITS))
        return np.unique(keys, return_counts=True)

    def _hashed_vectors(self, n_rows: int, keys: np.ndarray, tf: np.ndarray) -> np.ndarray:
        """Dense (n_rows, dimensions) float64 sums of sublinear term weights."""
        feature = keys & np.uint64((1 << _KEY_BITS) - 1)
        index = (feature % np.uint64(self.dimensions)).astype(np.int64)
        weight = 1.0 + np.log(tf)
        flat = (keys >> np.uint64(_KEY_BITS)).astype(np.int64) * self.dimensions + index
        dense = np.bincount(flat, weights=weight, minlength=n_rows * self.dimensions)
        return dense.reshape(n_rows, self.dimensions)

    def _unit_from_hash(self, value: int) -> np.ndarray:
        vector = np.zeros(self.dimensions, dtype=np.float64)
        vector[(value >> (64 - _KEY_BITS)) % self.dimensions] = 1.0
        return vector


class OverlapReranker:
    """The MOCK ``Reranker``: a passage's relevance is the share of the query's distinct
    words (counted as the embedder counts them) that it holds. Free and deterministic; ties
    keep the order the passages came in (the fused order)."""

    provider = "mock"
    model = MOCK_RERANK_MODEL
    spec = RERANK_MODELS[MOCK_RERANK_MODEL]

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankResult:
        wanted = _terms(query)
        scores = [len(wanted & _terms(d)) / len(wanted) if wanted else 0.0 for d in documents]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])[:top_n]
        return RerankResult(tuple((i, scores[i]) for i in order), self.provider, self.model,
                            search_units=0, requests=0)

    async def health(self) -> tuple[bool, str]:
        return True, "offline, deterministic"

    async def aclose(self) -> None:
        """Nothing to release."""


def _terms(text: str) -> set[str]:
    return {t for t in map(_term, _WORD.findall(text.lower())) if t is not None}
