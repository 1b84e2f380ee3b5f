"""What the benchmarks share: fresh databases on the embedded server, generated corpora,
and an embedder wrapper that counts requests. Run the benchmarks as scripts
(``python bench/NAME.py``): this folder is then on the import path."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from ingestflow.config import Settings
from ingestflow.store import embedded
from ingestflow.store.database import database_url

TOPICS = ("invoice", "claim", "letter", "policy", "ticket", "memo", "faq", "receipt")
PDF_PAGES = 232


@contextmanager
def temporary_home() -> Iterator[Path]:
    """A temporary folder for a benchmark's home; the embedded server started under it
    stops before the folder is removed (else the removal races the server's writes)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            yield Path(tmp)
        finally:
            embedded.stop_all()


def fresh_database(settings: Settings) -> str:
    """A new, empty database on the server ``settings`` points at (or the embedded one)."""
    root = database_url(settings)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(root, dbname=name)


def stage_seconds(url: str) -> dict[str, float]:
    """Seconds per stage. A worker runs each stage for a whole batch and writes the batch's
    events in one transaction (one ``created_at``), each with the seconds since the stage
    began: the stage took the largest of them, once per batch."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT stage, sum(seconds) FROM ("
            "  SELECT stage, max((detail->>'seconds')::float) AS seconds FROM events"
            "  WHERE kind = 'stage_done' GROUP BY stage, created_at) batches GROUP BY stage").fetchall()
    return dict(rows)


def small_docs(folder: Path, n: int, *, first: int = 0) -> None:
    """``n`` one-paragraph Markdown documents (one chunk each), all different."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"{topic}-{i:05}.md").write_text(
            f"Customer {i} wrote about {topic} number {i * 7919 % 100003}: the delivery to depot "
            f"{i % 97} arrived {i % 13} days late and the {topic} was settled by the {TOPICS[(i + 3) % 8]} team.")


def make_pdf(path: Path, pages: int = PDF_PAGES) -> None:
    """A text PDF of ``pages`` pages, a few paragraphs each (fpdf2, deterministic)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    words = ("the quarterly report covers revenue costs staffing logistics warehouses shipping "
             "customers suppliers contracts audits forecasts risks").split()
    for page in range(1, pages + 1):
        pdf.add_page()
        for para in range(6):
            text = " ".join(words[(page * 7 + para * 3 + i) % len(words)] for i in range(60))
            pdf.multi_cell(0, 5, f"Page {page}, paragraph {para}: {text}.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


class CountingEmbedder:
    """The configured embedder, counting its requests (install with ``count_requests``)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def embed(self, texts: list[str]) -> object:
        self.calls += 1
        return await self.inner.embed(texts)  # type: ignore[attr-defined]


def count_requests(rt: object) -> CountingEmbedder:
    """Wrap the runtime's embedder (a cached property) in a counter."""
    counting = CountingEmbedder(rt.services.embedder)  # type: ignore[attr-defined]
    rt.services.__dict__["embedder"] = counting  # type: ignore[attr-defined]
    return counting
