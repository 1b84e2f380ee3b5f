"""Bad input found by attacking the API and the CLI: each gets a clear 4xx, or a failed
document with a readable code, and never a 500, a retry loop or a traceback. Real HTTP
on loopback, real database, real CLI processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_support import auth, live_server, make_key
from ingestflow.api import create_app
from ingestflow.config import Settings
from support import ingest, run_cli, sql
from test_parsing import docx_with

BOUNDARY = b"BOUND"
TEXT = b"# Harbour\n\nThe harbour master logs every ship that enters after dusk.\n"


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[httpx.Client, str]]:
    """A client of a live server, and a key of tenant acme."""
    key = make_key(settings, "acme")
    with live_server(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, key


def multipart(filename: bytes, data: bytes, *, closed: bool = True) -> bytes:
    """A raw multipart body with one file part; without the closing boundary unless ``closed``."""
    body = (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data)
    return body + b"\r\n--" + BOUNDARY + b"--\r\n" if closed else body


def post_raw(client: httpx.Client, key: str, body: bytes) -> httpx.Response:
    headers = {**auth(key), "Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}
    return client.post("/v1/documents", headers=headers, content=body)


def error(response: httpx.Response, status: int, code: str) -> str:
    """The error message, after checking the status, the one error shape and the code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]["message"]


@pytest.mark.parametrize(("filename", "words"), [
    (b"report\x00.txt", "control character (U+0000)"),
    (b"line\nbreak.txt", "control character (U+000A)"),
    (b"bell\x07.txt", "control character (U+0007)"),
    ("c1\u0085.txt".encode(), "control character (U+0085)"),
    (b"latin1-\xe9.txt", "not valid UTF-8"),
    (b"   ", "empty"),
    (b"n" * 1025, "longer than 1024 characters"),
])
def test_unusable_file_names_answer_400(settings: Settings, api: tuple[httpx.Client, str], filename: bytes,
                                        words: str) -> None:
    client, key = api
    message = error(post_raw(client, key, multipart(filename, TEXT)), 400, "invalid_name")
    assert words in message and message.endswith("."), message
    assert sql(settings, "SELECT count(*) FROM documents") == [(0,)]


def test_acceptable_names_are_kept(settings: Settings, api: tuple[httpx.Client, str]) -> None:
    client, key = api
    longest = "n" * 1020 + ".txt"
    assert post_raw(client, key, multipart(longest.encode(), TEXT)).status_code == 201
    assert post_raw(client, key, multipart("  Résumé – été.md ".encode(), TEXT + b"2")).status_code == 201
    assert sorted(sql(settings, "SELECT source_name FROM documents")) == [("Résumé – été.md",), (longest,)]


def test_nul_bytes_anywhere_make_a_file_binary(settings: Settings, api: tuple[httpx.Client, str]) -> None:
    client, key = api
    late_nul = TEXT * 400 + b"tail\x00end\n"  # far past the first 8 KB
    assert len(late_nul) > 20_000
    message = error(post_raw(client, key, multipart(b"notes.txt", late_nul)), 415, "unsupported_type")
    assert "binary data" in message and "NUL bytes" in message, message
    utf16 = ("Plain words.\n" * 1000 + "x\x00y").encode("utf-16")
    assert "NUL" in error(post_raw(client, key, multipart(b"wide.txt", utf16)), 415, "unsupported_type")
    assert sql(settings, "SELECT count(*) FROM documents") == [(0,)]


@pytest.mark.parametrize("body", [
    multipart(b"cut.txt", TEXT, closed=False),  # the client stopped after the data
    multipart(b"cut.txt", TEXT)[:-4],  # inside the closing boundary
    multipart(b"cut.txt", TEXT)[:60],  # inside the part's headers
])
def test_a_body_cut_before_its_closing_boundary_is_refused(settings: Settings, api: tuple[httpx.Client, str],
                                                           body: bytes) -> None:
    client, key = api
    assert "cut short" in error(post_raw(client, key, body), 400, "bad_multipart")
    assert post_raw(client, key, multipart(b"whole.txt", TEXT)).status_code == 201
    assert sql(settings, "SELECT source_name FROM documents") == [("whole.txt",)]


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", "\ufeff \n\t".encode("utf-16")])
def test_a_byte_order_mark_alone_is_an_empty_document(settings: Settings, api: tuple[httpx.Client, str],
                                                      data: bytes) -> None:
    client, key = api
    assert "empty" in error(post_raw(client, key, multipart(b"bom.txt", data)), 400, "empty_document")
    assert sql(settings, "SELECT count(*) FROM documents") == [(0,)]


