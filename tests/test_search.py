"""Search on the real database: keyword, vector and hybrid modes, citations, hostile queries,
vector spaces kept apart, and the text search configuration (SEARCH_LANGUAGE)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import auth, make_key
from ingestflow.api import create_app
from ingestflow.catalogue import EMBEDDING_MODELS, MOCK_MODEL
from ingestflow.config import ConfigError, ServiceMode, Settings
from ingestflow.operations.bounds import MAX_QUERY_CHARS, MODES
from ingestflow.operations.errors import Refused
from ingestflow.services.mock import HashingEmbedder
from ingestflow.store.sql import query
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real, write_docs
from support import SAMPLES, find, ingest, run_cli, search, sql, start_worker


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def names(hits: list) -> set[str]:  # type: ignore[type-arg]
    return {Path(h.source_name).name for h in hits}


def test_every_mode_respects_tenants_filters_versions_and_deletes(settings: Settings, tmp_path: Path) -> None:
    orchard = write(tmp_path / "acme", "orchard.md", "# Orchard\n\nThe quincunx layout spaces the apple trees.\n")
    write(tmp_path / "acme", "shears.txt", "Pruning shears need oiling after rain.\n")
    write(tmp_path / "globex", "vault.md", "# Vault\n\nThe zorbifex protocol opens the vault at dawn.\n")
    ingest(settings, [tmp_path / "acme"], tenant="acme")
    ingest(settings, [tmp_path / "globex"], tenant="globex")
    for mode in MODES:
        assert "vault.md" not in names(search(settings, "zorbifex protocol vault", tenant="acme", mode=mode))
        assert names(search(settings, "zorbifex protocol vault", tenant="globex", mode=mode)) == {"vault.md"}
    assert names(search(settings, "quincunx", tenant="acme", mode="keyword")) == {"orchard.md"}
    for filters in ({"source_name": "shears.txt"}, {"mime": "text/plain"}):
        assert search(settings, "quincunx", tenant="acme", mode="keyword", **filters) == []
    (shears,) = sql(settings, "SELECT id FROM documents WHERE source_name LIKE '%%shears.txt'")[0]
    assert names(search(settings, "quincunx", tenant="acme", mode="hybrid", document_ids=[shears])) <= {"shears.txt"}
    assert search(settings, "quincunx", tenant="acme", mode="keyword", document_ids=[shears]) == []

    orchard.write_text("# Orchard\n\nThe hedgerow layout shelters the pear trees.\n")  # version 2
    ingest(settings, [orchard], tenant="acme")
    assert search(settings, "quincunx", tenant="acme", mode="keyword") == []  # only current versions
    (hit,) = search(settings, "hedgerow", tenant="acme", mode="keyword")
    assert hit.version == 2

    (vault,) = sql(settings, "SELECT id FROM documents WHERE source_name LIKE '%%vault.md'")[0]
    from ingestflow.operations.documents import delete
    from ingestflow.runtime import open_runtime

    async def remove() -> None:
        async with open_runtime(settings) as rt:
            await delete(rt, "globex", vault)

    asyncio.run(remove())
    for mode in MODES:
        assert "vault.md" not in names(search(settings, "zorbifex protocol", tenant="globex", mode=mode))


def test_keyword_search_skips_words_that_are_everywhere(settings: Settings, tmp_path: Path) -> None:
    """A word in most of the tenant's chunks says nothing about which one answers: left out
    of the query, it cannot rank a chunk up for repeating it."""
    for i in range(40):
        write(tmp_path / "docs", f"n{i:02}.md", f"# Note {i}\n\nThe plan covers item {i}.\n")
    write(tmp_path / "docs", "repeats.md", "# Repeats\n\nPlan, plan, plan: the plan is the plan of plans.\n")
    write(tmp_path / "docs", "rare.md", "# Rare\n\nThe plan covers zyzzyva care.\n")
    ingest(settings, [tmp_path / "docs"])
    hits = search(settings, "plan zyzzyva", mode="keyword", k=10)
    assert names(hits) == {"rare.md"}
    assert len(search(settings, "plan", mode="keyword", k=10)) == 10  # only common words: all of them count
    everything = settings.model_copy(update={"search_keyword_max_share": 1.0})
    assert "repeats.md" in names(search(everything, "plan zyzzyva", mode="keyword", k=10))


def test_hybrid_leans_on_keywords_only_when_they_single_out_a_passage(settings: Settings, tmp_path: Path) -> None:
    """A hybrid score is w x cosine + (1 - w) x keyword relevance, each as its own mode
    scores it, and w is the question's: the model's vector_weight when the keyword list is
    flat (every note holds the words alike), vector_weight_min when its best match stands
    0.5 or more above its fifth (a code only one note holds), in between otherwise;
    SEARCH_VECTOR_WEIGHT fixes it for every question."""
    for i in range(12):
        write(tmp_path / "docs", f"n{i:02}.md", f"# Note {i}\n\nThe plan covers the member's visit, note {i}.\n")
    write(tmp_path / "docs", "form.md", "# Forms\n\nForm ZX-41 asks for a refund of a visit.\n")
    ingest(settings, [tmp_path / "docs"])
    model = EMBEDDING_MODELS[MOCK_MODEL]

    def weight_and_scores(s: Settings, question: str) -> tuple[float, list[float], list[float]]:
        def by_chunk(mode: str) -> dict[tuple[str, int], float]:
            return {(h.source_name, h.ordinal): h.score for h in find(s, question, mode=mode, k=20, min_score=0.0).hits}

        cosine, relevance = by_chunk("vector"), by_chunk("keyword")
        top = sorted(relevance.values(), reverse=True) + [0.0] * 5
        w = s.search_vector_weight
        if w is None:
            w = model.vector_weight - (model.vector_weight - model.vector_weight_min) * min(1.0, (top[0] - top[4]) / 0.5)
        hybrid = by_chunk("hybrid")
        assert hybrid and set(hybrid) <= set(cosine)
        return w, list(hybrid.values()), [w * cosine[c] + (1 - w) * relevance.get(c, 0.0) for c in hybrid]

    w, got, expected = weight_and_scores(settings, "Form ZX-41")
    assert w == pytest.approx(model.vector_weight_min) and got == pytest.approx(expected, abs=1e-6)
    w, got, expected = weight_and_scores(settings, "plan member visit")
    assert w == pytest.approx(model.vector_weight) and got == pytest.approx(expected, abs=1e-6)
    fixed = settings.model_copy(update={"search_vector_weight": 0.3})
    for question in ("Form ZX-41", "plan member visit"):
        w, got, expected = weight_and_scores(fixed, question)
        assert w == 0.3 and got == pytest.approx(expected, abs=1e-6)


def test_a_tenants_answers_do_not_depend_on_other_tenants_words(settings: Settings, tmp_path: Path) -> None:
    """Which words keyword search uses is decided by the searching tenant's own chunks: a
    word common in another tenant's documents (after ANALYZE, whose statistics cover every
    tenant) neither drops out of this tenant's search nor changes a score, in any mode."""
    write(tmp_path / "mine", "falcon.md", "# Falcon\n\nThe falconcodename project ships in spring.\n")
    write(tmp_path / "mine", "keys.md", "# Keys\n\nThe qwertyzzz keyboard layout is for typists.\n")
    ingest(settings, [tmp_path / "mine"], tenant="mine")
    question = "falconcodename qwertyzzz"

    def answers() -> dict[str, list[tuple[str, float, str]]]:
        sql(settings, "ANALYZE chunks")  # as a worker does after a load
        return {mode: [(Path(h.source_name).name, h.score, h.snippet)
                       for h in search(settings, question, tenant="mine", mode=mode, k=10)]
                for mode in MODES}

    alone = answers()
    assert {name for name, _, _ in alone["keyword"]} == {"falcon.md", "keys.md"}
    for i in range(200):
        write(tmp_path / "theirs", f"memo{i:03}.md", f"# Memo {i}\n\nThe falconcodename budget, item {i}.\n")
    ingest(settings, [tmp_path / "theirs"], tenant="theirs")
    assert answers() == alone


