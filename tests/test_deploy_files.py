"""`compose.yaml` and the `Dockerfile`, checked as far as a machine without Docker allows:
every command they run parses as an ingestflow command line, every variable they set is
one ingestflow reads and `.env.example` documents, every path they copy exists, and the
health check asks a route the API serves. (There is no Docker here to build or run them.)"""

from __future__ import annotations

import json
import re
import shlex

import typer.main
import yaml

from ingestflow.cli.main import app
from ingestflow.config import Settings
from support import ROOT

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCUMENTED = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
OURS = {"db"}  # services that run another image, with that image's variables


def _parses(argv: list[str]) -> None:
    """``argv`` is a command line the ingestflow CLI accepts (Click parses it as it would run it)."""
    assert argv[0] == "ingestflow", argv
    command = typer.main.get_command(app)
    group = type(command)  # Typer's group class (Typer carries its own copy of Click)
    name, args = "ingestflow", argv[1:]
    while isinstance(command, group):
        name, command, args = command.resolve_command(command.make_context("ingestflow", list(args)), args)
        assert command is not None, argv
    command.make_context(name, list(args))  # raises on an unknown option or a bad value


def _settings_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


def test_every_compose_command_is_an_ingestflow_command_line() -> None:
    commands = [s["command"] for name, s in COMPOSE["services"].items() if name not in OURS]
    assert len(commands) == 2
    for command in commands:
        _parses(command if isinstance(command, list) else shlex.split(command))


def test_every_variable_compose_and_the_image_set_is_read_and_documented() -> None:
    known = _settings_variables()
    given = set(COMPOSE["x-ingestflow-env"])
    for name, service in COMPOSE["services"].items():
        if name not in OURS and isinstance(service.get("environment"), dict):
            given |= set(service["environment"])
    env_block = re.search(r"^ENV (.+?)(?=^\S)", DOCKERFILE, re.M | re.S).group(1)
    image = {m for m in re.findall(r"([A-Z][A-Z0-9_]+)=", env_block) if not m.startswith(("PYTHON", "PIP_"))}
    for variable in given | image:
        assert variable in known, f"{variable} is set but ingestflow reads no such setting"
        assert variable in DOCUMENTED, f"{variable} is set but .env.example does not document it"


def test_the_image_copies_what_exists_runs_a_command_line_and_checks_a_served_route() -> None:
    for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
    _parses(json.loads(re.search(r"^CMD (\[.+\])$", DOCKERFILE, re.M).group(1)))
    checked = re.search(r"urlopen\('http://127\.0\.0\.1:8000(/[a-z]+)'", DOCKERFILE).group(1)
    from starlette.routing import Match

    from ingestflow.api.app import create_app

    request = {"type": "http", "path": checked, "method": "GET", "root_path": ""}
    assert any(route.matches(request)[0] is Match.FULL for route in create_app(Settings()).router.routes), checked
    assert "EXPOSE 8000" in DOCKERFILE and "8000:8000" in COMPOSE["services"]["api"]["ports"]
