-- Batching: one paid request may serve many documents. The ledger keeps one row per
-- request; ledger_shares attributes its units and cost to the documents it served, in
-- proportion to their tokens (pages), so per-document spend stays exact to the last
-- digit. A reservation lives as long as its worker holds any lease (owner).
CREATE TABLE ledger_shares (
    ledger_id    bigint NOT NULL REFERENCES ledger (id) ON DELETE CASCADE,
    document_id  uuid REFERENCES documents (id) ON DELETE SET NULL,
    units        bigint NOT NULL,
    cost_usd     numeric(18, 10) NOT NULL
);
CREATE INDEX ledger_shares_ledger ON ledger_shares (ledger_id);
CREATE INDEX ledger_shares_document ON ledger_shares (document_id);
INSERT INTO ledger_shares (ledger_id, document_id, units, cost_usd)
SELECT id, document_id, units, cost_usd FROM ledger WHERE document_id IS NOT NULL;
ALTER TABLE ledger DROP COLUMN document_id;
ALTER TABLE ledger DROP COLUMN correlation_id;
ALTER TABLE ledger DROP COLUMN job_id;
CREATE INDEX jobs_owner ON jobs (owner) WHERE state = 'running';
-- HYBRID repair looks for degraded complete documents every few seconds.
CREATE INDEX documents_degraded ON documents (id) WHERE degraded AND stage = 'complete';

-- What a job does: take a document version through the stages ('ingest'), or embed a
-- complete one into the tenant's new embedding space ('reembed', a model change). A
-- job may ask for the OpenAI Batch API (half price, within 24 hours).
ALTER TABLE jobs ADD COLUMN task text NOT NULL DEFAULT 'ingest' CHECK (task IN ('ingest', 'reembed'));
ALTER TABLE jobs ADD COLUMN batch_api boolean NOT NULL DEFAULT false;

-- The space each tenant searches. It changes only when another space covers every
-- current document of the tenant (a model change is a backfill, never an empty index).
-- Seeded with the space holding most of the tenant's current vectors.
CREATE TABLE active_spaces (
    tenant    text PRIMARY KEY,
    space_id  integer NOT NULL REFERENCES embedding_spaces (id),
    since     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO active_spaces (tenant, space_id)
SELECT DISTINCT ON (d.tenant) d.tenant, e.space_id
FROM documents d
JOIN chunks c ON c.document_id = d.id
JOIN embeddings e ON e.chunk_id = c.id
WHERE d.is_current
GROUP BY d.tenant, e.space_id
ORDER BY d.tenant, count(*) DESC, e.space_id;

-- Embedding work sent through the OpenAI Batch API. The row (and its chunk map) is
-- written before the upload, so a batch in flight survives any worker or database
-- restart: whichever worker next finds the chunks waiting polls it and applies its
-- results. custom_id maps each line of the file back to its chunks, in order.
CREATE TABLE embedding_batches (
    id                 uuid PRIMARY KEY,
    tenant             text NOT NULL,
    space_id           integer NOT NULL REFERENCES embedding_spaces (id),
    provider_batch_id  text,                        -- null until the provider accepted it
    state              text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    status             text NOT NULL DEFAULT 'submitting',  -- the provider's last word
    ledger_id          bigint REFERENCES ledger (id),       -- its reservation, settled on close
    inputs             integer NOT NULL,
    tokens             bigint NOT NULL,
    embedded           integer,                     -- chunks that got a vector from it
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    polled_at          timestamptz,
    closed_at          timestamptz
);
CREATE INDEX embedding_batches_open ON embedding_batches (tenant) WHERE state = 'open';
CREATE TABLE embedding_batch_chunks (
    batch_id     uuid NOT NULL REFERENCES embedding_batches (id) ON DELETE CASCADE,
    chunk_id     uuid NOT NULL,                     -- no FK: a retired version's chunks go
    document_id  uuid NOT NULL,
    custom_id    text NOT NULL,
    position     integer NOT NULL,                  -- input index within its line
    tokens       integer NOT NULL,
    -- Set when the batch closes: the line's vector was stored, the line failed (it is
    -- sent again synchronously), or it never ran (expiry, cancel: the next batch takes it).
    outcome      text CHECK (outcome IN ('embedded', 'failed', 'not_run')),
    PRIMARY KEY (batch_id, chunk_id)
);
CREATE INDEX embedding_batch_chunks_chunk ON embedding_batch_chunks (chunk_id);
CREATE INDEX embedding_batch_chunks_document ON embedding_batch_chunks (document_id);
