-- HTTP API: tenants' keys (only hashes are stored), webhook replay protection and
-- per-tenant usage windows for the API's own limits.

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    tenant      text NOT NULL,
    key_hash    text NOT NULL UNIQUE,            -- sha256 hex of the whole token
    prefix      text NOT NULL,                   -- first characters, for display only
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- Every accepted webhook delivery's event id; inserted in the same transaction as the
-- state change it causes, so a replayed delivery can change nothing. No foreign key:
-- the record must outlive a deleted document.
CREATE TABLE webhook_events (
    event_id     text PRIMARY KEY,
    document_id  uuid NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-tenant request counters per window (e.g. uploads per UTC day). A conditional
-- upsert on the row serializes concurrent requests, so a limit is never overshot.
CREATE TABLE api_usage (
    tenant        text NOT NULL,
    kind          text NOT NULL,
    window_start  timestamptz NOT NULL,
    amount        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, kind, window_start)
);
