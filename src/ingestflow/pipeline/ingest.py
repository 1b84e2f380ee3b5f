"""Turning files on disk into queued documents."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingestflow.errors import PermanentError
from ingestflow.pipeline.detect import detect_mime
from ingestflow.store import documents
from ingestflow.store.database import Database
from ingestflow.store.files import FileStore


@dataclass(frozen=True)
class Submitted:
    path: Path
    registration: documents.Registration


def iter_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str]]:
    """(file, source name) for every regular file under the paths, sorted, hidden skipped."""
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            yield root, os.path.normpath(raw)
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                    yield path, os.path.normpath(os.path.join(raw, rel))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")


def sniff_mime(data: bytes) -> str:
    """The detected type, or "" so that the parse stage fails the document with the reason."""
    try:
        return detect_mime(data)
    except PermanentError:
        return ""


async def submit_files(
    db: Database, files: FileStore, paths: Iterable[str | Path], *, tenant: str
) -> list[Submitted]:
    submitted = []
    for path, name in iter_files(paths):
        data = path.read_bytes()
        async with db.pool.connection() as conn, conn.transaction():
            reg = await documents.register(
                conn, tenant=tenant, source_name=name, data=data, mime=sniff_mime(data), files=files
            )
        submitted.append(Submitted(path, reg))
    return submitted
