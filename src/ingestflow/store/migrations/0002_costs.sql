-- Cost control: a ledger row per paid call, atomic spend counters per window, and the
-- shared circuit-breaker state of each service.

CREATE TABLE ledger (
    id              bigserial PRIMARY KEY,
    service         text NOT NULL,               -- 'openai' | 'llamaparse'
    model           text NOT NULL,
    unit            text NOT NULL CHECK (unit IN ('tokens', 'pages')),
    units           bigint NOT NULL,
    cost_usd        numeric(18, 10) NOT NULL,    -- estimate while reserved, actual once settled
    state           text NOT NULL CHECK (state IN ('reserved', 'settled', 'released')),
    outcome         text,                        -- ok | transient | permanent | ...
    tenant          text,
    document_id     uuid REFERENCES documents (id) ON DELETE SET NULL,
    correlation_id  uuid,
    attempt         integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz
);
CREATE INDEX ledger_created ON ledger (created_at);
CREATE INDEX ledger_document ON ledger (document_id);

-- One row per (service, limit kind, window start). Reservations are conditional UPDATEs
-- on these rows, so racing workers serialize on the row lock and never overshoot.
CREATE TABLE spend_counters (
    service        text NOT NULL,                -- a service, or 'total'
    kind           text NOT NULL CHECK (kind IN ('daily_cost', 'hourly_requests')),
    window_start   timestamptz NOT NULL,
    amount         numeric(18, 10) NOT NULL DEFAULT 0,
    PRIMARY KEY (service, kind, window_start)
);

CREATE TABLE breakers (
    service               text PRIMARY KEY,
    state                 text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures  integer NOT NULL DEFAULT 0,
    opened_at             timestamptz,
    probe_owner           text,
    probe_until           timestamptz,
    window_start          timestamptz,             -- failure-rate window: calls and failures since
    window_calls          integer NOT NULL DEFAULT 0,
    window_failures       integer NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Client-side rate limiting shared by all workers: a sliding 60 s window of requests per
-- service (the same window providers use), plus what the provider last told us.
CREATE TABLE rate_events (
    id        bigserial PRIMARY KEY,
    service   text NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    tokens    bigint NOT NULL
);
CREATE INDEX rate_events_service_at ON rate_events (service, at);

CREATE TABLE rate_state (
    service        text PRIMARY KEY,
    blocked_until  timestamptz                  -- from Retry-After or exhausted x-ratelimit headers
);
