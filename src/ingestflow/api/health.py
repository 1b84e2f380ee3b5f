"""Which services are configured, and whether they are healthy.

Health checks of real providers are network calls, so their results are cached for a
few seconds and each is bounded by a timeout: a dashboard polling every 2 s must not
turn into a stream of provider requests, nor hang on one.
"""

from __future__ import annotations

import asyncio
import time

from ingestflow.api import schemas
from ingestflow.runtime import Runtime

CACHE_SECONDS = 15.0
CHECK_TIMEOUT_SECONDS = 3.0


def configured(rt: Runtime) -> list[schemas.ConfiguredService]:
    s, services = rt.settings, rt.services
    embedder = services.embedder
    return [
        schemas.ConfiguredService(name="embeddings", mode=s.embeddings_service_mode.value,
                                  provider=f"{embedder.provider}/{embedder.model}"),
        schemas.ConfiguredService(name="parser", mode=s.parser_service_mode.value,
                                  provider=services.parser.name),
    ]


class HealthCache:
    def __init__(self) -> None:
        self._at = 0.0
        self._value: list[schemas.ServiceHealth] = []
        self._lock = asyncio.Lock()

    async def get(self, rt: Runtime) -> list[schemas.ServiceHealth]:
        async with self._lock:
            if time.monotonic() - self._at > CACHE_SECONDS:
                self._value = await self._check(rt)
                self._at = time.monotonic()
            return self._value

    @staticmethod
    async def _check(rt: Runtime) -> list[schemas.ServiceHealth]:
        out = []
        for conf, service in zip(configured(rt), (rt.services.embedder, rt.services.parser), strict=True):
            try:
                ok, detail = await asyncio.wait_for(service.health(), CHECK_TIMEOUT_SECONDS)
            except TimeoutError:
                ok, detail = False, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s"
            out.append(schemas.ServiceHealth(**conf.model_dump(), healthy=ok, detail=detail))
        return out
