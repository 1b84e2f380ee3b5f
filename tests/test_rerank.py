"""Reranking: the Cohere client against the fake Cohere server on loopback (real HTTP), and
search reranking through the guard on the real database: ledger, budget, rate limit,
retries, breaker, the degraded fused order, MOCK determinism and secrets kept out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api_support import auth, live_server, make_key
from ingestflow.api import create_app
from ingestflow.catalogue import RERANK_MODELS
from ingestflow.config import ConfigError, ServiceMode, Settings, load_settings
from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.services.base import RerankResult
from ingestflow.services.cohere_reranker import CohereReranker
from ingestflow.services.mock import OverlapReranker
from ingestflow.testing.fake_cohere import FakeCohere
from support import find, ingest, run_cli, sql

KEY = "co-test-SECRET-reranker-0a1b2c3d4e"
QUERY = "apple harvest season"
DOCS = {
    # Many apples, no harvest: the fused lists like it; the reranker does not.
    "apples.md": "# Apples\n\nApple trees. Apple blossom. Apple varieties: the apple of every apple grower.\n",
    "harvest.md": "# Orchard calendar\n\nThe apple harvest season starts when the seeds turn brown.\n",
    "pears.md": "# Pears\n\nPear trees flower before apple trees do.\n",
    "bees.md": "# Bees\n\nHoney bees pollinate orchards in spring.\n",
}


@pytest.fixture
def cohere() -> Iterator[FakeCohere]:
    with FakeCohere(api_key=KEY, timeout_seconds=3) as server:
        yield server


@pytest.fixture
def corpus(settings: Settings, tmp_path: Path) -> Settings:
    """The documents, ingested offline (reranking plays no part in ingestion)."""
    folder = tmp_path / "orchard"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    ingest(settings, [folder])
    return settings


def reranking(settings: Settings, cohere: FakeCohere, mode: ServiceMode = ServiceMode.REAL, **extra: object) -> Settings:
    """Embeddings and parsing stay MOCK; only the reranker is real (the fake)."""
    values = dict(rerank_provider="cohere", rerank_mode=mode, cohere_api_key=KEY, cohere_base_url=cohere.url,
                  cohere_timeout_seconds=1.0, call_retry_base_seconds=0.01, call_retry_cap_seconds=0.05,
                  breaker_cooldown_seconds=30.0)
    values.update(extra)
    return Settings(**{**settings.model_dump(), **values})


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def rerank(cohere: FakeCohere, query: str, documents: list[str], top_n: int, **kw: object) -> RerankResult:
    """One call of a new client, closed in the event loop that opened it."""
    async def main() -> RerankResult:
        reranker = CohereReranker(api_key=kw.pop("api_key", KEY), base_url=cohere.url, **kw)  # type: ignore[arg-type]
        try:
            return await reranker.rerank(query, documents, top_n)
        finally:
            await reranker.aclose()

    return run(main())


def health(cohere: FakeCohere, key: str = KEY) -> tuple[bool, str]:
    async def main() -> tuple[bool, str]:
        reranker = CohereReranker(api_key=key, base_url=cohere.url)
        try:
            return await reranker.health()
        finally:
            await reranker.aclose()

    return run(main())


def order(result) -> list[tuple[str, int]]:  # noqa: ANN001
    return [(Path(h.source_name).name, h.ordinal) for h in result.hits]


def ledger(s: Settings) -> list[tuple]:  # type: ignore[type-arg]
    return sql(s, "SELECT service, model, unit, units, cost_usd, state, outcome, tenant FROM ledger ORDER BY id")


# -- the client on the wire ------------------------------------------------------------------


def test_request_and_answer_follow_the_wire_format(cohere: FakeCohere) -> None:
    documents = [DOCS["apples.md"], DOCS["harvest.md"], DOCS["bees.md"]]
    result = rerank(cohere, QUERY, documents, 2)
    assert cohere.last_request == {"model": "rerank-v3.5", "query": QUERY, "documents": documents, "top_n": 2,
                                   "max_tokens_per_doc": 4096}
    assert [i for i, _ in result.ranking] == [1, 0]  # best first, by position in the documents sent
    assert result.ranking[0][1] == 1.0 and 0 < result.ranking[1][1] < 1
    assert (result.provider, result.model, result.search_units, result.requests) == ("cohere", "rerank-v3.5", 1, 1)
    many = rerank(cohere, "apple", [f"apple {i}" for i in range(150)], 500)
    assert len(many.ranking) == 150 and many.search_units == 2 == RERANK_MODELS["rerank-v3.5"].search_units(150)
    assert cohere.stats["search_units_billed"] == 3


@pytest.mark.parametrize(("fault", "error", "code"), [
    ("429", TransientError, "rate_limited"), ("500", TransientError, "server_error"),
    ("503", TransientError, "server_error"), ("402", DeferredError, "provider_quota"),
    ("timeout:3", TransientError, "timeout"), ("malformed_json", TransientError, "invalid_response"),
    ("bad_index", TransientError, "invalid_response"), ("fewer_results", TransientError, "invalid_response"),
])
def test_failures_are_classified(cohere: FakeCohere, fault: str, error: type, code: str) -> None:
    cohere.faults.inject(fault)
    with pytest.raises(error) as raised:
        rerank(cohere, QUERY, ["a", "b"], 2, timeout=0.5)
    assert raised.value.code == code
    if fault == "429":
        assert raised.value.retry_after == pytest.approx(0.1)
    if code == "invalid_response":  # answered, so billed: the ledger must say so
        assert raised.value.billed_units == 1


def scripted(body: object) -> RerankResult:
    """The real client against a scripted answer: shapes the fake never sends."""
    async def main() -> RerankResult:
        answer = httpx.Response(200, content=json.dumps(body), headers={"content-type": "application/json"})
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: answer))
        reranker = CohereReranker(api_key=KEY, base_url="http://scripted.invalid", client=client)
        try:
            return await reranker.rerank(QUERY, ["a", "b", "c"], 2)
        finally:
            await reranker.aclose()

    return run(main())


def test_answers_are_checked_before_use() -> None:
    unsorted = scripted({"results": [{"index": 2, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.9}]})
    assert unsorted.ranking == ((0, 0.9), (2, 0.1)) and unsorted.search_units == 1  # no meta: the estimate
    for results in ([{"index": 1, "relevance_score": 0.5}] * 2, [{"index": 0, "relevance_score": float("nan")},
                                                                 {"index": 1, "relevance_score": 0.2}],
                    [{"index": True, "relevance_score": 0.5}, {"index": 1, "relevance_score": 0.2}], "nothing"):
        with pytest.raises(TransientError) as raised:
            scripted({"results": results, "meta": {"billed_units": {"search_units": 1}}})
        assert raised.value.code == "invalid_response" and raised.value.billed_units == 1


def test_a_bad_key_is_permanent_and_never_shown(cohere: FakeCohere) -> None:
    wrong = "co-wrong-SECRET-key-99887766"
    with pytest.raises(PermanentError) as raised:
        rerank(cohere, QUERY, ["a"], 1, api_key=wrong)
    assert raised.value.code == "auth_failed"
    ok, detail = health(cohere, wrong)
    assert not ok and "auth_failed" in detail
    reranker = CohereReranker(api_key=wrong, base_url=cohere.url)
    for text in (str(raised.value), repr(raised.value), repr(reranker), detail):
        assert wrong not in text and KEY not in text


def test_health_is_free(cohere: FakeCohere) -> None:
    assert health(cohere) == (True, "rerank-v3.5 reachable")
    assert cohere.stats["requests"] == 0 and cohere.stats["search_units_billed"] == 0
    cohere.faults.down = True
    assert not health(cohere)[0]


def test_the_fake_refuses_what_cohere_refuses(cohere: FakeCohere) -> None:
    def post(body: object, key: str = KEY) -> httpx.Response:
        return httpx.post(f"{cohere.url}/v2/rerank", json=body, headers={"Authorization": f"Bearer {key}"})

    good = {"model": "rerank-v3.5", "query": "q", "documents": ["d"]}
    assert post(good).status_code == 200
    assert post(good, key="nope").json() == {"message": "invalid api token"}
    assert post({**good, "model": "rerank-v9"}).status_code == 404
    for bad in ({"query": " "}, {"documents": []}, {"top_n": 0}, {"max_tokens_per_doc": 0}, {"model": None}):
        r = post({**good, **bad})
        assert r.status_code == 400 and r.json()["message"].startswith("invalid request"), bad


def test_the_mock_reranker_is_deterministic() -> None:
    documents = list(DOCS.values())
    first = run(OverlapReranker().rerank(QUERY, documents, 4))
    assert first == run(OverlapReranker().rerank(QUERY, documents, 4))
    assert first.ranking[0] == (1, 1.0) and first.search_units == 0 and first.requests == 0
    # Ties keep the order the passages came in; a query of stop words ranks nothing higher.
    assert [i for i, _ in run(OverlapReranker().rerank("the of", documents, 4)).ranking] == [0, 1, 2, 3]


def test_settings_need_a_key_and_a_priced_model(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_PROVIDER", "cohere")
    monkeypatch.setenv("SERVICE_MODE", "REAL")
    monkeypatch.setenv("EMBEDDINGS_MODE", "MOCK")
    with pytest.raises(ConfigError, match="COHERE_API_KEY is required"):
        load_settings()
    monkeypatch.setenv("CO_API_KEY", KEY)
    monkeypatch.setenv("COHERE_RERANK_MODEL", "rerank-v9")
    with pytest.raises(ConfigError, match="COHERE_RERANK_MODEL"):
        load_settings()
    monkeypatch.delenv("COHERE_RERANK_MODEL")
    loaded = load_settings()
    assert loaded.rerank_service_mode is ServiceMode.REAL and KEY in loaded.secret_values()
    assert KEY not in repr(loaded)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("RERANK_MODE", "HYBRID")
    with pytest.raises(ConfigError, match="refuses HYBRID"):
        load_settings()


# -- search, through the guard ---------------------------------------------------------------


def test_search_reranks_the_fused_candidates_and_records_the_ledger(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere)
    result = find(s, QUERY, k=2, min_score=0.0)  # every fused candidate, the weak ones too, is reranked
    assert result.reranker == "cohere/rerank-v3.5" and not result.degraded and result.notes == []
    assert len(result.hits) == 2 and Path(result.hits[0].source_name).name == "harvest.md"
    assert result.hits[0].relevance == 1.0 and result.hits[0].relevance >= result.hits[1].relevance > 0
    assert all(h.score > 0 for h in result.hits)  # the retrieval's own score is kept beside it
    # Every fused candidate was sent (RERANK_CANDIDATES=50 > the corpus), for one search unit.
    assert cohere.last_request is not None and len(cohere.last_request["documents"]) == len(DOCS)
    assert cohere.last_request["top_n"] == 2
    assert any(d.startswith("Orchard calendar\n\n") for d in cohere.last_request["documents"])  # headings travel
    assert ledger(s) == [("cohere", "rerank-v3.5", "search_units", 1, Decimal("0.002"), "settled", "ok", "default")]

    key = make_key(s, "default")
    with TestClient(create_app(s)) as client:
        body = client.post("/v1/search", json={"query": QUERY, "k": 2}, headers=auth(key)).json()
    assert body["reranker"] == "cohere/rerank-v3.5" and body["hits"][0]["relevance"] == 1.0
    assert body["hits"][0]["score"] == pytest.approx(result.hits[0].score)


def test_retries_on_429_and_5xx_then_reranks(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere)
    cohere.faults.inject("429:0.2", "500", "bad_index")
    started = time.monotonic()
    result = find(s, QUERY, k=2)
    assert result.reranker == "cohere/rerank-v3.5" and not result.degraded
    assert cohere.stats["requests"] == 4 and cohere.stats["status_429"] == cohere.stats["status_500"] == 1
    assert time.monotonic() - started >= 0.2  # Retry-After was honoured
    # Not answered: released, free. Answered but unusable: billed, and the ledger says so.
    assert [r[3:] for r in ledger(s)] == [
        (0, Decimal(0), "released", "rate_limited", "default"), (0, Decimal(0), "released", "server_error", "default"),
        (1, Decimal("0.002"), "settled", "invalid_response", "default"), (1, Decimal("0.002"), "settled", "ok", "default")]


def test_a_long_retry_after_never_holds_a_search(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere, call_retry_cap_seconds=30.0)  # what workers wait is not what a person waits
    cohere.faults.inject("429:60")
    started = time.monotonic()
    first = find(s, QUERY, k=2)
    assert time.monotonic() - started < 20
    assert first.degraded and "(rate_limited)" in first.notes[-1] and cohere.stats["requests"] == 1
    second = find(s, QUERY, k=2)  # everybody waits for Cohere's minute: no request, an answer now
    assert second.degraded and "(rate_limited)" in second.notes[-1] and cohere.stats["requests"] == 1


def test_the_shared_rate_limiter_never_holds_a_search_long(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere, rate_limit_rpm_cohere=1)
    assert find(s, QUERY, k=2).reranker == "cohere/rerank-v3.5"
    started = time.monotonic()
    second = find(s, QUERY, k=2)  # the next slot is a minute away: answered now, in the fused order
    assert time.monotonic() - started < 30
    assert second.degraded and "(rate_limited)" in second.notes[-1] and cohere.stats["requests"] == 1


def test_budget_refusal_answers_in_the_fused_order(corpus: Settings, cohere: FakeCohere) -> None:
    plain = find(corpus, QUERY, k=3)
    assert plain.reranker is None and all(h.relevance is None for h in plain.hits)
    s = reranking(corpus, cohere, ServiceMode.HYBRID, daily_cost_limit_cohere=0.001)  # one search costs 0.002
    result = find(s, QUERY, k=3)
    assert result.degraded and result.reranker is None and order(result) == order(plain)
    assert all(h.relevance is None for h in result.hits)
    assert "the reranker cannot answer now (budget_exhausted)" in result.notes[-1]
    assert cohere.stats["requests"] == 0 and ledger(s) == []

    hourly = reranking(corpus, cohere, hourly_rate_limit_cohere=1)
    assert find(hourly, QUERY, k=3).reranker == "cohere/rerank-v3.5"
    second = find(hourly, QUERY, k=3)
    assert second.degraded and "budget_exhausted" in second.notes[-1] and order(second) == order(plain)
    assert cohere.stats["requests"] == 1


def test_the_breaker_opens_and_search_degrades_until_the_provider_is_back(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere, call_retry_attempts=1, breaker_failure_threshold=2, breaker_cooldown_seconds=1.0)
    plain = find(corpus, QUERY, k=3)
    cohere.faults.down = True
    for _ in range(2):
        failed = find(s, QUERY, k=3)
        assert failed.degraded and "(server_error)" in failed.notes[-1] and order(failed) == order(plain)
    assert sql(s, "SELECT state FROM breakers WHERE service = 'cohere'") == [("open",)]
    refused = find(s, QUERY, k=3)
    assert refused.degraded and "(breaker_open)" in refused.notes[-1] and order(refused) == order(plain)
    assert cohere.stats["requests"] == 2  # the open breaker spared the provider
    cohere.faults.down = False
    time.sleep(1.1)  # the cool-down ends: the next search is the probe, and it closes the breaker
    assert find(s, QUERY, k=3).reranker == "cohere/rerank-v3.5"
    assert sql(s, "SELECT state FROM breakers WHERE service = 'cohere'") == [("closed",)]


def test_a_bad_key_degrades_search_and_never_leaks(corpus: Settings, cohere: FakeCohere,
                                                   caplog: pytest.LogCaptureFixture,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    wrong = "co-wrong-SECRET-search-5566778899"
    s = reranking(corpus, cohere, cohere_api_key=wrong)
    with caplog.at_level(logging.DEBUG):
        result = find(s, QUERY, k=2)
    assert result.degraded and "(auth_failed)" in result.notes[-1] and len(result.hits) == 2
    assert cohere.stats["status_401"] == 1  # permanent: not retried
    from ingestflow.operations import health
    from ingestflow.runtime import open_runtime

    async def doctor() -> tuple[str, str]:
        async with open_runtime(s) as rt:
            checks = await health.check(rt)
            return repr(rt.services), repr([h for h in checks if h.service.name == "reranker"])

    services, checks = run(doctor())
    assert "auth_failed" in checks
    captured = capsys.readouterr()
    for text in (*result.notes, caplog.text, captured.out, captured.err, repr(s), services, checks):
        assert wrong not in text
    assert "rerank_skipped" in caplog.text + captured.out + captured.err


def test_mock_mode_reranks_deterministically_for_free(corpus: Settings, cohere: FakeCohere) -> None:
    s = reranking(corpus, cohere, ServiceMode.MOCK, cohere_api_key=None)
    first, second = find(s, QUERY, k=3), find(s, QUERY, k=3)
    assert first.reranker == "mock/mock-overlap-v1" and not first.degraded
    assert [(h.document_id, h.ordinal, h.relevance) for h in first.hits] == \
        [(h.document_id, h.ordinal, h.relevance) for h in second.hits]
    assert Path(first.hits[0].source_name).name == "harvest.md" and first.hits[0].relevance == 1.0
    assert cohere.stats["requests"] == 0 and ledger(s) == []
    cli = run_cli(s, "search", QUERY, "-k", "2", RERANK_PROVIDER="cohere", RERANK_MODE="MOCK", COLUMNS="200")
    assert cli.returncode == 0, cli.stderr
    assert "reranked by mock/mock-overlap-v1" in cli.stdout and "relevance" in cli.stdout and "1.000" in cli.stdout


def test_doctor_and_costs_show_the_reranker(corpus: Settings, cohere: FakeCohere) -> None:
    from ingestflow.operations import costs, health
    from ingestflow.runtime import open_runtime

    s = reranking(corpus, cohere)
    find(s, QUERY, k=2)

    async def main() -> tuple:  # type: ignore[type-arg]
        async with open_runtime(s) as rt:
            return await health.check(rt), await costs.spend(rt, None)

    checks, spend = run(main())
    (reranker,) = [h for h in checks if h.service.name == "reranker"]
    assert (reranker.service.mode, reranker.service.provider, reranker.healthy) == ("REAL", "cohere/rerank-v3.5", True)
    (row,) = [r for r in spend.services if r.service == "cohere"]
    assert row.today_usd == pytest.approx(0.002) and row.today_units == 1 and row.daily_limit_usd == 5.0


def test_the_python_client_and_retrievers_carry_the_relevance(corpus: Settings, cohere: FakeCohere) -> None:
    from ingestflow.client import Client
    from ingestflow.integrations.langchain import IngestflowRetriever

    s = reranking(corpus, cohere, ServiceMode.MOCK, cohere_api_key=None)
    with Client(s) as client:
        result = client.search(QUERY, k=2)
        docs = IngestflowRetriever(client=client, k=2).invoke(QUERY)
    assert result.reranker == "mock/mock-overlap-v1" and result.hits[0].relevance == 1.0
    assert [d.metadata["relevance"] for d in docs] == [h.relevance for h in result.hits]
    with live_server(create_app(s)) as base, Client(url=base, api_key=make_key(s, "default")) as remote:
        assert remote.search(QUERY, k=2) == result  # the API answers what the operations layer does
    with Client(corpus) as plain:
        assert "relevance" not in IngestflowRetriever(client=plain, k=2).invoke(QUERY)[0].metadata


def test_only_the_hits_returned_get_a_snippet(corpus: Settings, cohere: FakeCohere) -> None:
    """A reranked search fetches RERANK_CANDIDATES passages but returns k: the candidates'
    query computes no snippet (a headline reads a chunk's whole text), the k returned get
    theirs after the reranker picked them, and each is its chunk's headline, as before."""
    from ingestflow.store.sql import query

    assert "ts_headline" not in query("search") and "ts_headline" in query("snippets")
    s = reranking(corpus, cohere, ServiceMode.MOCK, cohere_api_key=None)
    for settings in (corpus, s):  # not reranked, reranked
        result = find(settings, QUERY, k=2)
        assert len(result.hits) == 2 and (result.reranker is None) == (settings is corpus)
        for hit in result.hits:
            [(expected,)] = sql(s, "SELECT ts_headline('english', c.text, question_words('english', %s), "
                                   "'MaxFragments=2, MinWords=12, MaxWords=30, StartSel=**, StopSel=**, "
                                   "FragmentDelimiter=\" … \"') FROM chunks c WHERE c.document_id = %s "
                                   "AND c.ordinal = %s", (QUERY, hit.document_id, hit.ordinal))
            assert hit.snippet == " ".join(expected.split()[:60]) and "**" in hit.snippet
