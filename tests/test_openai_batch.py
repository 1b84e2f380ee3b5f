"""The Batch API client against the fake OpenAI server on loopback (real HTTP, real SDK).

The fake's batches advance with polls, so every test is deterministic and none waits on
a clock. A few line shapes the fake does not write (no usage, a line for an unknown id,
a file that is not JSONL) go through ``httpx.MockTransport``, as in test_openai_embedder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from ingestflow.errors import PermanentError, TransientError
from ingestflow.services import openai_batch
from ingestflow.services.openai_batch import (
    BatchRequest,
    BatchResults,
    BatchStatus,
    OpenAIBatchClient,
    RequestCounts,
)
from ingestflow.services.openai_embedder import OpenAIEmbedder
from ingestflow.testing.fake_openai import FakeOpenAI, fake_vector
from ingestflow.tokens import count_tokens

KEY = "sk-test-batch-SECRET-0123456789"
MODEL = "text-embedding-3-small"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, timeout_seconds=5) as server:
        yield server


def client(fake: FakeOpenAI, **kw: object) -> OpenAIBatchClient:
    return OpenAIBatchClient(api_key=kw.pop("api_key", KEY), base_url=fake.url, timeout=2.0, **kw)  # type: ignore[arg-type]


def lines(n: int, inputs: int = 2, prefix: str = "doc") -> list[BatchRequest]:
    return [BatchRequest(f"{prefix}-{i}", [f"{prefix} {i} chunk {j} about tides" for j in range(inputs)])
            for i in range(n)]


def expected(requests: list[BatchRequest]) -> dict[str, int]:
    return {r.custom_id: len(r.texts) for r in requests}


async def until_done(c: OpenAIBatchClient, batch_id: str) -> tuple[BatchStatus, list[str]]:
    seen = []
    for _ in range(20):
        status = await c.status(batch_id)
        seen.append(status.status)
        if status.done:
            return status, seen
    raise AssertionError(f"the batch never finished: {seen}")


def backfill(c: OpenAIBatchClient, requests: list[BatchRequest]) -> tuple[BatchStatus, BatchResults, list[str]]:
    """Submit, poll to the end, read the results: the whole flow in one event loop."""
    async def flow() -> tuple[BatchStatus, BatchResults, list[str]]:
        submitted = await c.submit(requests, metadata={"backfill": "test"})
        assert submitted.status == "validating" and submitted.input_file_id.startswith("file-")
        status, seen = await until_done(c, submitted.batch_id)
        return status, await c.results(status, expected(requests)), ["validating", *seen]

    return asyncio.run(flow())


def file_lines(fake: FakeOpenAI, file_id: str | None) -> list[dict]:
    assert file_id is not None
    response = httpx.get(f"{fake.url}/files/{file_id}/content", headers=AUTH)
    response.raise_for_status()
    return [json.loads(line) for line in response.content.splitlines()]


# -- success -------------------------------------------------------------------------------


def test_completed_batch_equals_the_sync_path_joined_by_custom_id(fake: FakeOpenAI) -> None:
    requests = [*lines(7), BatchRequest("single", ["one lonely input"])]
    status, results, seen = backfill(client(fake), requests)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert status.request_counts == RequestCounts(total=8, completed=8, failed=0) and status.errors == []
    assert status.expires_at == status.created_at + 86_400 and status.error_file_id is None
    assert results.failed == {} and results.succeeded.keys() == expected(requests).keys()

    sync = asyncio.run(OpenAIEmbedder(api_key=KEY, base_url=fake.url).embed([t for r in requests for t in r.texts]))
    row = 0
    for r in requests:
        line = results.succeeded[r.custom_id]
        assert line.vectors.dtype == np.float32 and line.vectors.shape == (len(r.texts), 1536)
        assert np.array_equal(line.vectors, sync.vectors[row:row + len(r.texts)])
        assert np.array_equal(line.vectors[0], fake_vector(r.texts[0], 1536, MODEL))
        assert line.usage_tokens == sum(count_tokens(t) for t in r.texts)
        row += len(r.texts)

    output = [line["custom_id"] for line in file_lines(fake, status.output_file_id)]
    assert sorted(output) == sorted(r.custom_id for r in requests)
    assert output != [r.custom_id for r in requests]  # shuffled: only the join on custom_id is right
    batch_tokens = sum(line.usage_tokens or 0 for line in results.succeeded.values())
    assert fake.stats["batch_tokens_billed"] == batch_tokens == sync.usage_tokens
    assert fake.stats["tokens_billed"] == sync.usage_tokens  # the sync call's own, not the batch's
    assert (fake.stats["batch_files"], fake.stats["batches"], fake.stats["batch_lines"],
            fake.stats["batch_inputs"]) == (1, 1, 8, 15)


def test_input_lines_follow_the_sync_request_shape(fake: FakeOpenAI) -> None:
    requests = lines(2, inputs=3)
    status, results, _ = backfill(client(fake, model="text-embedding-3-large", dimensions=256), requests)
    assert all(line.vectors.shape == (3, 256) for line in results.succeeded.values())
    [batch] = fake.batches.values()
    sent = batch.lines
    assert [line["custom_id"] for line in sent] == ["doc-0", "doc-1"]
    assert {(line["method"], line["url"]) for line in sent} == {("POST", "/v1/embeddings")}
    assert sent[0]["body"] == {"model": "text-embedding-3-large", "input": requests[0].texts,
                               "encoding_format": "base64", "dimensions": 256}
    assert batch.metadata == {"backfill": "test"}
    backfill(client(fake, model="text-embedding-ada-002"), lines(1))
    assert "dimensions" not in list(fake.batches.values())[-1].lines[0]["body"]


def test_batch_waits_for_its_seconds_too(fake: FakeOpenAI) -> None:
    fake.batch_polls_until_done, fake.batch_seconds_until_done = 1, 3600.0

    async def flow() -> list[BatchStatus]:
        c = client(fake)
        submitted = await c.submit(lines(3))
        return [await c.status(submitted.batch_id) for _ in range(5)]

    polled = asyncio.run(flow())
    assert {s.status for s in polled} == {"in_progress"} and not any(s.done for s in polled)
    assert polled[-1].output_file_id is None and polled[-1].request_counts.completed == 0


# -- limits --------------------------------------------------------------------------------


def test_limits_are_refused_before_any_upload(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    too_many_inputs = [BatchRequest(f"r{i}", ["x"] * 2000) for i in range(25)] + [BatchRequest("last", ["x"])]
    cases = [
        (too_many_inputs, "50001 embedding inputs"),
        ([BatchRequest(f"r{i}", ["x"]) for i in range(50_001)], "50001 requests"),
        ([BatchRequest("big", ["x"] * 2049)], "1 to 2048 inputs"),
        ([BatchRequest("same", ["a"]), BatchRequest("same", ["b"])], "unique"),
        ([BatchRequest("none", [])], "1 to 2048 inputs"),
        ([], "at least one request"),
    ]

    async def flow(c: OpenAIBatchClient) -> None:
        for requests, message in cases:
            with pytest.raises(ValueError, match=message):
                await c.submit(requests)
        with pytest.raises(PermanentError) as exc:
            await c.submit([BatchRequest("blank", ["ok", ""])])
        assert exc.value.code == "empty_input"
        assert fake.stats["batch_files"] == 0
        assert await c.submit([BatchRequest(f"r{i}", ["x"] * 2000) for i in range(25)])  # exactly 50,000
        monkeypatch.setattr(openai_batch, "MAX_FILE_BYTES", 1_000)
        with pytest.raises(ValueError, match="bytes: at most 1000"):
            await c.submit(lines(20))

    asyncio.run(flow(client(fake)))
    assert fake.stats["batch_files"] == 1  # only the batch of exactly 50,000 inputs went out


# -- failed, expired, cancelled ------------------------------------------------------------


def test_failed_batch_surfaces_its_errors(fake: FakeOpenAI) -> None:
    fake.batch_faults.inject("failed")
    status, results, seen = backfill(client(fake), lines(3))
    assert seen == ["validating", "failed"] and status.done
    assert len(status.errors) == 1 and status.errors[0].startswith("token_limit_exceeded: Enqueued token limit")
    assert status.output_file_id is None and results == BatchResults({}, {})
    assert fake.stats["batch_tokens_billed"] == 0 and fake.stats["batch_lines"] == 0


@pytest.mark.parametrize("report_unfinished", [False, True])
def test_expired_batch_keeps_what_finished(fake: FakeOpenAI, report_unfinished: bool) -> None:
    fake.batch_report_unfinished = report_unfinished
    fake.batch_faults.inject("expired")
    requests = lines(6)
    status, results, seen = backfill(client(fake), requests)
    assert seen[-1] == "expired" and "completed" not in seen
    assert sorted(results.succeeded) == ["doc-0", "doc-1", "doc-2"]  # half ran, in input order
    assert results.failed == {}  # the rest is in neither dict: the caller resubmits it
    if report_unfinished:  # the documented error-file form of "never ran": the same for the caller
        assert {line["error"]["code"] for line in file_lines(fake, status.error_file_id)} == {"batch_expired"}
    else:
        assert status.error_file_id is None
    assert fake.stats["batch_tokens_billed"] == sum(r.usage_tokens or 0 for r in results.succeeded.values())


@pytest.mark.parametrize("report_unfinished", [False, True])
def test_cancel_mid_way_keeps_what_ran(report_unfinished: bool) -> None:
    requests = lines(4)

    async def flow(c: OpenAIBatchClient) -> tuple[list[BatchStatus], BatchResults]:
        submitted = await c.submit(requests)
        first = await c.status(submitted.batch_id)  # one poll of four: one line ran
        cancelling = await c.cancel(submitted.batch_id)
        final, _ = await until_done(c, submitted.batch_id)
        return [first, cancelling, final], await c.results(final, expected(requests))

    with FakeOpenAI(api_key=KEY, batch_polls_until_done=5, batch_report_unfinished=report_unfinished) as fake:
        (first, cancelling, final), results = asyncio.run(flow(client(fake)))
        never_ran = {line["error"]["code"] for line in file_lines(fake, final.error_file_id)} \
            if report_unfinished else set()
    assert [first.status, cancelling.status, final.status] == ["in_progress", "cancelling", "cancelled"]
    assert final.request_counts == RequestCounts(total=4, completed=1, failed=0)
    assert list(results.succeeded) == ["doc-0"] and results.failed == {}
    assert never_ran == ({"batch_cancelled"} if report_unfinished else set())


def test_a_finished_batch_cannot_be_cancelled(fake: FakeOpenAI) -> None:
    async def flow(c: OpenAIBatchClient) -> PermanentError:
        submitted = await c.submit(lines(1))
        await until_done(c, submitted.batch_id)
        with pytest.raises(PermanentError) as exc:
            await c.cancel(submitted.batch_id)
        return exc.value

    error = asyncio.run(flow(client(fake)))
    assert error.code == "bad_request" and "status 'completed'" in error.message


# -- per-line failures ---------------------------------------------------------------------


def test_line_failures_come_from_the_error_file(fake: FakeOpenAI) -> None:
    fake.line_faults.inject("500", "timeout")
    requests = [*lines(3), BatchRequest("too-long", ["hello " * 9000])]
    status, results, _ = backfill(client(fake), requests)
    assert status.status == "completed" and status.request_counts == RequestCounts(4, 1, 3)
    assert list(results.succeeded) == ["doc-2"]
    server, timeout, refused = results.failed["doc-0"], results.failed["doc-1"], results.failed["too-long"]
    assert (server.code, server.permanent, server.billed_units) == ("server_error", False, None)
    assert (timeout.code, timeout.permanent) == ("request_timeout", False)
    assert (refused.code, refused.permanent) == ("bad_request", True)
    assert "maximum context length" in refused.message
    shapes = {line["custom_id"]: line for line in file_lines(fake, status.error_file_id)}
    assert shapes["doc-0"]["response"]["status_code"] == 500 and shapes["doc-0"]["error"] is None
    assert shapes["doc-1"]["response"] is None and shapes["doc-1"]["error"]["code"] == "request_timeout"
    assert fake.stats["batch_tokens_billed"] == results.succeeded["doc-2"].usage_tokens  # refusals are free


@pytest.mark.parametrize("fault", ["nan", "wrong_dimensions", "fewer_vectors"])
def test_invalid_lines_are_failed_and_billed(fake: FakeOpenAI, fault: str) -> None:
    fake.line_faults.inject(fault)
    requests = lines(3)
    status, results, _ = backfill(client(fake), requests)
    assert status.request_counts == RequestCounts(3, 3, 0)  # the provider thinks it answered
    bad = results.failed["doc-0"]
    assert bad.code == "invalid_response" and not bad.permanent
    assert bad.billed_units == sum(count_tokens(t) for t in requests[0].texts)
    assert sorted(results.succeeded) == ["doc-1", "doc-2"]
    billed = bad.billed_units + sum(r.usage_tokens or 0 for r in results.succeeded.values())
    assert fake.stats["batch_tokens_billed"] == billed


def test_line_faults_by_rate_and_over_http(fake: FakeOpenAI) -> None:
    httpx.post(f"{fake.base}/_control/faults",
               json={"line": {"rate": 1.0, "kinds": ["500"], "seed": 1}}).raise_for_status()
    _, results, _ = backfill(client(fake), lines(3))
    assert results.succeeded == {} and {f.code for f in results.failed.values()} == {"server_error"}
    httpx.post(f"{fake.base}/_control/faults", json={"line": {"clear": True}, "batch": {"inject": ["failed"]}})
    status, _, _ = backfill(client(fake), lines(1))
    assert status.status == "failed"


# -- the wire: shapes the fake does not write ----------------------------------------------


def scripted(files: dict[str, bytes], **kw: object) -> OpenAIBatchClient:
    """A client whose file downloads are answered from ``files``."""
    def answer(request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.split("/")[-2]
        return httpx.Response(200, content=files[file_id])

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return OpenAIBatchClient(api_key=KEY, base_url="http://scripted.invalid/v1", http_client=http, **kw)  # type: ignore[arg-type]


def done(output: str | None = "out", errors: str | None = None) -> BatchStatus:
    return BatchStatus("batch_1", "completed", output, errors, RequestCounts(), [], 0, None)


def test_results_read_every_line_shape() -> None:
    vector = {"index": 0, "embedding": [0.5] * 1536}
    ok = {"status_code": 200, "body": {"data": [vector]}}  # no usage reported
    jsonl = b"\n".join(json.dumps(line).encode() for line in [
        {"custom_id": "no-usage", "response": ok, "error": None},
        {"custom_id": "stranger", "response": ok, "error": None},  # not ours: ignored
        {"custom_id": "quota", "response": {"status_code": 429, "body": {"error": {
            "message": "You exceeded your current quota", "code": "insufficient_quota"}}}, "error": None},
        {"custom_id": "leaky", "response": None, "error": {"code": "server_error", "message": f"key {KEY}"}},
        {"custom_id": "never-ran", "response": None, "error": {"code": "batch_cancelled", "message": "cancelled"}},
        {"custom_id": "no-body", "response": {"status_code": 200, "body": None}, "error": None},
    ]) + b"\n\n"
    wanted = {"no-usage": 1, "quota": 1, "leaky": 1, "never-ran": 1, "no-body": 1}
    results = asyncio.run(scripted({"out": jsonl}).results(done(), wanted))
    assert list(results.succeeded) == ["no-usage"] and results.succeeded["no-usage"].usage_tokens is None
    assert results.succeeded["no-usage"].vectors[0, 0] == 0.5
    assert results.failed["quota"].code == "provider_quota" and not results.failed["quota"].permanent
    assert results.failed["leaky"].code == "server_error" and KEY not in results.failed["leaky"].message
    assert results.failed["no-body"].code == "invalid_response"
    assert "never-ran" not in results.failed and "stranger" not in results.failed


def test_a_file_that_is_not_jsonl_is_an_invalid_response() -> None:
    with pytest.raises(TransientError) as exc:
        asyncio.run(scripted({"out": b"<html>proxy error</html>"}).results(done(), {"a": 1}))
    assert exc.value.code == "invalid_response"
    assert asyncio.run(scripted({}).results(done(output=None), {"a": 1})) == BatchResults({}, {})


# -- HTTP failures -------------------------------------------------------------------------


def test_wrong_key_is_permanent_and_never_shown(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-batch-key-ABCDEFGHIJKLMNOP"
    c = client(fake, api_key=wrong)

    async def flow() -> list[PermanentError]:
        found = []
        for call in (c.submit(lines(1)), c.status("batch_x"), c.cancel("batch_x")):
            with pytest.raises(PermanentError) as exc:
                await call
            found.append(exc.value)
        return found

    errors = asyncio.run(flow())
    assert {e.code for e in errors} == {"auth_failed"} and "Incorrect API key provided" in errors[0].message
    for text in [repr(c), *(str(e) for e in errors), *(repr(e) for e in errors)]:
        assert wrong not in text and KEY not in text and "MNOP" not in text
    assert fake.stats["batch_files"] == 0


def test_http_failures_are_classified(fake: FakeOpenAI) -> None:
    c = client(fake)

    async def error_of(call: object) -> Exception:
        try:
            await call  # type: ignore[misc]
        except (TransientError, PermanentError) as exc:
            return exc
        raise AssertionError("no error")

    async def flow() -> list[Exception]:
        fake.batch_faults.inject("429", "500")
        found = [await error_of(c.submit(lines(1))), await error_of(c.submit(lines(1))),
                 await error_of(c.status("batch_missing"))]
        fake.faults.down = True
        found.append(await error_of(c.status("batch_missing")))
        fake.faults.down = False
        gone = OpenAIBatchClient(api_key=KEY, base_url="http://127.0.0.1:9/v1", timeout=0.5)
        found.append(await error_of(gone.status("batch_x")))
        return found

    limited, broken, missing, down, unreachable = asyncio.run(flow())
    assert isinstance(limited, TransientError) and limited.code == "rate_limited" and limited.retry_after == 0.2
    assert isinstance(broken, TransientError) and broken.code == "server_error"
    assert isinstance(missing, PermanentError) and missing.code == "not_found"
    assert isinstance(down, TransientError) and down.code == "server_error"
    assert isinstance(unreachable, TransientError) and unreachable.code == "connection_error"


# -- the fake refuses what the real service refuses ----------------------------------------


def upload(fake: FakeOpenAI, text: str, purpose: str = "batch", name: str = "in.jsonl") -> httpx.Response:
    return httpx.post(f"{fake.url}/files", headers=AUTH, files={"file": (name, text.encode())},
                      data={"purpose": purpose})


def create(fake: FakeOpenAI, file_id: str, **body: object) -> httpx.Response:
    return httpx.post(f"{fake.url}/batches", headers=AUTH, json={
        "input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h", **body})


def line(custom_id: str, model: str = MODEL, url: str = "/v1/embeddings") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": {"model": model, "input": ["hello"]}})


def test_fake_refuses_bad_uploads_and_bad_batch_parameters(fake: FakeOpenAI) -> None:
    assert upload(fake, line("a"), purpose="fine-tune").status_code == 400
    assert upload(fake, line("a"), name="in.csv").status_code == 400
    bad = upload(fake, line("a") + "\n{not json\n")
    assert bad.status_code == 400 and "line 2" in bad.json()["error"]["message"]
    good = upload(fake, line("a") + "\n")
    assert good.status_code == 200 and good.json()["purpose"] == "batch" and good.json()["bytes"] > 0
    file_id = good.json()["id"]
    assert httpx.get(f"{fake.url}/files/{file_id}", headers=AUTH).json()["filename"] == "in.jsonl"

    wrong_endpoint = create(fake, file_id, endpoint="/v1/chat/completions")
    wrong_window = create(fake, file_id, completion_window="48h")
    for response, param in ((wrong_endpoint, "endpoint"), (wrong_window, "completion_window")):
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert create(fake, "file-nope").status_code == 400
    assert create(fake, file_id, metadata={"n": 1}).status_code == 400
    assert fake.stats["batch_files"] == 1 and fake.stats["batches"] == 0


@pytest.mark.parametrize(("text", "code", "line_number"), [
    (line("a") + "\n" + line("b", model="text-embedding-3-large"), "model_mismatch", 2),
    (line("a") + "\n" + line("b", url="/v1/chat/completions"), "url_mismatch", 2),
    (line("a") + "\n" + line("a"), "duplicate_custom_id", 2),
    ("\n", "empty_file", None),
])
def test_fake_fails_invalid_files_at_validation(fake: FakeOpenAI, text: str, code: str,
                                                line_number: int | None) -> None:
    batch = create(fake, upload(fake, text).json()["id"])
    assert batch.status_code == 200 and batch.json()["status"] == "validating"
    polled = httpx.get(f"{fake.url}/batches/{batch.json()['id']}", headers=AUTH).json()
    assert polled["status"] == "failed" and polled["output_file_id"] is None
    [error] = polled["errors"]["data"]
    assert (error["code"], error["line"]) == (code, line_number)


def test_fake_counts_embedding_inputs_across_lines(fake: FakeOpenAI) -> None:
    body = {"model": MODEL, "input": ["x"] * 2000}
    text = "\n".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings", "body": body})
                     for i in range(26))  # 52,000 inputs in 26 lines
    batch = create(fake, upload(fake, text).json()["id"]).json()
    polled = httpx.get(f"{fake.url}/batches/{batch['id']}", headers=AUTH).json()
    assert polled["status"] == "failed" and polled["errors"]["data"][0]["code"] == "too_many_tasks"