def test_keyword_search_keeps_the_rarest_words_within_its_row_budget(settings: Settings, tmp_path: Path) -> None:
    """Every chunk holding a searched word is ranked, so the words are taken rarest first
    while they match at most SEARCH_KEYWORD_MAX_ROWS of the tenant's chunks: a common
    word is left out before it costs the search, the rarest word never is."""
    for i in range(30):
        write(tmp_path / "docs", f"h{i:02}.md", f"# Harbor {i}\n\nThe harbor holds boat {i}.\n")
    for i in range(3):
        write(tmp_path / "docs", f"l{i}.md", f"# Lantern {i}\n\nA lantern hangs on post {i}.\n")
    write(tmp_path / "docs", "z.md", "# Zyzzyva\n\nThe zyzzyva sleeps by the harbor lantern.\n")
    ingest(settings, [tmp_path / "docs"])
    every_word = {"search_keyword_max_share": 1.0}
    question = "harbor lantern zyzzyva"

    def keyword_hits(max_rows: int) -> set[str]:
        tuned = settings.model_copy(update={**every_word, "search_keyword_max_rows": max_rows})
        return names(search(tuned, question, mode="keyword", k=50))

    assert len(keyword_hits(2000)) == 34  # the budget fits every word
    assert keyword_hits(8) == {"z.md", "l0.md", "l1.md", "l2.md"}  # harbor (31 chunks) left out
    assert keyword_hits(1) == {"z.md"}  # the rarest word always
    # A word in more chunks than the budget: the first ones found are ranked, and it says so.
    capped = find(settings.model_copy(update={**every_word, "search_keyword_max_rows": 5}), "harbor",
                  mode="keyword", k=50)
    assert len(capped.hits) == 5 and any("SEARCH_KEYWORD_MAX_ROWS" in n for n in capped.notes)
    whole = find(settings.model_copy(update={**every_word, "search_keyword_max_rows": 1}), "zyzzyva", mode="keyword")
    assert len(whole.hits) == 1 and not whole.notes
    tuned = settings.model_copy(update={**every_word, "search_keyword_max_rows": 1})
    (hit,) = search(tuned, question, mode="hybrid", k=1)  # snippets still mark every word
    assert {"**harbor**", "**lantern**", "**zyzzyva**"} <= set(hit.snippet.lower().replace(".", " ").split())


