"""Request and response models: the API's contract, and so its OpenAPI schema."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ingestflow.catalogue import SearchMode
from ingestflow.operations import bounds, workers
from ingestflow.operations.errors import Refused


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code.")
    message: str = Field(description="What went wrong, for people.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


WARNING_FIELD = Field(default=None, description="Set when this document has work due and no worker is alive: "
                                                 "it waits until one starts (`ingestflow worker`, or `ingestflow serve` "
                                                 "without --workers 0).")


class UploadResponse(BaseModel):
    id: uuid.UUID
    version: int
    duplicate: bool = Field(description="The same bytes were already there: no new work.")
    stage: str
    warning: str | None = WARNING_FIELD


class DocumentSummary(BaseModel):
    id: uuid.UUID
    source_name: str
    version: int
    mime: str
    size_bytes: int
    sha256: str
    stage: str
    is_current: bool
    degraded: bool
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    chunks: int


class DocumentRef(BaseModel):
    id: uuid.UUID
    source_name: str
    version: int
    stage: str


class DocumentPage(BaseModel):
    items: list[DocumentSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class Progress(BaseModel):
    chunks: int
    chunks_embedded: int
    tokens: int
    fraction: float = Field(description="chunks_embedded / chunks (0 before chunking).")


class DocumentCost(BaseModel):
    service: str
    cost_usd: float
    units: int
    calls: int


class DocumentError(BaseModel):
    stage: str | None
    code: str | None
    message: str | None


class Event(BaseModel):
    kind: str
    stage: str | None
    detail: dict[str, Any]
    created_at: datetime


class DocumentDetail(DocumentSummary):
    parser: str | None
    job_state: str | None
    attempts: int | None
    deferred_reason: str | None
    next_attempt_at: datetime | None
    progress: Progress
    cost_usd: float
    costs: list[DocumentCost]
    error: DocumentError | None
    events: list[Event]
    warning: str | None = WARNING_FIELD


class Chunk(BaseModel):
    id: uuid.UUID
    ordinal: int
    text: str
    token_count: int
    pages: list[int]
    heading_path: list[str]
    embedded: bool


class ChunkPage(BaseModel):
    items: list[Chunk]
    next_cursor: str | None


class RetryResponse(BaseModel):
    id: uuid.UUID
    stage: str


class DeleteResponse(BaseModel):
    id: uuid.UUID
    deleted: bool


def bound(check: Any) -> BeforeValidator:
    """A field checked by the operations' own rule (operations/bounds.py), before pydantic
    reads it: a refusal keeps its code (the error handler answers it 400, as the operation
    would), so a client sees the same code from the API as from a local search."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except Refused as exc:
            raise PydanticCustomError(exc.code, "{message}", {"message": exc.message}) from None

    return BeforeValidator(validate)


def _checked(check: Any) -> Any:
    """``check`` run for its refusal only; the value goes on to pydantic as given."""

    def validate(value: Any) -> Any:
        check(value)
        return value

    return validate


class SearchFilters(BaseModel):
    """Checked as a whole by the operations' rule (``SearchRequest.filters``)."""

    model_config = ConfigDict(extra="forbid")

    source_name: str | None = Field(default=None,
                                    json_schema_extra={"maxLength": bounds.MAX_FILTER_CHARS["source_name"]})
    document_ids: list[uuid.UUID] | None = Field(default=None,
                                                 json_schema_extra={"maxItems": bounds.MAX_FILTER_DOCUMENTS})
    mime: str | None = Field(default=None, json_schema_extra={"maxLength": bounds.MAX_FILTER_CHARS["mime"]})


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, bound(bounds.check_query)] = Field(
        json_schema_extra={"maxLength": bounds.MAX_QUERY_CHARS},
        description="A blank query, or one without words, finds nothing (with a note).")
    k: Annotated[int, bound(bounds.check_k)] = Field(
        default=5, json_schema_extra={"minimum": bounds.MIN_K, "maximum": bounds.MAX_K})
    mode: Annotated[SearchMode | None, bound(bounds.check_mode)] = Field(
        default=None, description="hybrid: nearest vectors and keyword matches, each scored by the model's "
        "weight of cosine similarity and keyword relevance (the server's SEARCH_MODE, hybrid unless changed, "
        "when omitted); vector: nearest vectors only; keyword: full-text matches of any of the query's words "
        "only (no embedding call).")
    filters: Annotated[SearchFilters | None, bound(_checked(bounds.check_filters))] = None
    min_score: Annotated[float | None, bound(bounds.check_min_score)] = Field(
        default=None,
        json_schema_extra={"minimum": bounds.MIN_SCORE_BOUNDS[0], "maximum": bounds.MIN_SCORE_BOUNDS[1]},
        description="Passages scoring less are left out; when none is left the answer is empty, with a "
        "note (no answer). Default: the embedding model's (the server's SEARCH_MIN_SCORE when set).")


