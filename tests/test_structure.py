"""The codebase's shape, checked deterministically: what each command imports at start
(not how long it takes: CI machines are noisy), which way imports run between layers,
and that every setting is documented."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingestflow.config import Settings
from support import ROOT, settings_env

SRC = ROOT / "src" / "ingestflow"
# Never needed by MOCK-mode commands: the OpenAI SDK, the web stack, the tokenizer.
HEAVY = {"openai", "fastapi", "uvicorn", "starlette", "tiktoken", "bpe_openai"}


def imported(settings: Settings, *args: str, cwd: Path) -> set[str]:
    """Top-level package names a real `python -X importtime -m ingestflow ...` loaded."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ingestflow", *args], cwd=cwd,
                          env=settings_env(settings), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", done.stderr, re.MULTILINE)
    assert names, done.stderr[:500]
    return {name.split(".")[0] for name in names}


def test_help_imports_nothing_but_typer(settings: Settings, tmp_path: Path) -> None:
    loaded = imported(settings, "--help", cwd=tmp_path)
    assert not loaded & (HEAVY | {"psycopg", "pydantic", "numpy", "structlog", "rich"})


def test_mock_commands_skip_the_sdk_the_web_stack_and_the_tokenizer(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Note\n\nThe tide tables are printed weekly.\n")
    ingested = imported(settings, "ingest", "note.md", cwd=tmp_path)
    assert not ingested & (HEAVY - {"tiktoken"})  # chunking counts tokens, nothing more
    for command in (["status"], ["status", "note.md"], ["search", "tide tables"], ["ingest", "note.md"]):
        assert not imported(settings, *command, cwd=tmp_path) & HEAVY, command


# Lower layers never import higher ones. A layer may import its own and any below it.
LAYERS = {
    "config": 0, "catalogue": 0, "lifecycle": 0, "errors": 0, "redaction": 0, "logging": 0, "tokens": 0,
    "metrics": 0,
    "store": 1,
    "services": 2,
    "testing": 3,  # fakes speak the providers' formats; production code never imports them
    "pipeline": 4, "worker": 4,
    "runtime": 5,
    "operations": 6,
    "api": 7, "client": 7,
    "cli": 8, "integrations": 8,  # the retrievers use the client
}
ALLOWED = {("cli", "testing")}  # `ingestflow fake-providers`, imported inside the command


def _imports(path: Path) -> set[str]:
    """Every ingestflow module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ingestflow"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ingestflow"))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_imports_run_one_way() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        here = _layer("ingestflow." + ".".join(path.relative_to(SRC).with_suffix("").parts))
        if here is None:
            continue
        for target in _imports(path):
            there = _layer(target)
            if there is None or there == here or (here, there) in ALLOWED:
                continue
            if LAYERS[there] > LAYERS[here] or there == "testing":
                wrong.append(f"{path.relative_to(ROOT)} ({here}) imports {target} ({there})")
    assert wrong == []


def test_config_reads_only_the_catalogue() -> None:
    assert {m.split(".")[1] for m in _imports(SRC / "config.py")} <= {"catalogue"}


def test_only_the_store_speaks_sql() -> None:
    """Queries live in store/sql/*.sql; nothing outside store/ executes SQL."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "store" in path.relative_to(SRC).parts:
            continue
        text = path.read_text()
        if re.search(r"\.execute\(\s*f?[\"']", text) or "store.sql import query" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_env_example(field: str) -> None:
    example = (ROOT / ".env.example").read_text()
    assert re.search(rf"^#?\s*{field.upper()}=", example, re.MULTILINE), f"{field.upper()} is not in .env.example"
