"""Request dependencies: the shared runtime, the API's limits, and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ingestflow.api.errors import ApiError
from ingestflow.config import Settings
from ingestflow.operations import keys
from ingestflow.operations.limits import TenantLimits
from ingestflow.runtime import Runtime


@dataclass(frozen=True)
class ApiLimits:
    """Limits of the HTTP API (not of the paid services): one request's size, and the
    tenant's (shared by every API server, see operations/limits.py)."""

    max_upload_bytes: int
    tenant: TenantLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiLimits:
        return cls(settings.max_upload_bytes,
                   TenantLimits(settings.api_max_concurrent_jobs, settings.api_uploads_per_day))


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_limits(request: Request) -> ApiLimits:
    return request.app.state.limits


# A key made against another home (another database) is the usual cause: the server's
# start-up line says which home it opened; the path is not told to whoever calls.
UNKNOWN_KEY = ("This API key is not known to this server, or was revoked. A key works only with the database it "
               "was made in: make one with `ingestflow keys create` in the home (or DATABASE_URL) this server "
               "opened, which `ingestflow serve` prints when it starts.")
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer ifk_...`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in `X-API-Key`.")


async def get_tenant(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """The tenant of the presented key; 401 without a live key, or with two different keys."""
    token = keys.presented(bearer.credentials if bearer is not None else None, api_key)
    message = "A valid API key is required (Authorization: Bearer <key>)."
    if token:
        tenant = await keys.tenant_for(get_runtime(request).db, token)
        if tenant is not None:
            return tenant
        message = UNKNOWN_KEY
    raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
LimitsDep = Annotated[ApiLimits, Depends(get_limits)]
TenantDep = Annotated[str, Depends(get_tenant)]