class SearchHit(BaseModel):
    score: float = Field(description="0-1: cosine similarity (vector), keyword relevance (keyword), or the "
                         "model's weight of both (hybrid); compare it with min_score.")
    document_id: uuid.UUID
    source_name: str
    version: int
    ordinal: int
    text: str
    pages: list[int] = Field(description="The pages the passage's text was read from (empty without pages).")
    heading_path: list[str]
    snippet: str = Field(description="The passage's best fragments, the query's words marked **like this**.")
    relevance: float | None = Field(default=None, description="The reranker's relevance (0..1), by which "
                                    "reranked hits are ordered; null when the search was not reranked. "
                                    "`score` stays the retrieval's own.")


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    provider: str = Field(description="Who embedded the query (\"postgres\" when keywords alone answered).")
    model: str
    mode: SearchMode
    degraded: bool = Field(description="Answered from the fallback model's index, from keywords alone, or "
                           "in the fused order because the reranker could not answer.")
    notes: list[str]
    reranker: str | None = Field(default=None, description="provider/model that reranked the hits (RERANK_PROVIDER).")


class ServiceSpend(BaseModel):
    service: str
    today_usd: float
    hour_usd: float
    hour_requests: int
    today_units: int
    daily_limit_usd: float | None = Field(description="Configured daily limit (shared by all tenants).")
    hourly_request_limit: int | None


class DaySpend(BaseModel):
    day: date
    service: str
    cost_usd: float
    units: int
    requests: int


class CostsResponse(BaseModel):
    tenant: str
    services: list[ServiceSpend]
    today_usd: float
    daily_limit_total_usd: float | None
    by_day: list[DaySpend]


class Health(BaseModel):
    status: Literal["ok"]


class ConfiguredService(BaseModel):
    name: str
    mode: str
    provider: str


class LiveWorker(BaseModel):
    """A worker serves every tenant: what it did (how many jobs) would tell one tenant of
    another's activity, so only what it is and that it is alive are shown."""

    host: str
    pid: int
    slots: int = Field(description="Jobs it runs in parallel.")
    started_at: datetime
    heartbeat_at: datetime = Field(description="Its last heartbeat (every WORKER_HEARTBEAT_SECONDS).")


class WorkerCount(BaseModel):
    count: int = Field(description="Workers alive: a heartbeat within three of their intervals.")
    warning: str | None = Field(description="Set when work is due and no worker is alive: documents wait "
                                            "until one starts.")


class Workers(WorkerCount):
    alive: list[LiveWorker]

    @classmethod
    def of(cls, found: workers.Workers) -> Workers:
        return cls(count=found.count, warning=found.warning,
                   alive=[LiveWorker.model_validate(w, from_attributes=True) for w in found.alive])


