-- Counts that do not grow with the corpus. status, the dashboard and /metrics counted
-- documents, queued jobs, the hour's work, stage timings and provider calls by reading
-- rows (every document or queued job: 0.4-4 s each at 1M). Now triggers keep tallies in the transaction of each write, so a count is
-- exact and a rolled-back (or killed) write leaves no trace in it. A statement appends
-- its net change, one row per key it touched, and never updates a shared row: concurrent
-- workers never wait on each other's counts. A read sums a key's rows; tallies.fold
-- (store/tallies.py, run by each worker every few seconds) sums them into one row per key.

-- Documents by tenant and stage, and for current versions what cut their chunks.
CREATE TABLE document_tallies (
    tenant    text NOT NULL,
    stage     text NOT NULL,
    current   boolean NOT NULL,
    chunking  jsonb,                                 -- of current versions only
    n         bigint NOT NULL
);
CREATE INDEX document_tallies_tenant ON document_tallies (tenant);

-- Queued jobs by tenant and state; ready ones by the minute their next attempt is due in
-- (-infinity once a fold finds the minute past), so "runnable now" reads the tallies and
-- only the current minute's jobs. Jobs carry their document's tenant for it, as chunks do:
-- after a cascaded delete the document is gone when the jobs trigger runs.
CREATE TABLE job_tallies (
    tenant  text NOT NULL,
    state   text NOT NULL CHECK (state IN ('ready', 'running')),
    due     timestamptz,                             -- ready only
    n       bigint NOT NULL
);
CREATE INDEX job_tallies_tenant ON job_tallies (tenant);

-- The dashboard's throughput: documents completed, chunks stored, documents failed, per
-- tenant and minute (stage_done and failed events), kept a day.
CREATE TABLE throughput_tallies (
    tenant     text NOT NULL,
    minute     timestamptz NOT NULL,
    completed  bigint NOT NULL,
    chunks     bigint NOT NULL,
    failed     bigint NOT NULL
);
CREATE INDEX throughput_tallies_tenant ON throughput_tallies (tenant, minute);
-- /metrics: stage timings (stage_done events that carry seconds) and provider calls.
CREATE TABLE stage_time_tallies (
    stage    text,
    runs     bigint NOT NULL,
    seconds  float8 NOT NULL
);
CREATE TABLE ledger_tallies (
    service   text NOT NULL,
    model     text NOT NULL,
    unit      text NOT NULL,
    outcome   text NOT NULL,                         -- the outcome, or the state before one
    calls     bigint NOT NULL,
    units     numeric NOT NULL,                      -- billed only (not released)
    cost_usd  numeric NOT NULL
);

ALTER TABLE jobs ADD COLUMN tenant text;
UPDATE jobs j SET tenant = d.tenant FROM documents d WHERE d.id = j.document_id;
ALTER TABLE jobs ALTER COLUMN tenant SET NOT NULL;
-- A tenant's oldest runnable job is the first entry here, whatever other tenants queued.
CREATE INDEX jobs_tenant_ready ON jobs (tenant, next_attempt_at) WHERE state = 'ready';
-- status's recent documents and the dashboard's recent errors: index ranges, not sorts.
CREATE INDEX documents_tenant_updated ON documents (tenant, updated_at DESC) WHERE superseded_at IS NULL;
CREATE INDEX documents_tenant_failed ON documents (tenant, updated_at DESC)
    WHERE stage = 'failed' AND superseded_at IS NULL;
-- A page of one stage's documents (list_documents_in_stage.sql): not a walk past the others.
CREATE INDEX documents_tenant_stage ON documents (tenant, stage, created_at DESC, id DESC);

