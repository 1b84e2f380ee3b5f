"""Prometheus metrics read from the database at scrape time.

Every API server reports the same database-wide figures (documents by stage, stage
timings, provider calls and spend, breakers, the queue), whichever process did the
work. The snapshot is read asynchronously by the route and handed to a collector, since
prometheus-client collectors are synchronous.

They are aggregates over all tenants: labels are stages, services, models, outcome codes,
units and states, never a tenant, a document, a source name or an error message, so a
scrape tells nobody what a tenant holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ingestflow.lifecycle import Stage
from ingestflow.store.metrics import Snapshot

BREAKER_STATES = ("closed", "open", "half_open")


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        s = self.snapshot
        docs = GaugeMetricFamily("ingestflow_documents", "Documents (latest versions) by stage", labels=["stage"])
        counts = {r["stage"]: r["documents"] for r in s.stages}
        for stage in Stage:
            docs.add_metric([stage], counts.get(stage, 0))
        yield docs

        durations = SummaryMetricFamily("ingestflow_stage_duration_seconds",
                                        "Time spent in each pipeline stage", labels=["stage"])
        for r in s.durations:
            durations.add_metric([r["stage"]], count_value=r["runs"], sum_value=r["seconds"])
        yield durations

        calls = CounterMetricFamily("ingestflow_ledger_calls", "Paid-service calls by outcome",
                                    labels=["service", "model", "outcome"])
        units = CounterMetricFamily("ingestflow_ledger_units", "Billed units (tokens or pages)",
                                    labels=["service", "model", "unit"])
        cost = CounterMetricFamily("ingestflow_ledger_cost_usd", "Billed cost in USD",
                                   labels=["service", "model"])
        throttled = CounterMetricFamily("ingestflow_provider_rate_limited", "Calls answered 429",
                                        labels=["service"])
        per_unit: dict[tuple[str, str, str], float] = {}
        per_cost: dict[tuple[str, str], float] = {}
        per_429: dict[str, float] = {}
        for r in s.ledger:
            calls.add_metric([r["service"], r["model"], r["outcome"]], r["calls"])
            key = (r["service"], r["model"])
            per_unit[(*key, r["unit"])] = per_unit.get((*key, r["unit"]), 0) + float(r["units"])
            per_cost[key] = per_cost.get(key, 0) + r["cost_usd"]
            if r["outcome"] == "rate_limited":
                per_429[r["service"]] = per_429.get(r["service"], 0) + r["calls"]
        for labels, value in per_unit.items():
            units.add_metric(list(labels), value)
        for labels, value in per_cost.items():
            cost.add_metric(list(labels), value)
        for service, value in per_429.items():
            throttled.add_metric([service], value)
        yield from (calls, units, cost, throttled)

        breaker = GaugeMetricFamily("ingestflow_breaker_state", "Circuit breaker state (1 = current)",
                                    labels=["service", "state"])
        failures = GaugeMetricFamily("ingestflow_breaker_consecutive_failures",
                                     "Consecutive failures seen by the breaker", labels=["service"])
        for r in s.breakers:
            for state in BREAKER_STATES:
                breaker.add_metric([r["service"], state], 1 if r["state"] == state else 0)
            failures.add_metric([r["service"]], r["consecutive_failures"])
        yield from (breaker, failures)

        q = s.queue
        jobs = GaugeMetricFamily("ingestflow_queue_jobs", "Jobs by queue state", labels=["state"])
        for state in ("runnable", "waiting", "running"):
            jobs.add_metric([state], q[state])
        yield jobs
        yield GaugeMetricFamily("ingestflow_queue_oldest_runnable_age_seconds",
                                "How long the oldest runnable job has been waiting",
                                value=q["oldest_runnable_seconds"])


def exposition(snapshot: Snapshot) -> bytes:
    """The database snapshot plus this process's own counters (ingestflow.metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry) + generate_latest(REGISTRY)
