"""The OpenAPI schema is complete and every operation described, and a property-based run
of schemathesis against a live server (real HTTP, real database) finds no server error and
no response that breaks it."""

from __future__ import annotations

import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api_support import live_server, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings

EXAMPLES_PER_OPERATION = 25
OPAQUE_INPUTS = ("POST /v1/documents", "GET /v1/documents", "GET /v1/documents/{document_id}/chunks")


def test_openapi_schema_is_complete(settings: Settings) -> None:
    spec = create_app(settings).openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert {f"{m.upper()} {p}" for p, m, _ in operations} >= {
        "POST /v1/documents", "GET /v1/documents", "GET /v1/documents/{document_id}",
        "GET /v1/documents/{document_id}/chunks", "POST /v1/documents/{document_id}/retry",
        "DELETE /v1/documents/{document_id}", "POST /v1/search", "GET /v1/costs", "GET /v1/dashboard",
        "POST /v1/webhooks/llamaparse", "GET /healthz", "GET /readyz", "GET /metrics",
        "GET /v1/spaces", "POST /v1/reembed",
    }
    for path, method, op in operations:
        ok = op["responses"].get("200") or op["responses"].get("201") or op["responses"].get("202")
        assert ok and ok.get("content"), f"{method} {path} has no success response schema"
        for status in ("422", "500"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse"), (method, path, status)
        if path.startswith("/v1/") and "webhooks" not in path:
            assert "401" in op["responses"], f"{method} {path} does not document 401"
            assert op.get("security"), f"{method} {path} does not declare its authentication"
    upload = spec["paths"]["/v1/documents"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]


def test_every_operation_is_described(settings: Settings) -> None:
    """A description, not only a summary: FastAPI makes one up from the function's name."""
    spec = create_app(settings).openapi()
    bare = [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method, op in item.items()
            if not op.get("summary", "").strip() or not op.get("description", "").strip()]
    assert bare == [], "docstrings (descriptions) missing"


def test_schemathesis_finds_no_server_errors(settings: Settings) -> None:
    key = make_key(settings, "fuzz")
    failures: list[str] = []
    started = time.monotonic()
    with live_server(create_app(settings)) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
        for result in schema.get_all_operations():
            operation = result.ok()
            # Schema-valid but still refused, by design: any bytes are a valid upload, but only
            # some are documents (415 / 400); any string is a valid cursor, but only the API's
            # own cursors are accepted (400).
            excluded = [positive_data_acceptance] if operation.label in OPAQUE_INPUTS else []
            runs = ((GenerationMode.POSITIVE, {"excluded_checks": excluded}),
                    (GenerationMode.NEGATIVE, {"checks": [not_a_server_error]}))
            for mode, checks in runs:
                failure = _run(operation.as_strategy(generation_mode=mode, headers=headers), base, checks)
                if failure:
                    failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 240


def _run(strategy: Any, base: str, checks: dict[str, Any]) -> str | None:
    """Up to EXAMPLES_PER_OPERATION cases of one operation; the first failure, shrunk, or None."""

    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                         derandomize=True)
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base, **checks)

    try:
        run()
    except Unsatisfiable:
        if "excluded_checks" in checks:
            raise
        return None  # nothing about this operation can be made invalid (e.g. no parameters)
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis raises (groups of) failures
        return str(exc)[:3000]
    return None