def test_hostile_queries_are_answered_never_a_500(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, [SAMPLES])
    key = make_key(settings, "default")
    hostile = ["& | ! ( ) : *", "aurora & | ! ( ) : * ' \\ \" ;", "aurora:* & !solar <-> (x", "' OR 1=1 --",
               "a\x00urora \x00", "\x00", "aurora " * (MAX_QUERY_CHARS // 7), "\u202e\ufeff aurora ☃ 🚀"]
    with TestClient(create_app(settings)) as client:
        for query in hostile:
            for mode in MODES:
                r = client.post("/v1/search", json={"query": query, "mode": mode}, headers=auth(key))
                assert r.status_code == 200, (query[:40], mode, r.text)
                assert r.json()["mode"] == mode
        for query in ("the of and", "?!... ---", "to be or not to be"):
            for mode in ("hybrid", "keyword"):
                body = client.post("/v1/search", json={"query": query, "mode": mode}, headers=auth(key)).json()
                assert body["hits"] == [] and body["notes"], (query, body)
        too_long = client.post("/v1/search", json={"query": "x" * (MAX_QUERY_CHARS + 1)}, headers=auth(key))
        assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "query_too_long")
        fuzzy = client.post("/v1/search", json={"query": "x", "mode": "fuzzy"}, headers=auth(key))
        assert (fuzzy.status_code, fuzzy.json()["error"]["code"]) == (400, "unknown_mode")
        body = client.post("/v1/search", json={"query": "aurora & | ! ( ) : *"}, headers=auth(key)).json()
    assert body["mode"] == "hybrid" and "aurora" in body["hits"][0]["text"]  # the words still count
    assert sql(settings, "SELECT count(*) FROM documents WHERE stage <> 'complete'")[0][0] == 0


def test_min_score_leaves_out_weak_passages_and_says_when_none_is_left(settings: Settings) -> None:
    """Every mode's score lies in [0, 1], so a threshold means something: passages scoring
    under min_score are left out, and when none is left the answer is empty with a note (no
    answer), through the operations layer and the API alike; SEARCH_MIN_SCORE sets the
    default, and a threshold outside [0, 1] is refused."""
    ingest(settings, [SAMPLES])
    question = "what causes the aurora borealis"
    for mode in MODES:
        scores = [h.score for h in find(settings, question, mode=mode, k=10, min_score=0.0).hits]
        assert scores and scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores), mode
        cut = scores[len(scores) // 2]
        assert [h.score for h in find(settings, question, mode=mode, k=10, min_score=cut).hits] == \
            [s for s in scores if s >= cut]
        none = find(settings, question, mode=mode, min_score=1.0)
        assert none.hits == [] and any("min_score" in n and "may not answer" in n for n in none.notes), mode
    nonsense = find(settings, "zzqx flibber")  # the model's default min_score: no answer, and it says so
    assert nonsense.hits == [] and any("min_score" in n for n in nonsense.notes)
    strict = settings.model_copy(update={"search_min_score": 1.0})
    assert find(strict, question).hits == [] and find(strict, question, min_score=0.0).hits
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(Refused) as refused:
            find(settings, question, min_score=bad)
        assert refused.value.code == "invalid_min_score"
    key = make_key(settings, "default")
    with TestClient(create_app(settings)) as client:
        body = client.post("/v1/search", json={"query": question, "min_score": 1.0}, headers=auth(key)).json()
        assert body["hits"] == [] and any("min_score" in n for n in body["notes"])
        body = client.post("/v1/search", json={"query": question, "min_score": 0.0, "k": 10}, headers=auth(key)).json()
        assert [h["score"] for h in body["hits"]] == [h.score for h in find(settings, question, k=10, min_score=0.0).hits]
        for bad in (-0.1, 1.5, "high"):
            r = client.post("/v1/search", json={"query": question, "min_score": bad}, headers=auth(key))
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_min_score"), bad


def test_hits_cite_document_version_pages_headings_and_a_marked_snippet(settings: Settings) -> None:
    ingest(settings, [SAMPLES])
    for mode in MODES:
        top = search(settings, "aurora borealis", mode=mode, k=3)[0]
        assert top.source_name.endswith("handbook.pdf") and top.version == 1, mode
        assert "**aurora**" in top.snippet.lower() and "**borealis**" in top.snippet.lower(), (mode, top.snippet)
        (markdown, pages) = sql(settings, "SELECT markdown, pages FROM document_texts WHERE document_id = %s",
                                (uuid.UUID(top.document_id),))[0]
        page_text = {page: markdown[start:end] for page, start, end in pages}
        # The sentence the snippet marks is on the page the hit names, and on no other.
        assert [p for p, text in page_text.items() if "aurora borealis" in text] == top.pages == [2]
    heading = search(settings, "Kitchen Notebook", mode="keyword", k=1)[0]
    assert heading.heading_path and heading.pages == []  # a .docx has headings, no pages
    cli = run_cli(settings, "search", "aurora borealis", "--mode", "keyword", "--json")
    assert cli.returncode == 0, cli.stderr
    out = json.loads(cli.stdout)
    assert out["mode"] == "keyword" and out["provider"] == "postgres"
    assert {"snippet", "pages", "heading_path", "version", "source_name"} <= set(out["hits"][0])


def test_fusion_never_compares_vectors_of_two_spaces(settings: Settings, tmp_path: Path) -> None:
    """A chunk whose vector in ANOTHER space equals the query's vector must not rank as a
    near neighbour: the dense list reads the searched space only."""
    write(tmp_path / "docs", "bees.md", "# Bees\n\nHoney bees communicate with a waggle dance.\n")
    write(tmp_path / "docs", "ledger.md", "# Ledger\n\nQuarterly accounting entries are reconciled monthly.\n")
    ingest(settings, [tmp_path / "docs"])
    query_vector = HashingEmbedder().embed_texts(["waggle dance"])[0]
    (other,) = sql(settings, "INSERT INTO embedding_spaces (provider, model, dimensions)"
                             " VALUES ('mock', 'decoy', 1536) RETURNING id")[0]
    sql(settings, query("space_partition").replace("{space_id}", str(int(other))))  # as ensure_space does
    sql(settings, "INSERT INTO embeddings (chunk_id, space_id, embedding) SELECT c.id, %s, %s::vector"
                  " FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source_name LIKE '%%ledger.md'",
        (other, "[" + ",".join(map(str, query_vector)) + "]"))
    for mode in ("vector", "hybrid"):
        hits = search(settings, "waggle dance", mode=mode)
        assert Path(hits[0].source_name).name == "bees.md", mode
    ledger = [h for h in search(settings, "waggle dance", mode="vector") if h.source_name.endswith("ledger.md")]
    assert all(h.score < 0.2 for h in ledger)  # its own space's vector, not the decoy's 1.0

    small = settings.model_copy(update={"mock_embedding_dimensions": 256})  # a model change under way
    result = find(small, "waggle dance", mode="hybrid")
    assert "searched mock/mock-hashing-v2 (1536d)" in result.notes[0]
    assert Path(result.hits[0].source_name).name == "bees.md"


def test_the_search_statement_is_never_prepared(settings: Settings, tmp_path: Path) -> None:
    """psycopg prepares a statement run five times; the generic plan then scans every vector
    of every space instead of the space's partial HNSW index (2-4 s at 100k chunks)."""
    write(tmp_path / "docs", "bees.md", "# Bees\n\nHoney bees communicate with a waggle dance.\n")
    ingest(settings, [tmp_path / "docs"])
    from ingestflow.operations.search import search as run_search
    from ingestflow.runtime import open_runtime

    async def main() -> int:
        async with open_runtime(settings, pool_size=1) as rt:
            for _ in range(8):
                assert (await run_search(rt, "default", "waggle dance")).hits
            async with rt.db.pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                                         ("%Hybrid search in one statement%",))
                return (await cur.fetchone())[0]

    assert asyncio.run(main()) == 0


