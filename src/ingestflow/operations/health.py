"""Which services are configured, whether they are healthy, and everything `doctor` shows.

Health checks of real providers are network calls, so each is bounded by a timeout (the
CLI's `doctor` as much as the API), and the API caches the results for a few seconds: a
dashboard polling every 2 s must not turn into a stream of provider requests, nor hang.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ingestflow.catalogue import EmbeddingModel
from ingestflow.config import Home, ServiceMode
from ingestflow.operations import costs
from ingestflow.runtime import Runtime
from ingestflow.store import breakers, database, documents, embedded, vectors
from ingestflow.store.outage import DatabaseUnavailable

CACHE_SECONDS = 15.0
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Service:
    name: str  # embeddings | parser
    mode: str  # MOCK | REAL | HYBRID
    provider: str


@dataclass(frozen=True)
class Health:
    service: Service
    healthy: bool
    detail: str


def configured(rt: Runtime) -> list[Service]:
    s, services = rt.settings, rt.services
    embedder = services.embedder
    return [Service("embeddings", s.embeddings_service_mode.value, f"{embedder.provider}/{embedder.model}"),
            Service("parser", s.parser_service_mode.value, services.parser.name)]


async def check(rt: Runtime) -> list[Health]:
    """Each configured service's own free health check, each bounded by a timeout."""
    out = []
    for service, impl in zip(configured(rt), (rt.services.embedder, rt.services.parser), strict=True):
        try:
            ok, detail = await asyncio.wait_for(impl.health(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            ok, detail = False, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s"
        out.append(Health(service, ok, detail))
    return out


class HealthCache:
    """``check`` at most every CACHE_SECONDS per process."""

    def __init__(self) -> None:
        self._at = 0.0
        self._value: list[Health] = []
        self._lock = asyncio.Lock()

    async def get(self, rt: Runtime) -> list[Health]:
        async with self._lock:
            if time.monotonic() - self._at > CACHE_SECONDS:
                self._value = await check(rt)
                self._at = time.monotonic()
            return self._value


async def database_ready(rt: Runtime, timeout: float) -> bool:
    try:
        async with rt.db.pool.connection(timeout=timeout) as conn:
            await database.ping(conn)
    except (DatabaseUnavailable, TimeoutError, OSError):
        return False
    return True


@dataclass(frozen=True)
class Doctor:
    settings: dict[str, Any]  # secrets masked
    home: Home  # which home, and how it was found
    services: list[Health]
    embedding_model: EmbeddingModel  # the catalogue entry chunks and requests follow
    server_version: str
    pgvector_version: str
    database: str  # where it is
    self_check: str | None  # the embedded server's self-check, None with DATABASE_URL
    breakers: list[dict[str, Any]]
    spend: costs.Spend
    vector_indexes: list[vectors.VectorIndex]
    chunking: dict[str, int]  # what cuts chunks now (ChunkingConfig.signature)
    stale_chunking: tuple[int, int]  # current documents chunked otherwise, of all current ones

    @property
    def problems(self) -> int:
        """Services configured as REAL that cannot be used."""
        return sum(not h.healthy and h.service.mode == ServiceMode.REAL.value for h in self.services)


async def doctor(rt: Runtime) -> Doctor:
    s = rt.settings
    async with rt.db.pool.connection() as conn:
        server, pgvector = await database.server_info(conn)
        states = await breakers.states(conn)
        indexes = await vectors.vector_indexes(conn)
        chunking = rt.chunking().signature
        stale = await documents.chunking_census(conn, None, chunking)
    return Doctor(
        settings={k: str(v) for k, v in s.model_dump().items()},  # SecretStr prints as '**********'
        home=s.located_home,
        services=await check(rt), embedding_model=rt.services.embedder.spec,
        server_version=server, pgvector_version=pgvector,
        database="DATABASE_URL" if s.database_url else f"embedded under {s.home}",
        self_check=None if s.database_url or embedded.check is None
        else ("ok" if embedded.check[0] else "FAILED") + f" ({embedded.check[1]})",
        breakers=states, spend=await costs.spend(rt, None), vector_indexes=indexes,
        chunking=chunking, stale_chunking=stale,
    )
