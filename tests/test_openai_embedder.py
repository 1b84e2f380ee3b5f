"""The real OpenAI client against the fake OpenAI server on loopback (real HTTP, real SDK).

A few edge cases the fake does not produce (``x-should-retry``, 409, HTTP-date
Retry-After) go through ``httpx.MockTransport`` handed in as the SDK's ``http_client``:
still the real SDK and our real classification, only the far end is scripted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.services.base import EmbeddingResult
from ingestflow.services.failures import retry_after_seconds
from ingestflow.services.openai_embedder import OpenAIEmbedder
from ingestflow.testing.fake_openai import FakeOpenAI, fake_vector

KEY = "sk-test-openai-SECRET-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, timeout_seconds=5) as server:
        yield server


def embedder(fake: FakeOpenAI, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=kw.pop("api_key", KEY), base_url=fake.url, timeout=kw.pop("timeout", 2.0), **kw)  # type: ignore[arg-type]


def embed(e: OpenAIEmbedder, texts: list[str]) -> EmbeddingResult:
    return asyncio.run(e.embed(texts))


def scripted(status: int, body: object, headers: dict[str, str] | None = None,
             seen: list[dict] | None = None, **kw: object) -> OpenAIEmbedder:
    """An embedder whose HTTP requests are answered by a fixed response."""
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        return httpx.Response(status, json=body, headers=headers)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return OpenAIEmbedder(api_key=KEY, base_url="http://scripted.invalid/v1", http_client=client, **kw)  # type: ignore[arg-type]


# -- success -------------------------------------------------------------------------------


def test_success_decodes_base64_in_order_with_usage_and_headers(fake: FakeOpenAI) -> None:
    result = embed(embedder(fake), ["alpha beta", "gamma"])
    assert result.vectors.shape == (2, 1536) and result.vectors.dtype == np.float32
    assert np.array_equal(result.vectors[0], fake_vector("alpha beta", 1536, "text-embedding-3-small"))
    assert np.array_equal(result.vectors[1], fake_vector("gamma", 1536, "text-embedding-3-small"))
    assert result.usage_tokens == 3 == fake.stats["tokens_billed"] and result.requests == 1
    assert (result.provider, result.model, result.dimensions) == ("openai", "text-embedding-3-small", 1536)
    assert result.extra["x-ratelimit-remaining-requests"] == "2999"
    assert result.extra["x-ratelimit-remaining-tokens"] == str(1_000_000 - 3)
    assert {"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} <= result.extra.keys()


def test_dimensions_are_requested_only_where_supported(fake: FakeOpenAI) -> None:
    result = embed(embedder(fake, model="text-embedding-3-large", dimensions=256), ["short"])
    assert result.vectors.shape == (1, 256) and result.dimensions == 256
    assert np.linalg.norm(result.vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert embed(embedder(fake, model="text-embedding-ada-002"), ["old"]).vectors.shape == (1, 1536)

    seen: list[dict] = []
    vector = {"object": "embedding", "index": 0, "embedding": [1.0] * 1536}
    body = {"object": "list", "data": [vector], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    embed(scripted(200, body, seen=seen, model="text-embedding-ada-002"), ["x"])
    embed(scripted(200, body, seen=seen, model="text-embedding-3-small"), ["x"])
    assert "dimensions" not in seen[0] and seen[1]["dimensions"] == 1536
    assert seen[0]["encoding_format"] == seen[1]["encoding_format"] == "base64"
    for model, dims in (("text-embedding-ada-002", 256), ("text-embedding-3-small", 2000), ("text-embedding-4", None)):
        with pytest.raises(ValueError):
            OpenAIEmbedder(api_key=KEY, model=model, dimensions=dims)


def test_slow_responses_still_succeed(fake: FakeOpenAI) -> None:
    fake.faults.inject("slow:0.3")
    result = embed(embedder(fake, timeout=2.0), ["patience"])
    assert result.vectors.shape == (1, 1536) and fake.stats["status_200"] == 1


def test_health_is_free_and_reports_failures(fake: FakeOpenAI) -> None:
    ok, detail = asyncio.run(embedder(fake).health())
    assert ok and "text-embedding-3-small" in detail
    assert fake.stats["requests"] == 0  # a models lookup, not an embeddings call
    fake.faults.down = True
    ok, detail = asyncio.run(embedder(fake).health())
    assert not ok and "503" in detail
    ok, detail = asyncio.run(OpenAIEmbedder(api_key=KEY, base_url="http://127.0.0.1:9/v1", timeout=0.5).health())
    assert not ok and "Connection" in detail


# -- invalid responses ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["wrong_dimensions", "nan", "fewer_vectors", "malformed_json"])
def test_invalid_responses_are_transient_and_never_returned(fake: FakeOpenAI, fault: str) -> None:
    fake.faults.inject(fault)
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake), ["one", "two"])
    assert exc.value.code == "invalid_response"
    assert embed(embedder(fake), ["one", "two"]).vectors.shape == (2, 1536)  # the next call is fine


@pytest.mark.parametrize("data", [
    [{"index": 0, "embedding": [0.0] * 1536}],  # zero vector
    [{"index": 1, "embedding": [1.0] * 1536}],  # index out of range
    [{"index": 0, "embedding": "not base64!"}],
    [{"index": 0, "embedding": "AAAA"}, {"index": 0, "embedding": "AAAA"}],  # duplicate index
])
def test_other_invalid_bodies_are_transient(data: list[dict]) -> None:
    body = {"object": "list", "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    with pytest.raises(TransientError) as exc:
        embed(scripted(200, body), ["x"] * len(data))
    assert exc.value.code == "invalid_response"


def test_vectors_are_placed_by_index_and_usage_falls_back_to_total() -> None:
    data = [{"index": 1, "embedding": [2.0] * 1536}, {"index": 0, "embedding": [1.0] * 1536}]
    result = embed(scripted(200, {"object": "list", "data": data, "usage": {"total_tokens": 7}}), ["a", "b"])
    assert result.vectors[0, 0] == 1.0 and result.vectors[1, 0] == 2.0 and result.usage_tokens == 7


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "code"), [("500", "server_error"), ("503", "server_error"),
                                             ("drop", "connection_error"), ("timeout", "timeout")])
def test_transient_failures(fake: FakeOpenAI, fault: str, code: str) -> None:
    fake.faults.inject(fault)
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake, timeout=1.0), ["x"])
    assert exc.value.code == code
    expected = "dropped" if fault == "drop" else "status_200" if fault == "timeout" else f"status_{fault}"
    if fault != "timeout":  # the hung request is still being held by the server
        assert fake.stats[expected] == 1


@pytest.mark.parametrize(("raised", "possibly_billed"), [
    (httpx.ConnectTimeout, False), (httpx.PoolTimeout, False),  # nothing was sent
    (httpx.WriteTimeout, True), (httpx.ReadTimeout, True),  # sent: the provider may bill it
])
def test_a_timeout_after_sending_may_be_billed(raised: type[httpx.TimeoutException], possibly_billed: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise raised("timed out", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    e = OpenAIEmbedder(api_key=KEY, base_url="http://scripted.invalid/v1", http_client=client)
    with pytest.raises(TransientError) as exc:
        embed(e, ["x"])
    assert exc.value.code == "timeout" and exc.value.possibly_billed is possibly_billed


def test_faults_by_rate_and_over_http(fake: FakeOpenAI) -> None:
    httpx.post(f"{fake.base}/_control/faults", json={"inject": ["503"], "times": 2}).raise_for_status()
    for _ in range(2):
        with pytest.raises(TransientError):
            embed(embedder(fake), ["x"])
    httpx.post(f"{fake.base}/_control/faults", json={"rate": 1.0, "kinds": ["500"], "seed": 3}).raise_for_status()
    with pytest.raises(TransientError):
        embed(embedder(fake), ["x"])
    httpx.post(f"{fake.base}/_control/faults", json={"clear": True}).raise_for_status()
    embed(embedder(fake), ["x"])
    stats = httpx.get(f"{fake.base}/_control/stats").json()
    assert (stats["status_503"], stats["status_500"], stats["status_200"]) == (2, 1, 1)


def test_outage_switch(fake: FakeOpenAI) -> None:
    fake.faults.down = True
    for _ in range(3):
        with pytest.raises(TransientError) as exc:
            embed(embedder(fake), ["x"])
        assert exc.value.code == "server_error"
    fake.faults.down = False
    embed(embedder(fake), ["x"])


def test_rate_limit_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.faults.inject("429", "429:3.5")
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake), ["x"])
    assert exc.value.code == "rate_limited" and exc.value.retry_after == pytest.approx(0.2)
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake), ["x"])
    assert exc.value.retry_after == pytest.approx(3.5)


def test_quota_is_deferred_not_retried(fake: FakeOpenAI) -> None:
    fake.faults.inject("insufficient_quota")
    with pytest.raises(DeferredError) as exc:
        embed(embedder(fake), ["x"])
    assert exc.value.code == "provider_quota" and exc.value.retry_after == 3600


def test_auth_failure_is_permanent_and_never_shows_the_key(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-key-ABCDEFGHIJKLMNOP"
    e = embedder(fake, api_key=wrong)

    async def both() -> tuple[PermanentError, tuple[bool, str]]:
        with pytest.raises(PermanentError) as exc:
            await e.embed(["x"])
        return exc.value, await e.health()

    error, (ok, detail) = asyncio.run(both())
    assert error.code == "auth_failed" and "Incorrect API key provided" in error.message
    assert ok is False and "auth_failed" in detail
    for text in (str(error), repr(error), repr(e), detail):
        assert wrong not in text and KEY not in text
        assert "MNOP" not in text  # not even the masked fragment the provider echoes


def test_unknown_model_and_bad_requests(fake: FakeOpenAI) -> None:
    e = embedder(fake)
    e.model = "text-embedding-9"  # a model the server does not know
    with pytest.raises(PermanentError) as exc:
        embed(e, ["x"])
    assert exc.value.code == "model_not_found" and "text-embedding-9" in exc.value.message
    with pytest.raises(PermanentError) as exc:
        embed(embedder(fake), ["ok", ""])
    assert exc.value.code == "empty_input" and fake.stats["requests"] == 1  # never sent
    with pytest.raises(PermanentError) as exc:
        embed(embedder(fake), ["a"] * 2049)  # what batches() would have split
    assert exc.value.code == "bad_request" and "2048" in exc.value.message
    with pytest.raises(PermanentError) as exc:
        embed(embedder(fake), ["hello " * 9000])
    assert exc.value.code == "bad_request" and "maximum context length" in exc.value.message


def test_fake_rejects_empty_strings_on_the_wire(fake: FakeOpenAI) -> None:
    response = httpx.post(f"{fake.url}/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "text-embedding-3-small", "input": ["ok", ""]})
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("status", "headers", "error_class", "code"), [
    (400, {}, PermanentError, "bad_request"),
    (403, {}, PermanentError, "auth_failed"),
    (409, {}, TransientError, "conflict"),
    (408, {}, TransientError, "timeout"),
    (500, {"x-should-retry": "false"}, PermanentError, "provider_refused"),
    (400, {"x-should-retry": "true"}, TransientError, "retry_requested"),
    (429, {"retry-after-ms": "2500", "retry-after": "9"}, TransientError, "rate_limited"),
])
def test_status_classification(status: int, headers: dict[str, str], error_class: type, code: str) -> None:
    body = {"error": {"message": "provider says no", "type": "invalid_request_error", "param": None, "code": None}}
    with pytest.raises(error_class) as exc:
        embed(scripted(status, body, headers), ["x"])
    assert exc.value.code == code and "provider says no" in exc.value.message
    if status == 429:
        assert exc.value.retry_after == 2.5  # retry-after-ms wins


def test_server_enforces_rpm_with_headers() -> None:
    async def three_calls(e: OpenAIEmbedder) -> tuple[str, TransientError]:
        first = await e.embed(["a"])
        await e.embed(["b"])
        with pytest.raises(TransientError) as exc:
            await e.embed(["c"])
        return first.extra["x-ratelimit-remaining-requests"], exc.value

    with FakeOpenAI(api_key=KEY, rpm=2) as fake:
        remaining, error = asyncio.run(three_calls(embedder(fake)))
        assert fake.stats["rate_limited"] == 1 and fake.stats["status_429"] == 1
    assert remaining == "1"
    assert error.code == "rate_limited" and 50 < error.retry_after <= 60


def test_server_enforces_tpm() -> None:
    with FakeOpenAI(api_key=KEY, tpm=10, rpm=None) as fake:
        embed(embedder(fake), ["one two three four five six"])  # 6 tokens
        with pytest.raises(TransientError) as exc:
            embed(embedder(fake), ["one two three four five six"])
        assert exc.value.code == "rate_limited" and fake.stats["tokens_billed"] == 6
        assert fake.stats["inputs"] == 1


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "999"}) == 120.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}) == 120.0
    assert retry_after_seconds({"retry-after": "nan"}) is None
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
