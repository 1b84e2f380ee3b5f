"""Raw file storage behind one small interface.

Files are content-addressed: the key is the sha256 of the bytes, never a client-supplied
name, so uploads cannot choose paths and identical uploads are stored once.

- ``LocalFileStore`` (default): a folder under INGESTFLOW_HOME; right for one machine, or
  several that share the folder.
- ``PostgresFileStore``: the bytes in the ``blobs`` table, written in the same transaction
  as the document row; right for workers on many machines sharing only the database.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from psycopg import AsyncConnection

from ingestflow.store.sql import query

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
FILES_LOCK = 7_203_118_416  # pg_advisory_lock key: a backup copying stored files (store/backup.py)


class FileStore(Protocol):
    """Many files per call: a batch of documents costs one round trip, not one per file."""

    async def put(self, conn: AsyncConnection, files: Mapping[str, bytes]) -> None: ...

    async def get(self, conn: AsyncConnection, keys: Sequence[str]) -> dict[str, bytes]:
        """The files found, by key; a missing one is left out."""
        ...

    async def delete(self, conn: AsyncConnection, sha256: str) -> None: ...


class PostgresFileStore:
    async def put(self, conn: AsyncConnection, files: Mapping[str, bytes]) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(query("insert_blob"), [{"sha256": k, "data": v} for k, v in files.items()])

    async def get(self, conn: AsyncConnection, keys: Sequence[str]) -> dict[str, bytes]:
        cur = await conn.execute(query("get_blobs"), {"keys": list(keys)})
        return {key: bytes(data) for key, data in await cur.fetchall()}

    async def delete(self, conn: AsyncConnection, sha256: str) -> None:
        await conn.execute(query("delete_blob"), {"sha256": sha256})


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError("file keys are sha256 hex digests")
        return self.root / sha256[:2] / sha256

    async def put(self, conn: AsyncConnection, files: Mapping[str, bytes]) -> None:
        await asyncio.to_thread(lambda: [self._write(self.path(k), v) for k, v in files.items()])

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: readers never see a half-written file
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, conn: AsyncConnection, keys: Sequence[str]) -> dict[str, bytes]:
        def read() -> dict[str, bytes]:
            found = {}
            for key in keys:
                try:
                    found[key] = self.path(key).read_bytes()
                except FileNotFoundError:
                    pass
            return found

        return await asyncio.to_thread(read)

    async def delete(self, conn: AsyncConnection, sha256: str) -> None:
        await conn.execute(query("backup_files_wait"), {"key": FILES_LOCK})  # not while a backup copies
        self.path(sha256).unlink(missing_ok=True)
