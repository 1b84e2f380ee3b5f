"""The real OpenAI client against the fake OpenAI server on loopback (real HTTP, real SDK)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.services.openai_embedder import OpenAIEmbedder, retry_after_seconds
from ingestflow.testing.fake_openai import FakeOpenAI, fake_vector

KEY = "sk-test-openai-SECRET-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, timeout_seconds=5) as server:
        yield server


def embedder(fake: FakeOpenAI, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=kw.pop("api_key", KEY), base_url=fake.url, timeout=kw.pop("timeout", 2.0), **kw)  # type: ignore[arg-type]


def embed(e: OpenAIEmbedder, texts: list[str]):  # noqa: ANN201
    return asyncio.run(e.embed(texts))


def test_success_decodes_base64_in_order_with_usage(fake: FakeOpenAI) -> None:
    result = embed(embedder(fake), ["alpha beta", "gamma"])
    assert result.vectors.shape == (2, 1536) and result.vectors.dtype == np.float32
    assert np.allclose(result.vectors[1], fake_vector("gamma", 1536, "text-embedding-3-small"))
    assert result.usage_tokens == 3 and result.requests == 1
    assert (result.provider, result.model, result.dimensions) == ("openai", "text-embedding-3-small", 1536)


def test_dimensions_are_requested(fake: FakeOpenAI) -> None:
    result = embed(embedder(fake, dimensions=256), ["short"])
    assert result.vectors.shape == (1, 256)
    assert np.linalg.norm(result.vectors[0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        OpenAIEmbedder(api_key=KEY, model="text-embedding-ada-002", dimensions=256)


def test_batches_pack_to_the_limits() -> None:
    e = OpenAIEmbedder(api_key=KEY)
    assert [len(r) for r in e.batches([1] * 3000)] == [2048, 952]
    ranges = e.batches([8000] * 100)  # 35 x 8000 = 280,000 <= 285,000 per request
    assert [len(r) for r in ranges] == [35, 35, 30]
    with pytest.raises(PermanentError) as exc:
        e.batches([10, 9000])
    assert exc.value.code == "input_too_long"


@pytest.mark.parametrize("fault", ["wrong_dimensions", "nan", "fewer_vectors", "malformed_json"])
def test_invalid_responses_are_transient_and_never_returned(fake: FakeOpenAI, fault: str) -> None:
    fake.faults.inject(fault)
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake), ["one", "two"])
    assert exc.value.code == "invalid_response"
    assert embed(embedder(fake), ["one", "two"]).vectors.shape == (2, 1536)  # the next call is fine


@pytest.mark.parametrize(("fault", "code"), [("500", "server_error"), ("503", "server_error"),
                                             ("drop", "connection_error"), ("timeout", "timeout")])
def test_transient_failures(fake: FakeOpenAI, fault: str, code: str) -> None:
    fake.faults.inject(fault)
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake, timeout=1.0), ["x"])
    assert exc.value.code == code


def test_slow_responses_still_succeed(fake: FakeOpenAI) -> None:
    fake.faults.inject("slow")
    result = embed(embedder(fake, timeout=2.0), ["patience"])
    assert result.vectors.shape == (1, 1536) and fake.stats["status_200"] == 1


def test_rate_limit_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.faults.inject("429")
    with pytest.raises(TransientError) as exc:
        embed(embedder(fake), ["x"])
    assert exc.value.code == "rate_limited" and exc.value.retry_after == pytest.approx(0.2)


def test_quota_is_deferred_not_retried(fake: FakeOpenAI) -> None:
    fake.faults.inject("insufficient_quota")
    with pytest.raises(DeferredError) as exc:
        embed(embedder(fake), ["x"])
    assert exc.value.code == "provider_quota"


def test_auth_failure_is_permanent_and_never_shows_the_key(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-key-ABCDEFGHIJKLMNOP"
    e = embedder(fake, api_key=wrong)
    with pytest.raises(PermanentError) as exc:
        embed(e, ["x"])
    assert exc.value.code == "auth_failed"
    for text in (str(exc.value), repr(exc.value), repr(e)):
        assert wrong not in text and KEY not in text
    assert asyncio.run(e.health())[0] is False


def test_unknown_model_and_empty_input(fake: FakeOpenAI) -> None:
    e = embedder(fake)
    e.model = "text-embedding-9"  # a model the server does not know
    with pytest.raises(PermanentError) as exc:
        embed(e, ["x"])
    assert exc.value.code == "model_not_found"
    with pytest.raises(PermanentError) as exc:
        embed(embedder(fake), ["ok", ""])
    assert exc.value.code == "empty_input"


def test_server_enforces_rpm_with_headers() -> None:
    async def three_calls(e: OpenAIEmbedder) -> tuple[str, TransientError]:
        first = await e.embed(["a"])
        await e.embed(["b"])
        with pytest.raises(TransientError) as exc:
            await e.embed(["c"])
        return first.extra["x-ratelimit-remaining-requests"], exc.value

    with FakeOpenAI(api_key=KEY, rpm=2) as fake:
        remaining, error = asyncio.run(three_calls(embedder(fake)))
    assert remaining == "1"
    assert error.code == "rate_limited" and 50 < error.retry_after <= 60


def test_health_is_free(fake: FakeOpenAI) -> None:
    ok, detail = asyncio.run(embedder(fake).health())
    assert ok and "text-embedding-3-small" in detail
    assert fake.stats["requests"] == 0  # a models lookup, not an embeddings call


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "999"}) == 120.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None
