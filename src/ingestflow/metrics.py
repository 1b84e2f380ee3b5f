"""Process-local Prometheus metrics (counters that happen in this process).

Database-wide figures (documents by stage, queue depth, spend) are read from Postgres at
scrape time by the API's collector, so every API server reports the same numbers.
"""

from __future__ import annotations

from prometheus_client import Counter

BUDGET_ALERTS = Counter(
    "ingestflow_budget_alerts_total", "Spend crossed the alert threshold of a limit",
    ["service", "kind"],
)
PROVIDER_CALLS = Counter(
    "ingestflow_provider_calls_total", "Calls to paid services by outcome", ["service", "outcome"],
)
