"""Embedding spaces: what search uses, and re-embedding after a model change
(operations/spaces.py, shared with `ingestflow reembed`)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ingestflow.api import schemas
from ingestflow.api.deps import RuntimeDep, TenantDep
from ingestflow.operations import spaces

router = APIRouter(prefix="/v1", tags=["spaces"])


@router.get("/spaces", response_model=schemas.SpacesResponse, summary="Embedding spaces and re-embedding progress")
async def get_spaces(rt: RuntimeDep, tenant: TenantDep) -> schemas.SpacesResponse:
    """The space search uses and the configured one, how much of the current documents the
    configured one covers, what re-embedding the rest would cost, and open batches."""
    report = await spaces.report(rt, tenant)
    c, e = report.coverage, report.estimate
    return schemas.SpacesResponse(
        active=schemas.Space(**asdict(report.active)) if report.active else None,
        configured=schemas.Space(**asdict(report.configured)), switching=report.switching,
        covered=c.covered, current=c.current, missing_chunks=c.missing_chunks, missing_tokens=c.missing_tokens,
        estimate_sync_usd=float(e.sync_usd), estimate_batch_usd=None if e.batch_usd is None else float(e.batch_usd),
        reembed_jobs=report.reembed_jobs,
        batches=[schemas.BatchInfo(id=b["provider_batch_id"] or str(b["id"]), state=b["state"], status=b["status"],
                                   inputs=b["inputs"], embedded=b["embedded"], age_seconds=b["age_seconds"],
                                   error=b["error"]) for b in report.batches],
        others=[schemas.Space(**asdict(s)) for s, _ in report.others],
        rechunk=None if (r := report.rechunk) is None else schemas.RechunkEstimate(
            documents=r.documents, chunks=r.chunks, tokens=r.tokens, estimate_sync_usd=float(r.sync_usd),
            estimate_batch_usd=None if r.batch_usd is None else float(r.batch_usd)),
    )


@router.post("/reembed", status_code=202, response_model=schemas.ReembedResponse,
             responses={409: {"model": schemas.ErrorResponse,
                              "description": "batch asked for, but this deployment has no OpenAI Batch API"}},
             summary="Embed every current document with the configured model")
async def reembed(body: schemas.ReembedRequest, rt: RuntimeDep, tenant: TenantDep) -> schemas.ReembedResponse:
    """Queues the documents the configured space lacks; workers embed them in the
    background. Search switches to the new space once it covers every current document."""
    return schemas.ReembedResponse(queued=len(await spaces.start_reembed(rt, tenant, batch_api=body.batch)))
