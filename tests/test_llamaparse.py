"""The LlamaParse client against the fake LlamaParse server (real HTTP), the pipeline in REAL
parser mode, and the webhook flow: fake provider -> loopback receiver / our HTTP API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api_support import live_server, wait_for
from ingestflow.config import ServiceMode, Settings
from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.services.base import ParsedDocument
from ingestflow.services.llamaparse import LlamaParseParser
from ingestflow.services.webhooks import verify
from ingestflow.testing import FakeLlamaParse
from ingestflow.testing._server import LoopbackServer
from support import SAMPLES, ingest, search, sql

KEY = "llx-test-SECRET-abcdef123456"


def parser_for(fake: FakeLlamaParse, client: httpx.AsyncClient, *, key: str = KEY,
               timeout: float = 5.0) -> LlamaParseParser:
    return LlamaParseParser(api_key=key, base_url=fake.url, timeout=timeout, poll_initial=0.01,
                            poll_max=0.05, client=client)


def parse(fake: FakeLlamaParse, data: bytes, *, key: str = KEY, timeout: float = 5.0) -> ParsedDocument:
    async def main() -> ParsedDocument:
        async with httpx.AsyncClient() as client:
            return await parser_for(fake, client, key=key, timeout=timeout).parse(
                data, "application/pdf", "docs/report.pdf")

    return asyncio.run(main())


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A loopback webhook endpoint that records every delivery (headers, raw body)."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True})

    server = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    try:
        yield f"{server.base}/hook", received
    finally:
        server.stop()


# -- parse ---------------------------------------------------------------------------------


def test_pdf_parses_with_pages_after_polling() -> None:
    with FakeLlamaParse(api_key=KEY, polls_until_done=3) as fake:
        parsed = parse(fake, (SAMPLES / "handbook.pdf").read_bytes())
        assert parsed.parser == "llamaparse" and parsed.usage_pages == 3
        assert "aurora borealis" in parsed.markdown and parsed.markdown.count("\n---\n") == 2
        assert fake.stats["polls"] == 3 and fake.stats["uploads"] == 1


def test_jobs_can_take_time() -> None:
    with FakeLlamaParse(api_key=KEY, seconds_until_done=0.3) as fake:
        parsed = parse(fake, b"slow words")
        assert parsed.markdown == "# Parsed by fake LlamaParse\n\nslow words" and parsed.usage_pages == 1
        assert fake.stats["polls"] > 3  # kept polling, with backoff, until the job finished


@pytest.mark.parametrize(("fault", "error", "code"), [
    ("error", PermanentError, "parse_failed"), ("canceled", TransientError, "parse_canceled"),
    ("429", TransientError, "rate_limited"), ("500", TransientError, "server_error"),
    ("402", DeferredError, "provider_quota"),
])
def test_failures_are_classified(fault: str, error: type, code: str) -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        fake.faults.inject(fault)
        with pytest.raises(error) as exc:
            parse(fake, b"plain text")
        assert exc.value.code == code
        if fault == "429":
            assert exc.value.retry_after == pytest.approx(0.1)
        if fault == "error":
            assert "could not be read" in exc.value.message
        if fault == "402":
            assert "Insufficient credits" in exc.value.message and exc.value.retry_after == 3600


def test_rate_limited_upload_succeeds_when_the_caller_retries() -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        fake.faults.inject("429")
        with pytest.raises(TransientError) as exc:
            parse(fake, b"retry me")
        assert exc.value.code == "rate_limited"
        assert "retry me" in parse(fake, b"retry me").markdown
        assert fake.stats["uploads"] == 2 and fake.stats["status_429"] == 1 and len(fake.jobs) == 1


def test_unanswered_polls_do_not_upload_again() -> None:
    with FakeLlamaParse(api_key=KEY, polls_until_done=2) as fake:
        fake.poll_faults.inject("500", "429", "503")
        assert "patience" in parse(fake, b"patience").markdown
        assert fake.stats["uploads"] == 1 and fake.stats["polls"] == 2
        assert (fake.stats["status_500"], fake.stats["status_429"], fake.stats["status_503"]) == (1, 1, 1)


def test_partial_success_is_accepted_and_stuck_jobs_time_out() -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        fake.faults.inject("partial")
        assert "Parsed by fake LlamaParse" in parse(fake, b"some words").markdown
        fake.faults.inject("stuck")
        with pytest.raises(TransientError) as exc:
            parse(fake, b"some words", timeout=0.3)
        assert exc.value.code == "parse_timeout" and "PENDING" in exc.value.message


def test_faults_over_http() -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        httpx.post(f"{fake.url}/_control/faults", json={"inject": ["error"], "poll": {"inject": ["500"]}})
        with pytest.raises(PermanentError):
            parse(fake, b"text")
        assert httpx.get(f"{fake.url}/_control/stats").json()["status_500"] == 1


def test_bad_key_is_permanent_and_hidden() -> None:
    wrong = "llx-wrong-SECRET-999"
    with FakeLlamaParse(api_key=KEY) as fake:
        with pytest.raises(PermanentError) as exc:
            parse(fake, b"text", key=wrong)
        health = asyncio.run(LlamaParseParser(api_key=wrong, base_url=fake.url).health())
    assert exc.value.code == "auth_failed" and health[0] is False
    for text in (str(exc.value), repr(exc.value), repr(LlamaParseParser(api_key=wrong)), health[1]):
        assert wrong not in text


def test_health() -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        assert asyncio.run(LlamaParseParser(api_key=KEY, base_url=fake.url).health()) == (True, "LlamaParse reachable")
        fake.faults.down = True
        ok, detail = asyncio.run(LlamaParseParser(api_key=KEY, base_url=fake.url).health())
        assert not ok and "503" in detail
    ok, detail = asyncio.run(LlamaParseParser(api_key=KEY, base_url="http://127.0.0.1:9").health())
    assert not ok and "connection_error" in detail


def test_pages_fall_back_to_separators_without_metadata() -> None:
    """A result without ``job_metadata`` (scripted transport): pages from the separators."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"markdown": "one\n---\ntwo\n---\nthree"})

    parser = LlamaParseParser(api_key=KEY, base_url="http://scripted.invalid",
                              transport=httpx.MockTransport(answer))
    assert asyncio.run(parser.fetch_markdown("job-1")).usage_pages == 3


