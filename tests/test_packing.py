"""The one request packer, against each model's catalogue limits, and the fake OpenAI
server enforcing the very same limits (so an off-by-one in either shows)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ingestflow.catalogue import EMBEDDING_MODELS, embedding_model, openai_model
from ingestflow.errors import PermanentError
from ingestflow.services.openai_embedder import OpenAIEmbedder
from ingestflow.services.packing import pack
from ingestflow.testing.fake_openai import FakeOpenAI
from ingestflow.tokens import count_tokens

KEY = "sk-test-packing-0123456789"
SMALL = openai_model("text-embedding-3-small")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, rpm=None, tpm=None) as server:
        yield server


def test_openai_requests_fill_to_the_limits() -> None:
    assert [len(r) for r in pack([1] * 3000, SMALL)] == [2048, 952]
    ranges = pack([8000] * 100, SMALL)  # 37 x 8000 = 296,000 <= 300,000 per request
    assert [len(r) for r in ranges] == [37, 37, 26]
    assert [r.start for r in ranges] == [0, 37, 74] and ranges[-1].stop == 100
    assert [len(r) for r in pack([8000] * 37 + [4000, 1], SMALL)] == [38, 1]  # exactly the cap fits
    assert pack([], SMALL) == []


def test_smaller_configured_limits_win() -> None:
    assert [len(r) for r in pack([10] * 10, SMALL, max_inputs=4)] == [4, 4, 2]
    assert [len(r) for r in pack([10] * 10, SMALL, max_tokens=25)] == [2, 2, 2, 2, 2]
    assert [len(r) for r in pack([30] * 2, SMALL, max_tokens=25)] == [1, 1]  # one input always goes


def test_input_over_the_model_limit_is_permanent() -> None:
    assert len(pack([SMALL.max_input_tokens], SMALL)) == 1
    with pytest.raises(PermanentError) as exc:
        pack([10, SMALL.max_input_tokens + 1], SMALL)
    assert exc.value.code == "input_too_long" and "input 1" in exc.value.message


@pytest.mark.parametrize("name", sorted(EMBEDDING_MODELS))
def test_every_model_packs_every_input_once_in_order(name: str) -> None:
    model = embedding_model(name)
    ranges = pack([100] * 5000, model)
    assert [i for r in ranges for i in r] == list(range(5000))
    if model.max_inputs_per_request is not None:
        assert all(len(r) <= model.max_inputs_per_request for r in ranges)


def _text_of(tokens: int) -> str:
    text = " a" * tokens  # " a" is one cl100k token
    assert count_tokens(text) == tokens
    return text


def test_fake_accepts_exactly_what_the_packer_allows(fake: FakeOpenAI) -> None:
    longest = _text_of(SMALL.max_input_tokens)
    full = [longest] * 36 + [_text_of(300_000 - 36 * SMALL.max_input_tokens)]
    assert len(pack([count_tokens(t) for t in full], SMALL)) == 1

    async def main() -> None:
        client = OpenAIEmbedder(api_key=KEY, base_url=fake.url, timeout=30)
        assert (await client.embed([longest])).usage_tokens == SMALL.max_input_tokens
        with pytest.raises(PermanentError) as exc:  # one more token: the fake says 400, as agreed
            await client.embed([longest + " a"])
        assert exc.value.code == "bad_request"
        assert (await client.embed(full)).usage_tokens == 300_000
        with pytest.raises(PermanentError):  # one token over the request's cap
            await client.embed(full + ["a"])

    asyncio.run(main())
