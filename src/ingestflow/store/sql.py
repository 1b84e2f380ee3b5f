"""Named SQL: each query lives in ``store/sql/<name>.sql`` so it can be read as SQL."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def query(name: str) -> str:
    return resources.files("ingestflow.store").joinpath("sql", f"{name}.sql").read_text()