def test_a_search_takes_two_visits_to_the_database(settings: Settings, tmp_path: Path) -> None:
    """Each visit (a connection from the pool) costs a connection check, BEGIN and COMMIT,
    more than the small queries in it (bench/search_overhead.py): a search asks what it
    needs about the tenant in one visit, and reads its answer in one more, in every mode."""
    write(tmp_path / "docs", "bees.md", "# Bees\n\nHoney bees communicate with a waggle dance.\n")
    ingest(settings, [tmp_path / "docs"])
    from ingestflow.operations.search import search as run_search
    from ingestflow.runtime import open_runtime

    async def main() -> dict[str, int]:
        visits = {}
        async with open_runtime(settings, pool_size=2) as rt:
            for mode in MODES:
                before = rt.db.pool.get_stats()["requests_num"]
                assert (await run_search(rt, "default", "waggle dance", mode=mode)).hits
                visits[mode] = rt.db.pool.get_stats()["requests_num"] - before
        return visits

    assert asyncio.run(main()) == dict.fromkeys(MODES, 2)


def test_keywords_answer_while_the_embedder_is_down(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> None:
    s = real(settings, fake, ServiceMode.REAL, call_retry_attempts=1, breaker_failure_threshold=100)
    write_docs(tmp_path / "docs", 3)  # the third is about honey bees
    ingest(s, [tmp_path / "docs"])
    fake.faults.down = True
    requests = fake.stats["requests"]
    keyword = find(s, "honey bees", mode="keyword")
    assert "honey bees" in keyword.hits[0].text and not keyword.degraded
    assert fake.stats["requests"] == requests  # keyword search never calls the embedder
    hybrid = find(s, "honey bees")
    assert hybrid.mode == "hybrid" and hybrid.degraded and hybrid.provider == "postgres"
    assert "keyword matches only" in hybrid.notes[-1] and "honey bees" in hybrid.hits[0].text
    with pytest.raises(Refused) as refused:
        find(s, "honey bees", mode="vector")
    assert refused.value.kind == "unavailable"


def test_a_new_search_language_rebuilds_the_keyword_index(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path / "docs", "bees.md", "# Bees\n\nHoney bees communicate with a waggle dance.\n")
    ingest(settings, [tmp_path / "docs"])
    assert search(settings, "bee", mode="keyword")  # english stems "bees" to "bee"
    simple = settings.model_copy(update={"search_language": "simple"})
    stale = find(simple, "bees", mode="keyword")
    assert stale.hits == [] and "workers are rebuilding" in " ".join(stale.notes)
    worker = start_worker(settings, tmp_path / "w.log", SEARCH_LANGUAGE="simple", INDEX_CHECK_SECONDS="0.2")
    try:
        deadline = time.monotonic() + 60
        while sql(settings, "SELECT count(*) FROM chunks WHERE search_config <> 'simple'")[0][0]:
            assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "w.log").read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    rebuilt = find(simple, "bees", mode="keyword")
    assert rebuilt.hits and rebuilt.notes == []
    assert find(simple, "bee", mode="keyword").hits == []  # "simple" does not stem


def test_an_unknown_search_language_is_a_clear_configuration_error(settings: Settings) -> None:
    from ingestflow.runtime import open_runtime

    async def open_with(language: str) -> None:
        async with open_runtime(settings.model_copy(update={"search_language": language})):
            pass

    with pytest.raises(ConfigError, match="SEARCH_LANGUAGE='klingon'.*english"):
        asyncio.run(open_with("klingon"))
    cli = run_cli(settings, "search", "bees", SEARCH_LANGUAGE="klingon")
    assert cli.returncode == 2 and "SEARCH_LANGUAGE" in cli.stdout + cli.stderr
    assert "Traceback" not in cli.stdout + cli.stderr
