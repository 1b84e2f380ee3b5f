"""Turning files on disk into queued documents."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingestflow.errors import PermanentError
from ingestflow.pipeline.detect import detect_mime
from ingestflow.store import documents
from ingestflow.store.database import Database
from ingestflow.store.files import FileStore

MAX_SOURCE_NAME_CHARS = 1024
# C0 and C1 controls (NUL included) and lone surrogates (bytes that were not UTF-8).
_BAD_NAME_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Submitted:
    """One file's outcome: registered, or refused (``refused`` says why) with nothing stored."""

    path: Path
    name: str
    registration: documents.Registration | None
    refused: PermanentError | None = None


def check_source_name(name: str) -> str:
    """The name, stripped, if it can label a document, else PermanentError("invalid_name").

    Names are stored as PostgreSQL text (no NUL, valid UTF-8) and shown in tables, logs
    and JSON, where control characters would garble or forge the output.
    """
    stripped = name.strip()
    if not stripped:
        raise PermanentError("invalid_name", "The file name is empty; give the file a name.")
    if len(stripped) > MAX_SOURCE_NAME_CHARS:
        raise PermanentError("invalid_name",
                             f"The file name is longer than {MAX_SOURCE_NAME_CHARS} characters; shorten it.")
    bad = _BAD_NAME_CHAR.search(stripped)
    if bad is None:
        return stripped
    if "\ud800" <= bad.group() <= "\udfff":
        raise PermanentError("invalid_name", "The file name is not valid UTF-8 text; rename the file.")
    raise PermanentError("invalid_name", f"The file name holds a control character (U+{ord(bad.group()):04X}); "
                                         "rename the file.")


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
    """Register every file under ``paths``, one outcome each. A file whose name cannot label a
    document, or that cannot be read, is refused and the rest carry on; bad content is
    stored and fails in the pipeline, where the document shows why."""
    submitted = []
    for path, name in iter_files(paths):
        try:
            name = check_source_name(name)
            data = path.read_bytes()
        except PermanentError as exc:
            submitted.append(Submitted(path, name, None, exc))
            continue
        except OSError as exc:
            reason = PermanentError("unreadable_file", f"The file could not be read: {exc.strerror or exc}.")
            submitted.append(Submitted(path, name, None, reason))
            continue
        async with db.pool.connection() as conn, conn.transaction():
            reg = await documents.register(
                conn, tenant=tenant, source_name=name, data=data, mime=sniff_mime(data), files=files
            )
        submitted.append(Submitted(path, name, reg))
    return submitted
