"""The LlamaParse client against the fake LlamaParse server, the pipeline in REAL parser
mode, and the webhook flow end to end: fake provider -> signed callback -> our HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from api_support import live_server, wait_for
from pydantic import SecretStr
from support import SAMPLES, ingest, sql

from ingestflow.config import ServiceMode, Settings
from ingestflow.errors import DeferredError, PermanentError, TransientError
from ingestflow.services.llamaparse import LlamaParseParser
from ingestflow.services.webhooks import job_secret
from ingestflow.testing.fake_llamaparse import FakeLlamaParse

KEY = "llx-test-SECRET-abcdef123456"


def parse(fake: FakeLlamaParse, data: bytes, *, key: str = KEY, timeout: float = 5.0):  # noqa: ANN201
    async def main():  # noqa: ANN202
        async with httpx.AsyncClient() as client:
            parser = LlamaParseParser(api_key=key, base_url=fake.url, timeout=timeout, poll_initial=0.01,
                                      poll_max=0.05, client=client)
            return await parser.parse(data, "application/pdf", "docs/report.pdf")

    return asyncio.run(main())


def test_pdf_parses_with_pages_after_polling() -> None:
    with FakeLlamaParse(api_key=KEY, polls_until_done=3) as fake:
        parsed = parse(fake, (SAMPLES / "handbook.pdf").read_bytes())
        assert parsed.parser == "llamaparse" and parsed.usage_pages == 3
        assert "aurora borealis" in parsed.markdown
        assert fake.stats["polls"] == 3


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


def test_partial_success_is_accepted_and_stuck_jobs_time_out() -> None:
    with FakeLlamaParse(api_key=KEY) as fake:
        fake.faults.inject("partial")
        assert "Parsed by fake LlamaParse" in parse(fake, b"some words").markdown
        fake.faults.inject("stuck")
        with pytest.raises(TransientError) as exc:
            parse(fake, b"some words", timeout=0.3)
        assert exc.value.code == "parse_timeout"


def test_bad_key_is_permanent_and_hidden() -> None:
    wrong = "llx-wrong-SECRET-999"
    with FakeLlamaParse(api_key=KEY) as fake:
        with pytest.raises(PermanentError) as exc:
            parse(fake, b"text", key=wrong)
    assert exc.value.code == "auth_failed" and wrong not in str(exc.value)
    assert wrong not in repr(LlamaParseParser(api_key=wrong))


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


def test_webhook_flow_end_to_end(settings: Settings) -> None:
    """Submit with a callback URL and the per-job secret; the fake provider signs its
    delivery; our API verifies it and advances the document exactly once."""
    from test_webhooks import parsing_document

    from ingestflow.api import create_app

    master = "whsec-e2e-master"
    s = settings.model_copy(update={"llamaparse_webhook_secret": SecretStr(master)})
    doc = parsing_document(s)
    with FakeLlamaParse(api_key=KEY) as fake, live_server(create_app(s)) as api:
        async def submit() -> str:
            async with httpx.AsyncClient() as client:
                parser = LlamaParseParser(api_key=KEY, base_url=fake.url, client=client)
                return await parser.submit(b"Callback text from the provider.", "scan.txt",
                                           webhook_url=f"{api}/v1/webhooks/llamaparse?document={doc}",
                                           webhook_secret=job_secret(master, str(doc)))

        job_id = asyncio.run(submit())
        wait_for(lambda: fake.jobs[job_id].delivered, timeout=30)
        assert fake.jobs[job_id].delivered == [200]
    stage, parser = sql(s, "SELECT stage, parser FROM documents WHERE id = %s", (doc,))[0]
    assert (stage, parser) == ("parsed", "llamaparse")
    assert "Callback text" in sql(s, "SELECT markdown FROM document_texts WHERE document_id = %s", (doc,))[0][0]