# -- webhooks ------------------------------------------------------------------------------


def test_submit_with_webhook_posts_the_signed_result_to_a_receiver() -> None:
    secret = "per-job-secret"
    with receiver() as (url, received), FakeLlamaParse(api_key=KEY) as fake:
        parser = LlamaParseParser(api_key=KEY, base_url=fake.url)
        job_id = asyncio.run(parser.submit(b"Callback text.", "dir/scan.txt", webhook_url=url,
                                           webhook_secret=secret))
        wait_for(lambda: received, timeout=10)
        headers, raw = received[0]
        fetched = asyncio.run(LlamaParseParser(api_key=KEY, base_url=fake.url).fetch_markdown(job_id))
    payload = json.loads(raw)
    assert (payload["job_id"], payload["status"], payload["pages"]) == (job_id, "SUCCESS", 1)
    assert payload["markdown"] == fetched.markdown == "# Parsed by fake LlamaParse\n\nCallback text."
    assert verify(secret, headers, raw) == f"evt-{job_id}"  # signed as services/webhooks.py specifies


def test_webhook_delivery_can_be_switched_off() -> None:
    with receiver() as (url, received), FakeLlamaParse(api_key=KEY, deliver_webhooks=False) as fake:
        async def submit() -> str:
            async with httpx.AsyncClient() as client:
                return await parser_for(fake, client).submit(b"quiet", "a.txt", webhook_url=url)

        job_id = asyncio.run(submit())
        assert fake.jobs[job_id].webhook_url == url
        asyncio.run(asyncio.sleep(0.3))
    assert received == [] and fake.stats["webhooks"] == 0


# -- through the pipeline (PostgreSQL) -----------------------------------------------------


def test_real_parser_mode_through_the_pipeline_records_pages_and_cost(settings: Settings, tmp_path: Path) -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        s = settings.model_copy(update={"parser_mode": ServiceMode.REAL, "parser_provider": "llamaparse",
                                        "llamaparse_api_key": SecretStr(KEY), "llamaparse_base_url": fake.url})
        ingest(s, [SAMPLES / "handbook.pdf"])
    assert sql(s, "SELECT stage, parser FROM documents")[0] == ("complete", "llamaparse")
    units, cost = sql(s, "SELECT units, cost_usd FROM ledger WHERE service = 'llamaparse' AND state = 'settled'")[0]
    assert units == 3 == fake.stats["pages_billed"]
    assert float(cost) == pytest.approx(3 * 3 * 1.25 / 1000)


