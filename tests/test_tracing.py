"""OpenTelemetry traces, read from the SDK's in-memory exporter: a document version is one
trace with a span per stage and its provider calls below; a search is one trace with the
query's embedding and the retrieval below it; an API request is one trace; log lines carry
the trace id; and no span holds a document's text, a query's text or a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api_support import live_server, make_key
from ingestflow import tracing
from ingestflow.config import Settings
from ingestflow.testing.fake_openai import FakeOpenAI
from provider_support import KEY, real
from support import find, ingest

TEXT = "The lighthouse keeper logs every passing ship in the blue ledger before dawn."
QUESTION = "who records the ships that pass the lighthouse"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


def _no_secrets(exporter: InMemorySpanExporter, *secrets: str) -> None:
    """Every name, attribute and event of every span, as text, holds none of ``secrets``."""
    for span in exporter.get_finished_spans():
        seen = json.dumps([span.name, dict(span.attributes or {}),
                           [(e.name, dict(e.attributes or {})) for e in span.events]], default=str)
        for secret in secrets:
            assert secret not in seen, (span.name, secret)


def test_a_document_version_is_one_trace_with_its_stages_and_provider_calls(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path, spans: InMemorySpanExporter) -> None:
    (tmp_path / "lighthouse.md").write_text(f"# Lighthouse\n\n{TEXT}\n")
    fake.faults.inject("500")  # the first attempt fails: an event on the call's span
    s = real(settings, fake)
    (submitted,), _ = ingest(s, [tmp_path / "lighthouse.md"])
    document = submitted.registration.document_id
    mine = [x for x in spans.get_finished_spans() if x.context.trace_id == document.int]
    stages = {x.name for x in mine if x.name.startswith("ingestflow.")}
    assert stages == {"ingestflow.parse", "ingestflow.chunk", "ingestflow.embed", "ingestflow.complete"}
    assert all(x.attributes["ingestflow.outcome"] == "ok" for x in mine if x.name.startswith("ingestflow."))
    (embed,) = [x for x in mine if x.name == "ingestflow.embed"]
    (call,) = [x for x in mine if x.name.startswith("embeddings ")]
    assert call.parent.span_id == embed.context.span_id
    a = call.attributes
    assert a["gen_ai.operation.name"] == "embeddings" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == s.openai_embedding_model and a["gen_ai.usage.input_tokens"] > 0
    assert a["ingestflow.cost_usd"] > 0 and a["ingestflow.attempts"] == 2 and a["ingestflow.outcome"] == "ok"
    assert [e.name for e in call.events] == ["attempt_failed"] and call.events[0].attributes["attempt"] == 1
    _no_secrets(spans, TEXT, "lighthouse keeper", KEY)


def test_a_search_is_one_trace_with_the_query_embedding_and_the_retrieval(
        settings: Settings, fake: FakeOpenAI, tmp_path: Path, spans: InMemorySpanExporter) -> None:
    (tmp_path / "lighthouse.md").write_text(f"# Lighthouse\n\n{TEXT}\n")
    s = real(settings, fake)
    ingest(s, [tmp_path / "lighthouse.md"])
    spans.clear()
    assert find(s, QUESTION).hits
    (root,) = [x for x in spans.get_finished_spans() if x.name == "ingestflow.search"]
    children = {x.name: x for x in spans.get_finished_spans()
                if x.parent is not None and x.parent.span_id == root.context.span_id}
    assert set(children) == {f"embeddings {s.openai_embedding_model}", "ingestflow.search.retrieve"}
    assert root.attributes["ingestflow.query.chars"] == len(QUESTION) and root.attributes["ingestflow.search.hits"] >= 1
    assert children["ingestflow.search.retrieve"].attributes["ingestflow.search.keyword"] is True
    _no_secrets(spans, TEXT, QUESTION, "records the ships", KEY)


def test_an_api_request_is_one_trace_and_logs_carry_its_id(settings: Settings, tmp_path: Path,
                                                           spans: InMemorySpanExporter) -> None:
    from ingestflow.api.app import create_app
    from ingestflow.logging import _trace_processor

    key = make_key(settings, "acme")
    with live_server(create_app(settings)) as url:
        answer = httpx.post(f"{url}/v1/search", json={"query": QUESTION}, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
    (request,) = [x for x in spans.get_finished_spans() if x.name == "POST /v1/search"]
    (search,) = [x for x in spans.get_finished_spans() if x.name == "ingestflow.search"]
    assert search.context.trace_id == request.context.trace_id
    _no_secrets(spans, QUESTION, key)
    with tracing.span("work") as current:
        ids = _trace_processor(None, "info", {"event": "x"})
    assert ids["trace_id"] == f"{current.get_span_context().trace_id:032x}"
    assert "trace_id" not in _trace_processor(None, "info", {"event": "x"})  # outside a span
