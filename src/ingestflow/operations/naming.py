"""Names: of sources (the one rule a user has to predict) and of tenants, decided here for
every face.

A file inside the project folder (the folder holding the home, ``.ingestflow``) is called
by its path relative to that folder, however it was reached, as git names files: from
``proj/work``, ``ingest ../docs`` and ``ingest ../docs/sub/b.md`` both give ``docs/sub/b.md``,
so one file is one source. Outside it, a file inside a folder you name is called by its
path relative to that folder (``ingest docs`` gives ``a.pdf`` and ``sub/b.md``, however
``docs`` is spelled: ``./docs``, ``docs/``, an absolute path); a file you name directly is
called by its file name. ``--prefix`` goes in front of every name (two folders holding the
same relative names stay two sets of sources); ``--source-name`` names a single file. An
upload is called by the file name the client sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingestflow.config import HOME_FOLDER
from ingestflow.operations.errors import Refused

MAX_SOURCE_NAME_CHARS = 1024
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# C0 and C1 controls (NUL included) and lone surrogates (bytes that were not UTF-8).
_BAD_NAME_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_tenant(tenant: str) -> str:
    """Tenant names go into lock keys and labels: letters, digits, '.', '_' and '-' only.
    An API key's tenant passed this at the key's creation; the CLI's --tenant, at parsing."""
    if not _TENANT.match(tenant):
        raise Refused("invalid", "invalid_tenant", "Tenant names are 1-100 letters, digits, '.', '_' or '-'.")
    return tenant


def check_source_name(name: str) -> str:
    """The name, stripped, if it can label a document. Names are stored as PostgreSQL text
    (no NUL, valid UTF-8) and shown in tables, logs and JSON, where control characters
    would garble or forge the output."""
    stripped = name.strip()
    if not stripped:
        raise Refused("invalid", "invalid_name", "The file name is empty; give the file a name.")
    if len(stripped) > MAX_SOURCE_NAME_CHARS:
        raise Refused("invalid", "invalid_name",
                      f"The file name is longer than {MAX_SOURCE_NAME_CHARS} characters; shorten it.")
    bad = _BAD_NAME_CHAR.search(stripped)
    if bad is None:
        return stripped
    if "\ud800" <= bad.group() <= "\udfff":
        raise Refused("invalid", "invalid_name", "The file name is not valid UTF-8 text; rename the file.")
    raise Refused("invalid", "invalid_name",
                  f"The file name holds a control character (U+{ord(bad.group()):04X}); rename the file.")


def project_of(home: Path) -> Path | None:
    """The project folder of a home: the folder holding it, when it is a ``.ingestflow``
    folder (``ingestflow init``); a home elsewhere has none."""
    return home.parent if home.name == HOME_FOLDER else None


def _in_project(path: Path, project: Path | None) -> str | None:
    """The path relative to the project folder (``""`` for the folder itself), or None
    outside it. Resolved first: ``..``, symlinks and the working folder do not matter."""
    if project is None:
        return None
    try:
        rel = path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return None
    return "" if rel == "." else rel


def folder_names(folder: str | Path, *, prefix: str = "", project: Path | None = None) -> str:
    """What the name of every file under ``folder`` starts with (``sources`` names them)."""
    rel = _in_project(Path(folder), project)
    return prefix + (rel + "/" if rel else "")


def synced_names(folders: Iterable[str | Path], *, prefix: str, project: Path | None) -> tuple[str, ...]:
    """What the names of the documents a sync of ``folders`` compares with their files start with."""
    return tuple(sorted({folder_names(folder, prefix=prefix, project=project) for folder in folders}))


def sources(paths: Iterable[str | Path], *, prefix: str = "", name: str | None = None,
            project: Path | None = None) -> Iterator[tuple[Path, str]]:
    """(file, source name) for every regular file under ``paths``, sorted, hidden files and
    folders skipped; the naming rule is the module's (``project``: the project folder, if
    any). FileNotFoundError for a missing path."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            found.append((root, prefix + (_in_project(root, project) or root.name)))
        elif root.is_dir():
            under = folder_names(root, prefix=prefix, project=project)
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                    found.append((path, under + rel.as_posix()))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    if name is not None:
        if len(found) != 1:
            raise Refused("invalid", "source_name_needs_one_file",
                          f"--source-name names one file; the paths hold {len(found)}.")
        found = [(found[0][0], name)]
    yield from found


def check_sync(paths: Iterable[str | Path], name: str | None) -> None:
    """A sync compares folders with what was ingested from them: folders only, named by the rule."""
    if name is not None:
        raise Refused("invalid", "invalid_sync", "--sync keeps folders in sync; it does not take --source-name.")
    for path in map(Path, paths):
        if path.exists() and not path.is_dir():  # a missing one is no_such_path
            raise Refused("invalid", "invalid_sync", f"--sync keeps folders in sync; {str(path)!r} is a file.")
