"""Process-local Prometheus metrics (counters that happen in this process).

Database-wide figures (documents by stage, queue depth, spend) are read from Postgres at
scrape time by the API's collector, so every API server reports the same numbers. The
counters count only in a process that serves them (``count_here``: the API server); in a
CLI command or a worker nobody could read them, and prometheus-client is not imported
(a search through the mock embedder would import it for one call, ~15 ms).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter


_counting = False


def count_here() -> None:
    """From now on this process counts: it serves /metrics (api/app.py)."""
    global _counting
    _counting = True


@cache
def _counter(name: str, documentation: str, *labels: str) -> Counter:
    from prometheus_client import Counter

    return Counter(name, documentation, list(labels))


def budget_alert(service: str, kind: str) -> None:
    if _counting:
        _counter("ingestflow_budget_alerts_total", "Spend crossed the alert threshold of a limit",
                 "service", "kind").labels(service, kind).inc()


def provider_call(service: str, outcome: str) -> None:
    if _counting:
        _counter("ingestflow_provider_calls_total", "Calls to paid services by outcome",
                 "service", "outcome").labels(service, outcome).inc()
