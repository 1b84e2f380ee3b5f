"""A search's query embedding against a provider that makes it wait (the fake OpenAI on
loopback, real HTTP and SDK): a long Retry-After or a slow answer is never waited out.
Hybrid answers from keywords, vector refuses with 503 and Retry-After, and a call we
stopped waiting for after sending it stays charged in the ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import auth, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings
from ingestflow.operations.errors import Refused
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import real, write_docs
from support import find, ingest, sql

QUERY = "honey bees and their behaviour"


@pytest.fixture
def corpus(settings: Settings, fake: FakeOpenAI, tmp_path: Path) -> Settings:
    """Documents embedded by the fake OpenAI; retries as a worker's are set (a 30 s cap,
    which honours a Retry-After of 120 s in full), the search's deadline 2 s."""
    s = real(settings, fake, call_retry_cap_seconds=30.0, search_embed_timeout_seconds=2.0)
    write_docs(tmp_path / "docs", 3)
    ingest(s, [tmp_path / "docs"])
    return s


def last_row(s: Settings) -> int:
    return sql(s, "SELECT coalesce(max(id), 0) FROM ledger")[0][0]


def ledger(s: Settings, after: int) -> list[tuple]:
    """The ledger rows written since ``after``: the searches', not the ingestion's."""
    return sql(s, "SELECT units, cost_usd, state, outcome FROM ledger WHERE id > %s ORDER BY id", (after,))


def test_a_long_retry_after_is_not_waited_out(corpus: Settings, fake: FakeOpenAI) -> None:
    before, mark = fake.stats["requests"], last_row(corpus)
    fake.faults.inject("429:120")
    result = find(corpus, QUERY, k=2)  # hybrid: answered from keywords, now
    assert fake.stats["requests"] - before == 1  # no retry after the 120 s the provider asked for
    assert result.degraded and result.provider == "postgres" and "honey bees" in result.hits[0].text
    assert "the embedding service cannot answer now (rate_limited): keyword matches only" in result.notes

    with pytest.raises(Refused) as refused:  # everybody waits for the provider's pause: no request
        find(corpus, QUERY, k=2, mode="vector")
    assert refused.value.kind == "unavailable" and refused.value.retry_after is not None
    assert fake.stats["requests"] - before == 1
    # A 429 is not billed; the vector search's reservation was given back when the limiter deferred it.
    assert [row[2:] for row in ledger(corpus, mark)] == [("released", "rate_limited"), ("released", "deferred")]


def test_vector_search_answers_503_with_retry_after(corpus: Settings, fake: FakeOpenAI) -> None:
    key = make_key(corpus, "default")
    fake.faults.inject("429:120")
    with TestClient(create_app(corpus)) as client:
        reply = client.post("/v1/search", headers=auth(key), json={"query": QUERY, "k": 2, "mode": "vector"})
        assert reply.status_code == 503, reply.text
        assert 0 < int(reply.headers["Retry-After"]) <= 121
        assert "embedding service" in reply.json()["error"]["message"]
        hybrid = client.post("/v1/search", headers=auth(key), json={"query": QUERY, "k": 2})
        assert hybrid.status_code == 200 and hybrid.json()["degraded"] and hybrid.json()["hits"]


def test_a_slow_answer_past_the_deadline_is_abandoned_and_kept_charged(corpus: Settings, fake: FakeOpenAI) -> None:
    s = corpus.model_copy(update={"openai_timeout_seconds": 30.0})  # the search's deadline (2 s) cuts it
    mark = last_row(s)
    fake.faults.inject("slow:6")  # answers (and bills) after the search's 2 s
    result = find(s, QUERY, k=2)
    assert result.degraded and "the embedding service cannot answer now (timeout): keyword matches only" \
        in result.notes
    # The provider may have billed it: charged at the reservation, and the daily total says so.
    [(units, cost, state, outcome)] = ledger(s, mark)
    assert (state, outcome) == ("settled", "possibly_billed") and units > 0 and cost > 0
    spent = sql(s, "SELECT sum(cost_usd) FROM ledger WHERE state <> 'released'")[0][0]
    counted = sql(s, "SELECT amount FROM spend_counters WHERE service = 'total' AND kind = 'daily_cost'")
    assert counted == [(spent,)] and isinstance(spent, Decimal)


def test_our_client_timeout_is_kept_charged_and_retried(corpus: Settings, fake: FakeOpenAI) -> None:
    s = corpus.model_copy(update={"openai_timeout_seconds": 1.0, "search_embed_timeout_seconds": 30.0})
    mark = last_row(s)
    fake.faults.inject("slow:4")  # the SDK's read timeout (1 s) fires after the request was sent
    result = find(s, QUERY, k=2)
    assert not result.degraded and result.provider == "openai"
    (first_units, first_cost, *first), (units, cost, *second) = ledger(s, mark)
    assert first == ["settled", "possibly_billed"] and second == ["settled", "ok"]
    assert (first_units, first_cost) == (units, cost)  # the reservation: the query's exact count


def test_a_request_never_sent_is_released(corpus: Settings) -> None:
    s = corpus.model_copy(update={"openai_api_url": "http://127.0.0.1:9/v1"})  # connection refused
    mark = last_row(s)
    result = find(s, QUERY, k=2)
    assert result.degraded and "(connection_error)" in result.notes[-1]
    rows = ledger(s, mark)
    assert rows and all(row[1:] == (Decimal(0), "released", "connection_error") for row in rows)
