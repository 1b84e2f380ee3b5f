"""LangChain's ``PGVector.add_documents`` on one-paragraph documents: the baseline of
bench/small_docs.py (issue 9's comparison, issue 29's goal of <= 0.5x).

    python -P bench/langchain_baseline.py URL FOLDER DIMENSIONS

Each file of FOLDER becomes one LangChain ``Document`` (the texts are one chunk each),
embedded by LangChain's deterministic fake embeddings of DIMENSIONS (one call, like the
mock) and written by langchain-postgres into a fresh database at URL (libpq conninfo). The
store's tables are made first, as our schema is before our run; printed: the seconds from
reading the files to the last insert. Run with ``-P``: this folder's requests.py would
shadow the package LangChain imports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_postgres import PGVector
from sqlalchemy import create_engine


def main() -> None:
    url, folder, dimensions = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url))
    store = PGVector(DeterministicFakeEmbedding(size=dimensions), connection=engine, collection_name="bench")
    started = time.perf_counter()
    texts = [(path.name, path.read_text()) for path in sorted(folder.iterdir())]
    store.add_documents([Document(page_content=text, metadata={"source": name}) for name, text in texts])
    print(time.perf_counter() - started)
    engine.dispose()


if __name__ == "__main__":
    main()