-- A trigger function may only name the transition tables its event has: one branch each.
CREATE FUNCTION tally_documents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO document_tallies (tenant, stage, current, chunking, n)
        SELECT tenant, stage, is_current, CASE WHEN is_current THEN chunking END, count(*)
        FROM new_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO document_tallies (tenant, stage, current, chunking, n)
        SELECT tenant, stage, is_current, CASE WHEN is_current THEN chunking END, -count(*)
        FROM old_rows GROUP BY 1, 2, 3, 4;
    ELSE
        INSERT INTO document_tallies (tenant, stage, current, chunking, n)
        SELECT tenant, stage, is_current, CASE WHEN is_current THEN chunking END, sum(n)
        FROM (SELECT tenant, stage, is_current, chunking, 1 AS n FROM new_rows
              UNION ALL
              SELECT tenant, stage, is_current, chunking, -1 FROM old_rows) change
        GROUP BY 1, 2, 3, 4
        HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION job_due(state text, next_attempt_at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN state = 'ready' THEN date_bin('1 minute', next_attempt_at, TIMESTAMPTZ 'epoch') END
$$;

CREATE FUNCTION tally_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_tallies (tenant, state, due, n)
        SELECT tenant, state, job_due(state, next_attempt_at), count(*)
        FROM new_rows WHERE state IN ('ready', 'running') GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_tallies (tenant, state, due, n)
        SELECT tenant, state, job_due(state, next_attempt_at), -count(*)
        FROM old_rows WHERE state IN ('ready', 'running') GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO job_tallies (tenant, state, due, n)
        SELECT tenant, state, job_due(state, next_attempt_at), sum(n)
        FROM (SELECT tenant, state, next_attempt_at, 1 AS n FROM new_rows
              UNION ALL
              SELECT tenant, state, next_attempt_at, -1 FROM old_rows) change
        WHERE state IN ('ready', 'running')
        GROUP BY 1, 2, 3
        HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

-- Events: timings (stage_done with seconds) while the event exists, as the events were
-- counted; throughput as it happened (a deleted document's work was still done then).
CREATE FUNCTION tally_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO stage_time_tallies VALUES (OLD.stage, -1, -(OLD.detail->>'seconds')::float8);
        RETURN NULL;
    END IF;
    IF NEW.kind = 'stage_done' AND NEW.detail ? 'seconds' THEN
        INSERT INTO stage_time_tallies VALUES (NEW.stage, 1, (NEW.detail->>'seconds')::float8);
    END IF;
    IF NEW.kind = 'failed' OR NEW.stage IN ('complete', 'chunked') THEN
        INSERT INTO throughput_tallies
        SELECT d.tenant, date_bin('1 minute', NEW.created_at, TIMESTAMPTZ 'epoch'),
               (NEW.kind = 'stage_done' AND NEW.stage = 'complete')::int,
               CASE WHEN NEW.kind = 'stage_done' AND NEW.stage = 'chunked'
                    THEN coalesce((NEW.detail->>'chunks')::bigint, 0) ELSE 0 END,
               (NEW.kind = 'failed')::int
        FROM documents d WHERE d.id = NEW.document_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tally_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO ledger_tallies
        VALUES (OLD.service, OLD.model, OLD.unit, coalesce(OLD.outcome, OLD.state), -1,
                CASE WHEN OLD.state <> 'released' THEN -OLD.units ELSE 0 END,
                CASE WHEN OLD.state <> 'released' THEN -OLD.cost_usd ELSE 0 END);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO ledger_tallies
        VALUES (NEW.service, NEW.model, NEW.unit, coalesce(NEW.outcome, NEW.state), 1,
                CASE WHEN NEW.state <> 'released' THEN NEW.units ELSE 0 END,
                CASE WHEN NEW.state <> 'released' THEN NEW.cost_usd ELSE 0 END);
    END IF;
    RETURN NULL;
END $$;

-- Statement-level for documents and jobs: a batch's thousands of rows make one delta per key.
CREATE TRIGGER documents_tally_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_documents();
CREATE TRIGGER documents_tally_update AFTER UPDATE ON documents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_documents();
CREATE TRIGGER documents_tally_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_documents();
CREATE TRIGGER jobs_tally_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_jobs();
CREATE TRIGGER jobs_tally_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_jobs();
CREATE TRIGGER jobs_tally_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tally_jobs();
-- Row-level with a WHEN for events and the ledger: they are written a row per statement,
-- and most events are not timings (the condition costs no function call).
CREATE TRIGGER events_tally_insert AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.kind IN ('stage_done', 'failed')) EXECUTE FUNCTION tally_events();
CREATE TRIGGER events_tally_delete AFTER DELETE ON events FOR EACH ROW
    WHEN (OLD.kind = 'stage_done' AND OLD.detail ? 'seconds') EXECUTE FUNCTION tally_events();
CREATE TRIGGER ledger_tally AFTER INSERT OR UPDATE OR DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION tally_ledger();
-- TRUNCATE fires no row or statement trigger: zero the tallies with it.
CREATE FUNCTION tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I', TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER documents_tally_truncate AFTER TRUNCATE ON documents
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncated('document_tallies');
CREATE TRIGGER jobs_tally_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncated('job_tallies');
CREATE TRIGGER events_tally_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncated('stage_time_tallies');
CREATE TRIGGER events_throughput_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncated('throughput_tallies');
CREATE TRIGGER ledger_tally_truncate AFTER TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION tally_truncated('ledger_tallies');

-- What is there already.
INSERT INTO document_tallies (tenant, stage, current, chunking, n)
SELECT tenant, stage, is_current, CASE WHEN is_current THEN chunking END, count(*)
FROM documents GROUP BY 1, 2, 3, 4;
INSERT INTO job_tallies (tenant, state, due, n)
SELECT tenant, state, job_due(state, next_attempt_at), count(*)
FROM jobs WHERE state IN ('ready', 'running') GROUP BY 1, 2, 3;
INSERT INTO stage_time_tallies
SELECT stage, count(*), sum((detail->>'seconds')::float8)
FROM events WHERE kind = 'stage_done' AND detail ? 'seconds' GROUP BY stage;
INSERT INTO throughput_tallies
SELECT d.tenant, date_bin('1 minute', e.created_at, TIMESTAMPTZ 'epoch'),
       count(*) FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'complete'),
       coalesce(sum((e.detail->>'chunks')::bigint) FILTER (WHERE e.kind = 'stage_done' AND e.stage = 'chunked'), 0),
       count(*) FILTER (WHERE e.kind = 'failed')
FROM events e JOIN documents d ON d.id = e.document_id
WHERE e.kind IN ('stage_done', 'failed') AND e.created_at >= now() - interval '1 day'
GROUP BY 1, 2;
INSERT INTO ledger_tallies
SELECT service, model, unit, coalesce(outcome, state), count(*),
       coalesce(sum(units) FILTER (WHERE state <> 'released'), 0),
       coalesce(sum(cost_usd) FILTER (WHERE state <> 'released'), 0)
FROM ledger GROUP BY 1, 2, 3, 4;
