"""Configuration from the environment and layered ``.env`` files.

Precedence, highest first: real environment variables, ``.env.<ENVIRONMENT>``, ``.env``.
The dotenv files are looked up in the home, in the working directory and, for a home found
by walking up, beside it (never next to a module), so the CLI, workers and the API server
read the same settings wherever they are installed.

The home (embedded database, uploaded files) is found as git finds a repository:
``INGESTFLOW_HOME`` if set, else the nearest ``.ingestflow`` folder in the working folder
or above it, else a per-user default (``$XDG_DATA_HOME/ingestflow``, by default
``~/.local/share/ingestflow``). A command run from another folder opens the same home
rather than a new, empty one beside it. A home or a ``.env`` found on disk is used only if
the user owns it and no other user can write to it (``trusted``), as git trusts a repository.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingestflow.catalogue import MAX_CHUNK_TOKENS, SearchMode, cohere_rerank_model, openai_model


class ServiceMode(StrEnum):
    MOCK = "MOCK"  # deterministic fakes, offline
    REAL = "REAL"  # the paid service; failures retried or deferred, never faked
    HYBRID = "HYBRID"  # real while healthy and in budget, else a recorded fallback


class ConfigError(Exception):
    """Invalid configuration; the message names the variable."""


HOME_FOLDER = ".ingestflow"  # what `ingestflow init` creates and commands look for
ENV_ORIGIN = "set by INGESTFLOW_HOME"


@dataclass(frozen=True)
class Home:
    """The home a process uses and how it was chosen: ``env`` (INGESTFLOW_HOME), ``found``
    (the nearest ``.ingestflow`` folder in or above the working folder) or ``default`` (the
    per-user one); ``origin`` says it in words."""

    path: Path
    how: Literal["env", "found", "default"]
    origin: str


def find_home(environ: Mapping[str, str] | None = None) -> Home:
    """INGESTFLOW_HOME, else the nearest ``.ingestflow`` folder walking up from the working
    folder, else the per-user default."""
    env = os.environ if environ is None else environ
    if env.get("INGESTFLOW_HOME", "").strip():
        return Home(Path(env["INGESTFLOW_HOME"]).expanduser().resolve(), "env", ENV_ORIGIN)
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if (folder / HOME_FOLDER).is_dir() and trusted(folder / HOME_FOLDER):
            return Home(folder / HOME_FOLDER, "found", f"found walking up from {start}")
    return Home(per_user_home(env), "default", f"per-user default (no {HOME_FOLDER} folder in or above {start})")


_DISTRUSTED: set[Path] = set()  # said once per process: settings are read more than once


def trusted(path: Path) -> bool:
    """Whether a home or a .env found on disk may be used: as git's safe.directory, only
    when the current user owns it and other users cannot write to it. Otherwise whoever
    planted it in a shared folder (the system's temp folder, say) would choose the
    database, the provider URLs and so the destination of the documents and keys of
    everybody working below it. A distrusted one is skipped, with a warning on stderr."""
    if os.name != "posix":
        return True
    info = path.stat()
    if info.st_uid != os.geteuid():
        reason = f"it is owned by another user (uid {info.st_uid}), not by you (uid {os.geteuid()})"
    elif info.st_mode & stat.S_IWOTH:
        reason = "every user can write to it"
    else:
        return True
    if path not in _DISTRUSTED:
        _DISTRUSTED.add(path)
        print(f"warning: ingestflow skipped {path}: {reason}. If it is yours, take it (chown) and make it "
              "writable by you alone (chmod o-w); or set INGESTFLOW_HOME.", file=sys.stderr)
    return False


def per_user_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/ingestflow``, ``~/.local/share/ingestflow`` by default (the XDG
    spec ignores a relative XDG_DATA_HOME)."""
    data = (os.environ if environ is None else environ).get("XDG_DATA_HOME", "")
    return (Path(data) if os.path.isabs(data) else Path("~/.local/share").expanduser()) / "ingestflow"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    environment: str = "development"
    ingestflow_home: Path | None = None  # unset: found (see find_home)
    database_url: SecretStr | None = None
    # Hot standbys (PostgreSQL streaming replication) for search and read-only routes,
    # comma-separated; writes and the queue stay on DATABASE_URL. A standby that is down or
    # lags more than REPLICA_MAX_LAG_SECONDS is skipped (logged), never an error.
    database_read_urls: SecretStr | None = None
    replica_max_lag_seconds: float = Field(default=5.0, gt=0)
    # Where uploaded bytes live: "local" (a folder under INGESTFLOW_HOME; one machine or a
    # shared volume) or "postgres" (the database; workers on many machines).
    storage_backend: Literal["local", "postgres"] = "local"

    service_mode: ServiceMode = ServiceMode.MOCK
    embeddings_mode: ServiceMode | None = None
    parser_mode: ServiceMode | None = None
    embeddings_provider: Literal["openai", "local"] = "openai"
    parser_provider: Literal["local", "llamaparse"] = "local"
    # Reranking of a search's fused candidates: "none" (off) or "cohere"; RERANK_MODE
    # overrides SERVICE_MODE for it (MOCK: a deterministic offline reranker).
    rerank_provider: Literal["none", "cohere"] = "none"
    rerank_mode: ServiceMode | None = None

    openai_api_key: SecretStr | None = None
    openai_api_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_URL", "OPENAI_BASE_URL")
    )
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int | None = Field(default=None, gt=0)
    openai_timeout_seconds: float = Field(default=60.0, gt=0)

    llamaparse_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LLAMAPARSE_API_KEY", "LLAMA_CLOUD_API_KEY")
    )
    llamaparse_base_url: str = "https://api.cloud.llamaindex.ai"
    llamaparse_webhook_secret: SecretStr | None = None
    # This deployment's public API address: with it (and the secret), LlamaParse posts each
    # result to {url}/v1/webhooks/llamaparse and workers do not wait on parse jobs.
    llamaparse_webhook_url: str | None = None
    llamaparse_poll_seconds: float = Field(default=60.0, gt=0)  # fallback poll while waiting
    llamaparse_timeout_seconds: float = Field(default=1800.0, gt=0)

    cohere_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COHERE_API_KEY", "CO_API_KEY")
    )
    cohere_base_url: str = "https://api.cohere.com"
    cohere_rerank_model: str = "rerank-v3.5"
    # A search waits on the reranker: short, so that a slow provider degrades the answer
    # (fused order, with a note) instead of holding it.
    cohere_timeout_seconds: float = Field(default=5.0, gt=0)

    cost_tracking_enabled: bool = True
    # Safe defaults for money: paid services are capped until a limit is lifted
    # explicitly with "none".
    daily_cost_limit_openai: float | None = Field(default=5.00, ge=0)
    hourly_rate_limit_openai: int | None = Field(default=100, ge=0)
    daily_cost_limit_llamaparse: float | None = Field(default=5.00, ge=0)
    hourly_rate_limit_llamaparse: int | None = Field(default=None, ge=0)
    daily_cost_limit_cohere: float | None = Field(default=5.00, ge=0)
    hourly_rate_limit_cohere: int | None = Field(default=None, ge=0)
    daily_cost_limit_total: float | None = Field(default=None, ge=0)

    # Prices: the catalogue's (catalogue.py) unless set here.
    openai_price_per_mtok: Decimal | None = Field(default=None, ge=0)
    llamaparse_credits_per_page: Decimal | None = Field(default=None, ge=0)
    llamaparse_usd_per_1000_credits: Decimal | None = Field(default=None, ge=0)
    cohere_usd_per_1000_searches: Decimal | None = Field(default=None, ge=0)
    cost_alert_ratio: float = Field(default=0.8, gt=0, le=1)

    # Client-side rate limits shared by all workers (unset: only the provider's headers).
    rate_limit_rpm_openai: int | None = Field(default=None, gt=0)
    rate_limit_tpm_openai: int | None = Field(default=None, gt=0)
    rate_limit_rpm_llamaparse: int | None = Field(default=None, gt=0)
    rate_limit_rpm_cohere: int | None = Field(default=None, gt=0)

    # Resilience: per-call retries (the one retry layer) and the shared circuit breaker.
    call_retry_attempts: int = Field(default=4, ge=1)
    call_retry_base_seconds: float = Field(default=0.5, gt=0)
    call_retry_cap_seconds: float = Field(default=30.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)  # consecutive failures
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)  # ...or this share of
    breaker_min_calls: int = Field(default=20, ge=1)  # at least this many calls in a minute
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    repair_interval_seconds: float = Field(default=30.0, gt=0)
    # A space's HNSW index is built once it holds this many vectors (exact search before).
    hnsw_min_vectors: int = Field(default=10_000, ge=1)
    # Spaces at least this wide index their vectors' sign bits (binary quantization, Hamming
    # distance) and re-rank what the graph finds by the full vectors; narrower ones index
    # the halfvec vectors. The default: only spaces over halfvec's HNSW limit (4,000), as
    # the sign bits' recall fell to 0.51 at 1M 1536-d vectors on bench/scale.py.
    hnsw_binary_min_dimensions: int = Field(default=4001, ge=1)
    # The graph's build parameters (pgvector's m and ef_construction): neighbours a vector
    # keeps, and candidates weighed to choose them. A better-built graph finds the true
    # neighbours with fewer search candidates (ef_search). A change rebuilds each index,
    # concurrently: search goes on using the old one until the new one replaces it.
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=200, ge=4, le=1000)
    # maintenance_work_mem (MB) of an index build; 0: sized to the space so its graph fits
    # in memory (vector bytes + ~1 kB a vector, 64 MB to 2 GB).
    index_build_memory_mb: int = Field(default=0, ge=0)
    index_check_seconds: float = Field(default=30.0, gt=0)

    # Chunk size and overlap in cl100k tokens; unset, the embedding model's own (catalogue).
    chunk_max_tokens: int | None = Field(default=None, ge=16, le=MAX_CHUNK_TOKENS)  # capped again by the embedder
    chunk_overlap_tokens: int | None = Field(default=None, ge=0)
    mock_embedding_dimensions: int = Field(default=1536, gt=0)

    # Search. The text search configuration of keyword search (Postgres' `english` stems
    # English words; `simple` only lowercases, for mixed languages). A change rebuilds
    # every chunk's search vector (workers do it in the background).
    search_language: str = Field(default="english", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    search_mode: SearchMode = "hybrid"  # when a search names none
    # Chunks taken from each ranked list (vector, keyword) before a hybrid search scores them.
    search_candidates: int = Field(default=20, ge=1, le=1000)
    # A hybrid score is this share of the cosine similarity plus the rest of the keyword
    # relevance (BM25 over the tenant's chunks), both 0-1, for every question. None: the
    # embedding model's, leaning on keywords as far as the keyword list singles out its
    # best match (catalogue.py, search.sql; chosen on bench/retrieval.py).
    search_vector_weight: float | None = Field(default=None, ge=0, le=1)
    # Passages scoring less are left out; when none is left, the answer is empty with a note
    # (no answer). None: the model's, for hybrid and vector searches (catalogue.py).
    search_min_score: float | None = Field(default=None, ge=0, le=1)
    # Keyword search leaves out words found in more than this share of the tenant's chunks (1: none).
    search_keyword_max_share: float = Field(default=0.05, gt=0, le=1)
    # Keyword search ranks at most this many chunks holding a searched word: it searches the
    # question's rarest words while they match no more of the tenant's chunks, and ranks the first
    # this many found when even the rarest is in more (the answer then says so). Bounds the
    # cost of a question of common words on a large corpus; chosen on bench/retrieval.py.
    search_keyword_max_rows: int = Field(default=300, ge=1)
    # Vector search in a space's HNSW graph: candidates kept per step (pgvector's
    # hnsw.ef_search; more is slower and finds more of the true nearest), and how many index
    # tuples an iterative scan may visit while filters (tenant, source, mime) discard rows
    # (hnsw.max_scan_tuples). Chosen on bench/scale.py for recall@10 >= 0.95: at 1M vectors
    # three builds gave 0.952-0.978 at 200, and 0.833-0.939 at 100.
    search_hnsw_ef_search: int = Field(default=200, ge=1, le=1000)
    search_hnsw_max_scan_tuples: int = Field(default=20_000, ge=1)
    # A binary index's search fetches this many times the candidates by Hamming distance
    # and keeps the nearest by cosine.
    search_binary_rerank: int = Field(default=8, ge=1, le=100)
    # A search whose tenant and filters leave at most this many chunks scans their vectors
    # exactly instead of the graph: a small tenant in a big shared space gets its true k
    # nearest, quickly, where the graph would visit max_scan_tuples of other tenants' first.
    search_exact_max_chunks: int = Field(default=2_000, ge=0)
    # A person waits on a search: its query embedding (admission, the call, its retries) gets
    # this long in all, and never sleeps through a provider's long Retry-After. Past it a
    # hybrid search answers from keywords (degraded, with a note), a vector search refuses
    # (the API: 503 with Retry-After).
    search_embed_timeout_seconds: float = Field(default=5.0, gt=0)
    # With a reranker (RERANK_PROVIDER), this many fused passages are reranked and the
    # best k of them returned; Cohere bills one search unit per 100.
    rerank_candidates: int = Field(default=50, ge=1, le=1000)
    # Upper bound on inputs per embedding request, below the provider's own limits: smaller
    # requests commit progress more often and spread better under tight rate limits.
    embedding_batch_size: int = Field(default=2048, ge=1, le=2048)
    # The OpenAI Batch API (half price, results within 24 hours): "on" for every embedding,
    # "auto" once this many documents are queued (a backfill), "off" never; a job queued
    # with `ingest --batch` or `reembed --batch` uses it whatever this says.
    embedding_batch_api: Literal["off", "on", "auto"] = "off"
    embedding_batch_auto_backlog: int = Field(default=10_000, ge=1)
    embedding_batch_poll_seconds: float = Field(default=300.0, gt=0)  # how often a batch is polled

    worker_concurrency: int = Field(default=2, ge=1)
    # How often a worker writes its heartbeat; it counts as alive for three intervals.
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # Jobs a worker claims and runs as one batch: parsed and chunked together, written with
    # one COPY, embedded in requests shared across documents. 2,048 one-chunk documents
    # fill one embedding request; the bytes bound what a batch of big files holds in memory.
    claim_batch_size: int = Field(default=2048, ge=1)
    claim_batch_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # How long a partial batch waits for more work to arrive before it runs.
    batch_fill_seconds: float = Field(default=0.05, ge=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # A job waiting on budget, a breaker or a quota fails after this long without progress.
    max_defer_seconds: float = Field(default=86_400.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)

    # HTTP API
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    api_max_concurrent_jobs: int = Field(default=100, gt=0)  # per tenant
    api_uploads_per_day: int = Field(default=10_000, gt=0)  # per tenant
    metrics_token: SecretStr | None = None  # when set, /metrics needs Authorization: Bearer <it>

    # The embedded server (DATABASE_URL unset) stays up this long after its last process
    # leaves, so the next command joins it instead of starting it (0: stopped at once).
    # `ingestflow db stop` stops it now.
    embedded_server_linger_seconds: float = Field(default=300.0, ge=0)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("service_mode", "embeddings_mode", "parser_mode", "rerank_mode", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator("ingestflow_home", mode="before")
    @classmethod
    def _unset_home(cls, value: object) -> object:
        """An empty INGESTFLOW_HOME is unset (the home is found), as find_home reads it."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("daily_cost_limit_openai", "hourly_rate_limit_openai", "daily_cost_limit_llamaparse",
                     "hourly_rate_limit_llamaparse", "daily_cost_limit_cohere", "hourly_rate_limit_cohere",
                     "daily_cost_limit_total", mode="before")
    @classmethod
    def _no_limit(cls, value: object) -> object:
        """``none`` (or ``off``, ``unlimited``) lifts a limit."""
        if isinstance(value, str) and value.strip().lower() in ("none", "off", "unlimited", "no"):
            return None
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.chunk_overlap_tokens is not None and self.chunk_max_tokens is not None
                and self.chunk_overlap_tokens >= self.chunk_max_tokens):
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_MAX_TOKENS")
        if self.hnsw_ef_construction < 2 * self.hnsw_m:
            raise ValueError("HNSW_EF_CONSTRUCTION must be at least twice HNSW_M (pgvector's rule)")
        if self.embeddings_service_mode is not ServiceMode.MOCK and self.embeddings_provider == "openai":
            if self.openai_api_key is None or not self.openai_api_key.get_secret_value():
                raise ValueError(
                    f"OPENAI_API_KEY is required when EMBEDDINGS_MODE is "
                    f"{self.embeddings_service_mode.value} with EMBEDDINGS_PROVIDER=openai"
                )
            try:
                openai_model(self.openai_embedding_model, self.openai_embedding_dimensions)
            except ValueError as exc:
                raise ValueError(f"OPENAI_EMBEDDING_MODEL / OPENAI_EMBEDDING_DIMENSIONS: {exc}") from None
        if self.parser_service_mode is not ServiceMode.MOCK and self.parser_provider == "llamaparse":
            if self.llamaparse_api_key is None or not self.llamaparse_api_key.get_secret_value():
                raise ValueError(
                    f"LLAMAPARSE_API_KEY is required when PARSER_MODE is "
                    f"{self.parser_service_mode.value} with PARSER_PROVIDER=llamaparse"
                )
        if self.rerank_provider == "cohere":
            try:
                cohere_rerank_model(self.cohere_rerank_model)
            except ValueError as exc:
                raise ValueError(f"COHERE_RERANK_MODEL: {exc}") from None
            key = self.cohere_api_key
            if self.rerank_service_mode is not ServiceMode.MOCK and (key is None or not key.get_secret_value()):
                raise ValueError(f"COHERE_API_KEY is required when RERANK_MODE is "
                                 f"{self.rerank_service_mode.value} with RERANK_PROVIDER=cohere")
        if self.llamaparse_webhook_url and not (
                self.llamaparse_webhook_secret and self.llamaparse_webhook_secret.get_secret_value()):
            raise ValueError("LLAMAPARSE_WEBHOOK_URL needs LLAMAPARSE_WEBHOOK_SECRET to sign the callbacks")
        if self.is_production and ServiceMode.HYBRID in (
            self.embeddings_service_mode,
            self.parser_service_mode,
            self.rerank_service_mode if self.rerank_provider != "none" else None,
        ):
            raise ValueError(
                "ENVIRONMENT=production refuses HYBRID mode: a fallback to mock services "
                "is not allowed in production (set SERVICE_MODE=REAL)"
            )
        return self

    @property
    def embeddings_service_mode(self) -> ServiceMode:
        return self.embeddings_mode or self.service_mode

    @property
    def parser_service_mode(self) -> ServiceMode:
        return self.parser_mode or self.service_mode

    @property
    def rerank_service_mode(self) -> ServiceMode:
        return self.rerank_mode or self.service_mode

    @property
    def is_production(self) -> bool:
        return self.environment.lower() in ("production", "prod")

    @cached_property
    def located_home(self) -> Home:
        """The home and how it was chosen (INGESTFLOW_HOME, from the environment or a
        .env file, wins)."""
        if self.ingestflow_home is not None:
            return Home(self.ingestflow_home.expanduser().resolve(), "env", ENV_ORIGIN)
        return find_home()

    @property
    def home(self) -> Path:
        return self.located_home.path

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction of logs and error texts."""
        secrets = [self.openai_api_key, self.llamaparse_api_key, self.llamaparse_webhook_secret,
                   self.cohere_api_key, self.metrics_token]
        values = [s.get_secret_value() for s in secrets if s is not None]
        from urllib.parse import urlsplit

        urls = [self.database_url.get_secret_value()] if self.database_url is not None else []
        for url in [*urls, *self.read_urls]:
            password = urlsplit(url).password
            if password:
                values.append(password)
        return [v for v in values if len(v) >= 4]

    @property
    def read_urls(self) -> list[str]:
        """DATABASE_READ_URLS, one URL each."""
        if self.database_read_urls is None:
            return []
        return [url.strip() for url in self.database_read_urls.get_secret_value().split(",") if url.strip()]


def dotenv_files(environ: dict[str, str] | None = None) -> list[Path]:
    """The dotenv files to read, lowest precedence first: beside a home found walking up,
    in the working folder, in the home."""
    env = os.environ if environ is None else environ
    home = find_home(env)
    dirs = [home.path.parent] if home.how == "found" else []
    dirs += [Path.cwd(), home.path]
    name = env.get("ENVIRONMENT", "").strip()
    files: list[Path] = []
    for directory in dict.fromkeys(d.resolve() for d in dirs):
        files.append(directory / ".env")
        if name:
            files.append(directory / f".env.{name}")
    return [f for f in files if f.is_file() and trusted(f)]


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, turning pydantic errors into one readable message."""
    try:
        return Settings(_env_file=dotenv_files() or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
