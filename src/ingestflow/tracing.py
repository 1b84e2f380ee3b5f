"""OpenTelemetry traces: off unless the OTel environment asks for them.

As the OpenTelemetry conventions say, tracing starts when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` is set; the SDK
reads the rest of its settings (headers, protocol, service name, sampler) from the same
environment. Off, nothing of OpenTelemetry is imported and every helper here is a no-op,
so a command pays nothing for it.

What is traced:
- a document version is one trace (its trace id is the version's id), with a span per
  stage a worker runs for it, wherever and whenever it runs, and the provider calls made
  for it below the stage;
- a search is one trace: the query's embedding (a provider call) and the retrieval;
- an API request is one trace (FastAPI's instrumentation), the search or upload below it.

A span never carries a document's text, a query's text or a secret: lengths and hashes
only (tests/test_tracing.py scans every exported span for them).
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

_tracer: Tracer | None = None
_provider: list[Any] = []  # the TracerProvider configure made (FastAPI's instrumentation takes it)
_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("ingestflow_trace_id", default=None)
EXPORTER_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER")


def wanted() -> bool:
    """Whether the environment asks for traces (``OTEL_TRACES_EXPORTER=none`` does not)."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporter not in ("", "none") or any(os.environ.get(v) for v in EXPORTER_VARIABLES[:2])


def configure(exporter: SpanExporter | None = None) -> None:
    """Start tracing, once per process, when the environment asks for it or ``exporter``
    (a test's in-memory one) is given."""
    global _tracer
    if _tracer is not None or (exporter is None and not wanted()):
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class DocumentTraceIds(RandomIdGenerator):
        """Random ids, except a trace id asked for by ``trace_of``: every stage of a document
        version, in any process, lands in the version's own trace."""

        def generate_trace_id(self) -> int:
            return _trace_id.get() or super().generate_trace_id()

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       "ingestflow")}),
                              id_generator=DocumentTraceIds())
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
        trace.set_tracer_provider(provider)  # global: libraries' own spans (the MCP SDK's) join ours
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("ingestflow")
    _provider.append(provider)


def reset() -> None:
    """Tracing off again (tests: each traced test has its own exporter)."""
    global _tracer
    _tracer = None
    _provider.clear()


def _exporter() -> SpanExporter:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: from the OTEL_ environment


def enabled() -> bool:
    return _tracer is not None


def _root(name: str, trace_of: uuid.UUID, attributes: dict[str, Any]) -> Span:
    """A span with no parent whose trace id is ``trace_of``'s 128 bits."""
    from opentelemetry import context

    assert _tracer is not None
    token = _trace_id.set(trace_of.int)
    try:
        return _tracer.start_span(name, context=context.Context(), attributes=_clean(attributes))
    finally:
        _trace_id.reset(token)


@contextmanager
def span(name: str, *, trace_of: uuid.UUID | None = None, **attributes: Any) -> Iterator[Span | None]:
    """A span, current while the block runs (None when tracing is off). ``trace_of``: a
    new trace, with that id's 128 bits as its trace id."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace

    if trace_of is None:
        with _tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
            yield current
        return
    with trace.use_span(_root(name, trace_of, attributes), end_on_exit=True) as current:
        yield current


@contextmanager
def document_spans(name: str, items: Iterable[Any]) -> Iterator[None]:
    """A span per document of a batch's stage, each in its document version's trace. The
    first is current while the stage runs: a provider call serving the whole batch nests
    below it and says how many documents it served."""
    items = list(items)
    if _tracer is None or not items:
        yield
        return
    from opentelemetry import trace

    spans = [_root(f"ingestflow.{name}", item.id, {"ingestflow.document.id": str(item.id),
                                                   "ingestflow.stage.from": item.stage,
                                                   "ingestflow.batch.documents": len(items)})
             for item in items]
    try:
        with trace.use_span(spans[0], end_on_exit=False):
            yield
    finally:
        for item, current in zip(items, spans, strict=True):
            outcome = item.outcome
            current.set_attribute("ingestflow.outcome", "ok" if outcome is None
                                  else getattr(outcome, "code", type(outcome).__name__))
            current.end()


def event(name: str, **attributes: Any) -> None:
    """An event on the current span (a deferral, a breaker decision, a retried attempt)."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().add_event(name, _clean(attributes))


def annotate(**attributes: Any) -> None:
    """Attributes on the current span, known only once its work is done."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().set_attributes(_clean(attributes))


def log_ids() -> dict[str, str]:
    """The current trace and span ids, for a log line; empty when none."""
    if _tracer is None:
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


def digest(text: str) -> str:
    """What a span may say of a text: a short hash, to tell two equal ones apart."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def instrument_app(app: Any) -> None:
    """FastAPI's own instrumentation: a trace per API request."""
    if _tracer is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider[0], excluded_urls="healthz,readyz,metrics")


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OTel takes str, bool, int, float and sequences of them; None is left out."""
    return {k: (str(v) if not isinstance(v, str | bool | int | float | list | tuple) else v)
            for k, v in attributes.items() if v is not None}
