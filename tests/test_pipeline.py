"""The pipeline end to end on the embedded Postgres: stages, search, re-ingest, versions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingestflow.config import Settings
from ingestflow.runtime import open_runtime
from ingestflow.store import database
from support import SAMPLES, event_details, ingest, search, sql, stages, submit

TOPICS = [
    ("Volcanoes", "Basaltic lava from shield volcanoes flows far because it is low in silica."),
    ("Bees", "Honey bees communicate the direction of flowers with a waggle dance."),
    ("Glaciers", "Glacial ice looks blue because it absorbs the red end of the spectrum."),
    ("Tides", "Spring tides happen when the sun and moon pull along the same line."),
]


def write_markdown(path: Path, topics: list[tuple[str, str]], filler: int = 40) -> None:
    parts = ["# Field notes\n"]
    for i, (title, fact) in enumerate(topics):
        parts.append(f"## {title}\n")
        parts.append(fact + "\n")
        parts.append(" ".join(f"Observation {i}.{j} about {title.lower()} was logged." for j in range(filler)) + "\n")
    path.write_text("\n".join(parts))


def test_migrations_are_idempotent(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    assert database.migrate(url) == []  # the template already holds every migration
    assert database.migrate(url) == []
    names = [r[0] for r in sql(settings, "SELECT name FROM schema_migrations ORDER BY version")]
    assert names == [name for _, name, _ in database.migrations()]


def test_samples_ingest_and_search(settings: Settings) -> None:
    submitted, processed = ingest(settings, [SAMPLES])
    assert processed == len(submitted) >= 5
    assert set(stages(settings).values()) == {"complete"}
    for fact_query, expected in [
        ("charged solar particles aurora borealis", "handbook.pdf"),
    ]:
        hits = search(settings, fact_query, k=3)
        assert hits and hits[0].source_name.endswith(expected), hits
    pdf_hit = search(settings, "charged solar particles aurora borealis", k=1)[0]
    assert pdf_hit.pages, "PDF chunks keep their page numbers"


def test_chunks_vectors_and_events_are_consistent(settings: Settings, tmp_path: Path) -> None:
    write_markdown(tmp_path / "notes.md", TOPICS)
    (submitted,), _ = ingest(settings, [tmp_path / "notes.md"])
    doc = submitted.registration.document_id
    chunks = sql(settings, "SELECT count(*), min(ordinal), max(ordinal) FROM chunks WHERE document_id = %s", (doc,))[0]
    assert chunks[0] >= 2 and chunks[1] == 0 and chunks[2] == chunks[0] - 1
    vecs = sql(settings, "SELECT count(*), min(vector_dims(embedding)), max(vector_dims(embedding)),"
                         " min(l2_norm(embedding)), max(l2_norm(embedding))"
                         " FROM embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE c.document_id = %s", (doc,))[0]
    assert vecs[0] == chunks[0] and vecs[1] == vecs[2] == 1536
    # float16 storage: a unit vector's norm is 1 within half-precision (epsilon 1e-3)
    assert vecs[3] == pytest.approx(1.0, abs=1e-3) and vecs[4] == pytest.approx(1.0, abs=1e-3)
    kinds = [r[0] for r in sql(settings, "SELECT stage FROM events WHERE document_id = %s AND kind = 'stage_done' ORDER BY id", (doc,))]
    assert kinds == ["parsed", "chunked", "embedded", "complete"]
    heading = sql(settings, "SELECT metadata->'heading_path' FROM chunks WHERE document_id = %s AND text LIKE %s",
                  (doc, "%waggle dance%"))[0][0]
    assert heading == ["Field notes", "Bees"]
    hits = search(settings, "waggle dance direction of flowers", k=2)
    assert "waggle dance" in hits[0].text


def test_reingest_unchanged_does_no_work(settings: Settings, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_markdown(docs / "notes.md", TOPICS)
    ingest(settings, [docs])
    events_before = sql(settings, "SELECT count(*) FROM events")[0][0]
    submitted, processed = ingest(settings, [docs])
    assert [s.registration.duplicate for s in submitted] == [True]
    assert processed == 0
    assert sql(settings, "SELECT count(*) FROM events")[0][0] == events_before  # no embedder call, no stage
    # the same bytes under another name in the same tenant are the same document
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "again.md").write_bytes((docs / "notes.md").read_bytes())
    (dup,) = submit(settings, [tmp_path / "copy"])
    assert dup.registration.duplicate and dup.registration.document_id == submitted[0].registration.document_id
    # but another tenant gets its own document
    (other,) = submit(settings, [docs / "notes.md"], tenant="acme")
    assert not other.registration.duplicate


def test_edit_reembeds_only_changed_chunks_and_swaps_versions(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"chunk_max_tokens": 128, "chunk_overlap_tokens": 0})
    path = tmp_path / "notes.md"
    write_markdown(path, TOPICS)
    (first,), _ = ingest(settings, [path])
    v1 = first.registration.document_id
    total_v1 = sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (v1,))[0][0]

    edited = list(TOPICS)
    edited[2] = ("Glaciers", "Glacial ice is blue: dense ice absorbs red light and scatters blue light back.")
    write_markdown(path, edited)
    (second,), _ = ingest(settings, [path])
    v2 = second.registration.document_id
    assert second.registration.version == 2 and v2 != v1
    (detail,) = event_details(settings, v2, "stage_done", "embedded")
    total_v2 = sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (v2,))[0][0]
    assert detail["embedded"] + detail["reused"] == total_v2
    assert 1 <= detail["embedded"] <= 2 and detail["reused"] >= total_v1 - 2
    # the old version is retired in the same transaction that made v2 current
    rows = sql(settings, "SELECT version, is_current, superseded_at IS NOT NULL FROM documents ORDER BY version")
    assert rows == [(1, False, True), (2, True, False)]
    assert sql(settings, "SELECT count(*) FROM chunks WHERE document_id = %s", (v1,))[0][0] == 0
    hits = search(settings, "dense ice absorbs red light", k=1)
    assert hits[0].version == 2 and "scatters blue light" in hits[0].text


def test_old_version_stays_searchable_until_new_one_completes(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    write_markdown(path, TOPICS)
    ingest(settings, [path])
    write_markdown(path, [*TOPICS[:3], ("Tides", "Neap tides are weak because sun and moon pull at right angles.")])
    (second,) = submit(settings, [path])  # queued, not yet processed
    assert second.registration.version == 2
    hits = search(settings, "spring tides sun and moon same line", k=1)
    assert hits[0].version == 1 and "Spring tides" in hits[0].text


def test_bad_inputs_fail_alone_with_clear_errors(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    write_markdown(folder / "good.md", TOPICS[:1], filler=5)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "image.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\ngarbage" + b"\x00" * 64)
    submitted, _ = ingest(settings, [folder])
    refused = {s.name: s.refused for s in submitted if s.refused is not None}
    # Bytes that cannot be indexed are refused before anything is stored, as the API does.
    assert refused["empty.txt"].code == "empty_document"
    assert refused["image.pdf"].code == "unsupported_type" and "PNG" in refused["image.pdf"].message
    # Bytes that look right but do not parse fail alone, with the parser's reason.
    rows = {r[0]: r[1:] for r in sql(settings, "SELECT source_name, stage, error_code, error_message FROM documents")}
    assert set(rows) == {"good.md", "broken.pdf"}
    assert rows["good.md"][0] == "complete"
    assert rows["broken.pdf"][:2] == ("failed", "corrupt_file")
    assert "Traceback" not in rows["broken.pdf"][2] and len(rows["broken.pdf"][2]) < 500


def test_search_never_mixes_embedding_spaces(settings: Settings, tmp_path: Path) -> None:
    write_markdown(tmp_path / "notes.md", TOPICS)
    ingest(settings, [tmp_path / "notes.md"])
    small = settings.model_copy(update={"mock_embedding_dimensions": 256})
    # The configured model's space is empty: search answers from the tenant's active space,
    # with the query embedded by that space's model, and says so.
    from ingestflow.operations.search import search as run_search
    from ingestflow.runtime import open_runtime

    async def main() -> Any:
        async with open_runtime(small) as rt:
            return await run_search(rt, "default", "waggle dance", k=3)

    result = asyncio.run(main())
    assert result.hits and "waggle" in result.hits[0].text
    assert "searched mock/mock-hashing-v2 (1536d)" in result.notes[0] and "covers 0 of 1" in result.notes[0]
    spaces = sql(settings, "SELECT provider, model, dimensions FROM embedding_spaces ORDER BY id")
    assert spaces == [("mock", "mock-hashing-v2", 1536), ("mock", "mock-hashing-v2", 256)]
    assert sql(settings, "SELECT DISTINCT space_id FROM embeddings") == [(1,)]  # nothing written to the other


def test_runtime_reuses_one_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With DATABASE_URL unset, two runtimes on one INGESTFLOW_HOME share a server and data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = Settings(ingestflow_home=tmp_path / "home")

    async def count() -> int:
        async with open_runtime(s) as rt, rt.db.pool.connection() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS probe (x int)")
            await conn.execute("INSERT INTO probe VALUES (1)")
            await conn.commit()
            return (await (await conn.execute("SELECT count(*) FROM probe")).fetchone())[0]

    assert asyncio.run(count()) == 1
    assert asyncio.run(count()) == 2
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()


def test_transient_failures_retry_with_backoff_then_fail(settings: Settings, tmp_path: Path) -> None:
    """A stored file that went missing is not the document's fault: retried, then failed."""
    settings = settings.model_copy(update={"max_attempts": 3})
    write_markdown(tmp_path / "notes.md", TOPICS[:1], filler=2)
    (sub,) = submit(settings, [tmp_path / "notes.md"])
    for stored in (settings.home / "files").rglob("*"):
        if stored.is_file():
            stored.unlink()
    doc = sub.registration.document_id

    async def work_until_failed() -> None:
        async with open_runtime(settings) as rt:
            for _ in range(100):  # each drain ends when the retry is not due yet
                await rt.drain([doc]).run()
                if sql(settings, "SELECT stage FROM documents WHERE id = %s", (doc,))[0][0] == "failed":
                    return
                await asyncio.sleep(0.1)

    asyncio.run(work_until_failed())
    stage, code, message = sql(settings, "SELECT stage, error_code, error_message FROM documents WHERE id = %s",
                               (doc,))[0]
    assert (stage, code) == ("failed", "file_missing")
    assert message.startswith("gave up after 3 attempts") and "missing" in message
    retries = [r[0] for r in sql(settings, "SELECT detail->>'attempt' FROM events WHERE document_id = %s"
                                 " AND kind = 'retry_scheduled' ORDER BY id", (doc,))]
    assert retries == ["1", "2"]


def test_hnsw_index_is_built_once_a_space_is_big_enough(settings: Settings, tmp_path: Path) -> None:
    write_markdown(tmp_path / "notes.md", TOPICS)
    ingest(settings, [tmp_path / "notes.md"])
    before = search(settings, "waggle dance direction of flowers", k=3)
    assert sql(settings, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'embeddings_%%_space_%%'")[0][0] == 0
    from ingestflow.store import vectors

    url = settings.database_url.get_secret_value()
    assert asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(10_000, settings.hnsw_binary_min_dimensions))) == []  # too small yet
    assert asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(2, settings.hnsw_binary_min_dimensions))) == [1]
    assert asyncio.run(vectors.build_indexes(url, vectors.IndexPolicy(2, settings.hnsw_binary_min_dimensions))) == []  # idempotent
    valid = sql(settings, "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                          " WHERE c.relname = 'embeddings_hnsw_space_1'")
    assert valid == [(True,)]
    graph = settings.model_copy(update={"search_exact_max_chunks": 0})  # else these few chunks are compared exactly
    after = search(graph, "waggle dance direction of flowers", k=3)
    assert [h.ordinal for h in after] == [h.ordinal for h in before]  # same answers, now indexed
