-- Core schema: documents move through stages; one job per document version drives them.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    id              uuid PRIMARY KEY,            -- uuid5(tenant, source_name, version)
    tenant          text NOT NULL,
    source_name     text NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    mime            text NOT NULL,
    size_bytes      bigint NOT NULL,
    sha256          text NOT NULL,
    stage           text NOT NULL DEFAULT 'queued' CHECK (stage IN (
                        'queued', 'parsing', 'parsed', 'chunking', 'chunked',
                        'embedding', 'embedded', 'complete', 'failed')),
    is_current      boolean NOT NULL DEFAULT false,  -- the searchable version of source_name
    superseded_at   timestamptz,
    parser          text,                        -- which parser produced the text
    degraded        boolean NOT NULL DEFAULT false,  -- embedded by a fallback, awaiting repair
    error_stage     text,
    error_code      text,
    error_message   text,
    correlation_id  uuid NOT NULL,               -- one per run; new on retry
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, source_name, version)
);
CREATE INDEX documents_tenant_sha ON documents (tenant, sha256);
CREATE INDEX documents_stage ON documents (stage);
CREATE UNIQUE INDEX documents_one_current ON documents (tenant, source_name) WHERE is_current;

-- Raw bytes, content-addressed so identical uploads are stored once; in Postgres so
-- that workers on any machine can read them.
CREATE TABLE blobs (
    sha256      text PRIMARY KEY,
    data        bytea NOT NULL
);

CREATE TABLE document_texts (
    document_id uuid PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    markdown    text NOT NULL,
    pages       jsonb NOT NULL DEFAULT '[]',     -- [[page, start, end], ...]
    parser      text NOT NULL
);

CREATE TABLE chunks (
    id           uuid PRIMARY KEY,               -- uuid5(document_id, ordinal)
    document_id  uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    text         text NOT NULL,
    text_sha256  text NOT NULL,                  -- key for reusing vectors across versions
    token_count  integer NOT NULL,
    metadata     jsonb NOT NULL,                 -- pages, heading_path, char_start, char_end
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_text_sha ON chunks (text_sha256);

-- One row per (provider, model, dimensions): vectors are only compared within a space.
CREATE TABLE embedding_spaces (
    id          serial PRIMARY KEY,
    provider    text NOT NULL,
    model       text NOT NULL,
    dimensions  integer NOT NULL,
    UNIQUE (provider, model, dimensions)
);

-- Vectors live apart from chunks (a 1536-d vector is ~6 KB, about a page). Each space
-- gets its own partial HNSW index on a typed cast, created with the space.
CREATE TABLE embeddings (
    chunk_id    uuid NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    space_id    integer NOT NULL REFERENCES embedding_spaces (id),
    embedding   vector NOT NULL,
    PRIMARY KEY (chunk_id, space_id)
);

CREATE TABLE jobs (
    id               bigserial PRIMARY KEY,
    document_id      uuid NOT NULL UNIQUE REFERENCES documents (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'ready'
                         CHECK (state IN ('ready', 'running', 'done', 'failed')),
    owner            text,
    lease_until      timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    deferred_reason  text,                       -- set while waiting on budget or a breaker
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_runnable ON jobs (next_attempt_at, id) WHERE state IN ('ready', 'running');

-- Append-only audit log.
CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    document_id     uuid REFERENCES documents (id) ON DELETE CASCADE,
    correlation_id  uuid,
    kind            text NOT NULL,
    stage           text,
    detail          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_document ON events (document_id, id);