def test_latin1_text_is_stored_as_the_right_unicode(settings: Settings, api: tuple[httpx.Client, str],
                                                    tmp_path: Path) -> None:
    client, key = api
    latin1 = "Le café du port sert une crème brûlée à l'équipage.\n".encode("latin-1")
    cp1252 = b"# Menu\n\nThe chef\x92s \x93special\x94 costs \x8010.\n"
    assert post_raw(client, key, multipart(b"cafe.txt", latin1)).status_code == 201
    assert post_raw(client, key, multipart(b"menu.md", cp1252)).status_code == 201
    assert sorted(sql(settings, "SELECT source_name, mime FROM documents")) == [
        ("cafe.txt", "text/plain"), ("menu.md", "text/markdown")]
    # The same bytes through the pipeline: chunks hold the decoded text.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cafe.txt").write_bytes(latin1)
    (tmp_path / "in" / "menu.md").write_bytes(cp1252)
    ingest(settings, [tmp_path / "in"], tenant="local")
    texts = sql(settings, "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
                          " WHERE d.tenant = 'local' ORDER BY d.source_name")
    assert [t.strip() for (t,) in texts] == ["Le café du port sert une crème brûlée à l'équipage.",
                                             "# Menu\n\nThe chef\u2019s \u201cspecial\u201d costs €10."]


def test_bad_content_through_the_cli_is_refused_or_fails_once_with_its_reason(settings: Settings,
                                                                                tmp_path: Path) -> None:
    """The CLI refuses what the API refuses (nothing stored), and what only parsing can
    tell fails at its first attempt with a clear code, never retried as "internal_error"."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "late-nul.txt").write_bytes(TEXT * 400 + b"\x00")
    (folder / "bomb.docx").write_bytes(docx_with(b"<w:p/>" * 1_000_000))
    (folder / "good.md").write_bytes(TEXT)
    submitted, _ = ingest(settings, [folder])
    refused = {s.name: s.refused for s in submitted if s.refused is not None}
    assert list(refused) == ["late-nul.txt"]
    assert refused["late-nul.txt"].code == "unsupported_type" and "NUL bytes" in refused["late-nul.txt"].message
    rows = sql(settings, "SELECT d.source_name, d.stage, d.error_code, d.error_message, j.attempts"
                         " FROM documents d JOIN jobs j ON j.document_id = d.id ORDER BY 1")
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("bomb.docx", "failed", "too_complex", 1),
        ("good.md", "complete", None, 1),
    ]
    assert "paragraphs" in rows[0][3]


def test_cli_refuses_bad_names_reports_failures_and_exits_1(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "in"  # the working directory is tmp_path: names stay short in the table
    folder.mkdir()
    (folder / "good.md").write_bytes(TEXT)
    (folder / "tab\there.md").write_bytes(TEXT + b"tab")
    (folder / "[bold]markup.md").write_bytes(TEXT + b"markup")
    (folder / "zeros.txt").write_bytes(TEXT + b"\x00" * 16)
    out = run_cli(settings, "ingest", "in")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "invalid_name" in out.stdout and "tab\\there.md" in out.stdout
    assert "unsupported_type" in out.stdout and "[bold]markup.md" in out.stdout
    assert "complete: 2  failed: 0  refused: 2" in out.stdout
    assert sorted(sql(settings, "SELECT source_name, stage FROM documents")) == [
        ("[bold]markup.md", "complete"), ("good.md", "complete")]
    missing = run_cli(settings, "ingest", "nowhere")
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr and not missing.stdout
    assert "Traceback" not in missing.stdout + missing.stderr
