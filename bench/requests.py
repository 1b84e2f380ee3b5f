"""Embedding requests against the minimum, for several corpus shapes (issue 9).

    .venv/bin/python bench/requests.py

REAL mode against the fake OpenAI on loopback (text-embedding-3-small: at most 2,048
inputs and 300,000 tokens per request), one in-process worker, a fresh database per
shape: the generated 232-page PDF; 1,000 one-chunk documents; 10,000 of them; and a mix
(the PDF, 40 sectioned documents of 10 to 60 chunks, 2,000 one-chunk documents). The
minimum is what the per-request limits allow for the chunks and tokens stored. Prints
requests, minimum and their ratio (the goal: at most 1.05); nothing is asserted.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import psycopg
from pydantic import SecretStr

from ingestflow.catalogue import openai_model
from ingestflow.config import ServiceMode, Settings
from ingestflow.operations.documents import submit_paths
from ingestflow.runtime import open_runtime
from ingestflow.testing.fake_openai import FakeOpenAI
from support import fresh_database, make_pdf, small_docs, temporary_home

KEY = "sk-bench-requests"


def sectioned(folder: Path, n: int) -> None:
    """``n`` Markdown documents of 10 to 60 sections, one chunk each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"guide-{i:03}.md").write_text("\n\n".join(
            f"# Part {p}\n\n" + " ".join(f"Step {p}.{s} of guide {i} checks valve {(i * p + s) % 50}." for s in range(30))
            for p in range(10 + (i * 13) % 51)))


async def run(s: Settings, folder: Path, fake: FakeOpenAI) -> tuple[int, int, int, float]:
    """(requests, chunks, tokens, seconds) of one ingest."""
    before = fake.stats["requests"]
    async with open_runtime(s) as rt:
        started = time.perf_counter()
        done = await submit_paths(rt, [folder], "bench")
        await rt.drain([d.registration.document_id for d in done if d.registration]).run()
        seconds = time.perf_counter() - started
    with psycopg.connect(s.database_url.get_secret_value()) as conn:  # type: ignore[union-attr]
        chunks, tokens = conn.execute("SELECT count(*), coalesce(sum(token_count), 0) FROM chunks").fetchone()
    return fake.stats["requests"] - before, chunks, tokens, seconds


def main() -> None:
    spec = openai_model("text-embedding-3-small")
    with temporary_home() as tmp, FakeOpenAI(api_key=KEY, rpm=None, tpm=None) as fake:
        work = Path(tmp)
        base = Settings(ingestflow_home=work / "home", log_level="WARNING", service_mode=ServiceMode.REAL,
                        openai_api_key=SecretStr(KEY), openai_api_url=fake.url, daily_cost_limit_openai=None,
                        hourly_rate_limit_openai=None)
        shapes = {"one 232-page PDF": work / "pdf", "1,000 one-chunk documents": work / "small",
                  "10,000 one-chunk documents": work / "many", "a mix": work / "mix"}
        (work / "pdf").mkdir()
        make_pdf(work / "pdf" / "report.pdf")
        small_docs(work / "small", 1000)
        small_docs(work / "many", 10_000)
        (work / "mix").mkdir()
        make_pdf(work / "mix" / "report.pdf")
        sectioned(work / "mix", 40)
        small_docs(work / "mix", 2000)
        for label, folder in shapes.items():
            s = base.model_copy(update={"database_url": SecretStr(fresh_database(base))})
            requests, chunks, tokens, seconds = asyncio.run(run(s, folder, fake))
            inputs = min(spec.max_inputs_per_request or chunks, s.embedding_batch_size)
            minimum = max(math.ceil(chunks / inputs), math.ceil(tokens / (spec.max_tokens_per_request or tokens)))
            print(f"{label:<28} {chunks:>6} chunks {tokens:>9} tokens  requests {requests:>3}  minimum {minimum:>3}  "
                  f"ratio {requests / minimum:.2f}  ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