def test_hybrid_parser_falls_back_to_local_and_records_it(settings: Settings) -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        fake.faults.down = True
        s = settings.model_copy(update={"parser_mode": ServiceMode.HYBRID, "parser_provider": "llamaparse",
                                        "llamaparse_api_key": SecretStr(KEY), "llamaparse_base_url": fake.url,
                                        "call_retry_attempts": 1})
        ingest(s, [SAMPLES / "notes.txt"])
    assert sql(s, "SELECT stage, parser FROM documents")[0] == ("complete", "local")
    assert sql(s, "SELECT detail->>'used' FROM events WHERE kind = 'fallback'")[0][0] == "local"


def _callback_env(fake: FakeLlamaParse, api: str, master: str, poll: float) -> dict[str, str]:
    return {"PARSER_MODE": "REAL", "PARSER_PROVIDER": "llamaparse", "LLAMAPARSE_API_KEY": KEY,
            "LLAMAPARSE_BASE_URL": fake.url, "LLAMAPARSE_WEBHOOK_SECRET": master,
            "LLAMAPARSE_WEBHOOK_URL": api, "LLAMAPARSE_POLL_SECONDS": str(poll)}


@pytest.mark.parametrize("delivered", [True, False], ids=["callback", "callback_lost"])
def test_callback_flow_end_to_end(settings: Settings, tmp_path: Path, delivered: bool) -> None:
    """A worker submits with a per-job callback URL and does not wait; the fake provider
    signs its delivery to our API, which applies it and wakes the job (or, when the
    callback is lost, the worker's fallback poll finds the result). Paid once, either way."""
    from ingestflow.api import create_app
    from support import start_worker, submit

    master = "whsec-e2e-master"
    s = settings.model_copy(update={"llamaparse_webhook_secret": SecretStr(master)})
    with FakeLlamaParse(api_key=KEY, deliver_webhooks=delivered, seconds_until_done=0.5) as fake, \
            live_server(create_app(s)) as api:
        submit(s, [SAMPLES / "handbook.pdf"])
        worker = start_worker(s, tmp_path / "w.log", **_callback_env(fake, api, master, 2.0 if delivered else 0.5))
        try:
            wait_for(lambda: sql(s, "SELECT stage FROM documents")[0][0] in ("complete", "failed"), timeout=60)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        delivered_statuses = [code for job in fake.jobs.values() for code in job.delivered]
    assert sql(s, "SELECT stage, parser FROM documents")[0] == ("complete", "llamaparse")
    assert fake.stats["uploads"] == 1 and delivered_statuses == ([200] if delivered else [])
    assert sql(s, "SELECT state FROM parse_jobs") == [("applied",)]
    units, cost = sql(s, "SELECT units, cost_usd FROM ledger WHERE service = 'llamaparse' AND state = 'settled'")[0]
    assert units == 3 and float(cost) == pytest.approx(3 * 3 * 1.25 / 1000)  # credits counted once
    kinds = [k for (k,) in sql(s, "SELECT kind FROM events WHERE kind IN ('parse_submitted', 'parse_callback',"
                                  " 'deferred') ORDER BY id")]
    assert kinds[:2] == ["parse_submitted", "deferred"]
    assert ("parse_callback" in kinds) == delivered
    hits = search(s, "aurora borealis charged particles", k=1)
    assert hits and hits[0].pages == []  # LlamaParse's Markdown has no page spans


def test_callback_reporting_an_error_fails_the_document_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    from ingestflow.api import create_app
    from support import start_worker, submit

    master = "whsec-e2e-master"
    s = settings.model_copy(update={"llamaparse_webhook_secret": SecretStr(master)})
    with FakeLlamaParse(api_key=KEY) as fake, live_server(create_app(s)) as api:
        fake.faults.inject("error")
        submit(s, [SAMPLES / "notes.txt"])
        worker = start_worker(s, tmp_path / "w.log", **_callback_env(fake, api, master, 30.0))
        try:
            wait_for(lambda: sql(s, "SELECT stage FROM documents")[0][0] == "failed", timeout=60)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    code, message = sql(s, "SELECT error_code, error_message FROM documents")[0]
    assert code == "parse_failed" and "could not be read by the parser" in message
    assert sql(s, "SELECT attempts FROM jobs")[0][0] <= 1 and fake.stats["uploads"] == 1