class Ready(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
    services: list[ConfiguredService]
    workers: WorkerCount | None = Field(
        description="How many workers are alive (the dashboard lists them; this route needs no key); null while "
                    "the database is unavailable. None alive is still ready: an API-only deployment may start its "
                    "workers later.")


class Queue(BaseModel):
    runnable: int
    waiting: int
    running: int
    oldest_runnable_seconds: float


class ServiceHealth(ConfiguredService):
    healthy: bool
    detail: str


class Breaker(BaseModel):
    service: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None


class RecentError(BaseModel):
    id: uuid.UUID
    source_name: str
    version: int
    stage: str | None
    code: str | None
    message: str | None
    at: datetime


class Space(BaseModel):
    id: int
    provider: str
    model: str
    dimensions: int


class BatchInfo(BaseModel):
    id: str = Field(description="The provider's batch id (ours until the upload is accepted).")
    state: Literal["open", "closed"]
    status: str = Field(description="The provider's last word: validating, in_progress, completed, expired...")
    inputs: int
    embedded: int | None
    age_seconds: float
    error: str | None


class RechunkEstimate(BaseModel):
    documents: int = Field(description="Current documents chunked by an older rule or another chunk size.")
    chunks: int = Field(description="Their chunks once re-chunked.")
    tokens: int
    estimate_sync_usd: float = Field(description="Embedding every new chunk, at most: unchanged inputs reuse "
                                                 "their vectors.")
    estimate_batch_usd: float | None


class SpacesResponse(BaseModel):
    active: Space | None = Field(description="The space searches use (none before the first document).")
    configured: Space = Field(description="The space workers embed into (the configured model).")
    switching: bool = Field(description="A model change is under way: search answers from the active space "
                                        "until the configured one covers every current document.")
    covered: int = Field(description="Current documents with a vector in the configured space for every chunk.")
    current: int
    missing_chunks: int
    missing_tokens: int
    estimate_sync_usd: float
    estimate_batch_usd: float | None
    reembed_jobs: dict[str, int]
    batches: list[BatchInfo]
    others: list[Space] = Field(description="Other spaces holding vectors of current documents (old models).")
    rechunk: RechunkEstimate | None = Field(None, description="What `reembed` would re-chunk (none: every current "
                                                              "document is chunked as configured).")


class ReembedRequest(BaseModel):
    batch: bool = Field(default=False, description="Through the OpenAI Batch API: half the price, within 24 hours.")


class ReembedResponse(BaseModel):
    queued: int


class SpacesSummary(BaseModel):
    active: str | None
    configured: str
    switching: bool
    stale_chunking: int = Field(0, description="Current documents chunked by an older rule or another chunk size "
                                               "(`reembed` re-chunks them).")
    covered: int | None = None
    current: int | None = None
    open_batches: int | None = None


class ThroughputBucket(BaseModel):
    start: datetime
    completed: int = Field(description="Documents that reached complete.")
    chunks: int = Field(description="Chunks stored (written by the chunk stage).")
    failed: int = Field(description="Documents that failed.")


class Throughput(BaseModel):
    bucket_seconds: int
    buckets: list[ThroughputBucket] = Field(description="Oldest first; the last is the current, partial bucket.")


class Dashboard(BaseModel):
    tenant: str
    generated_at: datetime
    stage_order: list[str] = Field(description="Every stage, in pipeline order (ingestflow.lifecycle).")
    stages: dict[str, int]
    documents: int
    queue: Queue
    spend: list[ServiceSpend]
    daily_limit_total_usd: float | None
    services: list[ServiceHealth]
    breakers: list[Breaker]
    recent_errors: list[RecentError]
    spaces: SpacesSummary
    workers: Workers = Field(description="Live workers; the warning when this tenant's work waits for one.")
    throughput: Throughput = Field(description="The last hour's work, in clock-aligned buckets.")


class WebhookBody(BaseModel):
    job_id: str = Field(max_length=200)
    status: Literal["SUCCESS", "PARTIAL_SUCCESS", "ERROR", "CANCELED"]
    markdown: str = ""
    pages: int | None = Field(default=None, ge=0)
    error_message: str | None = None


class WebhookResponse(BaseModel):
    accepted: bool
    applied: bool = Field(description="The delivery changed the document (false for no-ops).")
