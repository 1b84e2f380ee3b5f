"""The OpenAPI schema is complete and every operation described, and a property-based run
of schemathesis against a live server (real HTTP, real database) finds no server error and
no response that breaks it."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
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


HOSTILE = {"NUL": "a\x00b", "lone surrogate": "a\ud800b", "100k characters": "x" * 100_000}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _options(schema: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, spec)
    return [_resolve(s, spec) for s in schema.get("anyOf", [schema])]


def _string_paths(schema: dict[str, Any], spec: dict[str, Any], at: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Where a body of this schema holds text (nested objects included)."""
    for option in _options(schema, spec):
        if option.get("type") == "string" and option.get("format") != "binary":
            yield at
        for name, prop in option.get("properties", {}).items():
            yield from _string_paths(prop, spec, (*at, name))
        if option.get("type") == "array":
            yield from _string_paths(option["items"], spec, (*at, "[]"))


def _minimal(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """The smallest valid value: required properties only, each its plainest value."""
    option = _options(schema, spec)[0]
    if "enum" in option:
        return option["enum"][0]
    kind = option.get("type")
    if kind == "object":
        return {name: _minimal(option["properties"][name], spec) for name in option.get("required", [])}
    return {"string": "kites", "integer": option.get("minimum", 1), "number": 1, "boolean": False,
            "array": []}.get(kind)


def _with(body: dict[str, Any], at: tuple[str, ...], value: str) -> dict[str, Any]:
    """``body`` with ``value`` at ``at`` ("[]": the one item of a list)."""
    if not at:
        return value  # type: ignore[return-value]
    head, rest = at[0], at[1:]
    if head == "[]":
        return [_with({}, rest, value)]  # type: ignore[return-value]
    return {**body, head: _with(body.get(head) or {}, rest, value)}


def _quote(value: str) -> str:
    return quote(value, safe="", errors="surrogatepass")


def _raw_status(base: str, method: str, url: str, key: str) -> int:
    """The status of one request sent as bytes on a socket (the server's own limits apply)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(f"{method} {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        first = conn.makefile("rb").readline()
    return int(first.split()[1])


def test_every_string_field_of_every_route_survives_hostile_text(settings: Settings) -> None:
    """Every string a route takes (path, query, JSON body, nested; an upload's file name),
    walked from the OpenAPI schema, with a NUL, a lone surrogate and 100k characters: a 4xx
    answer or a success, never a server error."""
    key = make_key(settings, "fuzz")
    spec = create_app(settings).openapi()
    headers = {"Authorization": f"Bearer {key}"}
    tried, failures = [], []
    with live_server(create_app(settings)) as base, httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for path, item in spec["paths"].items():
            for method, op in item.items():
                params = op.get("parameters", [])
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                fields = [(p["in"], p["name"]) for p in params if p["in"] in ("path", "query")
                          and any(o.get("type") == "string" for o in _options(p["schema"], spec))]
                fields += [("body", ".".join(at)) for at in (_string_paths(body["schema"], spec) if body else [])]
                if path == "/v1/documents" and method == "post":
                    fields.append(("filename", "file"))
                for where, name in fields:
                    for what, value in HOSTILE.items():
                        url = path
                        for p in params:
                            if p["in"] == "path":
                                given = value if (where, name) == ("path", p["name"]) else str(uuid.uuid4())
                                url = url.replace("{" + p["name"] + "}", _quote(given))
                        required = {p["name"]: "kites" for p in params if p["in"] == "query" and p.get("required")}
                        if where == "query":
                            required[name] = value
                        if required:
                            url += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in required.items())
                        kwargs: dict[str, Any] = {}
                        if body:
                            minimal = _minimal(body["schema"], spec)
                            if where == "body":
                                minimal = _with(minimal, tuple(name.split(".")), value)
                            kwargs = {"content": json.dumps(minimal), "headers": {"Content-Type": "application/json"}}
                        if where == "filename":
                            raw = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
                                   + value.encode("utf-8", "surrogatepass")
                                   + b'"\r\nContent-Type: text/plain\r\n\r\n# Kites\n\nBox kites.\r\n--B--\r\n')
                            kwargs = {"content": raw, "headers": {"Content-Type": "multipart/form-data; boundary=B"}}
                        label = f"{method.upper()} {path} {where} {name} with {what}"
                        tried.append(label)
                        if len(url) > 60_000:  # beyond httpx's URL limit: the request line by hand
                            status = _raw_status(base, method.upper(), url, key)
                        else:
                            status = http.request(method.upper(), base + url, **kwargs).status_code
                        if status >= 500:
                            failures.append(f"{label}: {status}")
    assert not failures, "\n".join(failures)
    assert len(tried) >= 45 and {"POST /v1/search body filters.source_name with NUL",
                                 "POST /v1/search body filters.document_ids.[] with NUL"} <= set(tried), tried
