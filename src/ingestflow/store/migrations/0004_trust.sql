-- The document lifecycle is enforced by the database: a trigger refuses any stage change
-- that `stage_transitions` does not list. The table is written from ingestflow.lifecycle
-- at every migration (store/database.py), so the rule lives in one place.
CREATE TABLE stage_transitions (
    from_stage  text,                            -- NULL: the creation of a document
    to_stage    text NOT NULL,
    actor       text NOT NULL                    -- who makes the move (documentation)
);
CREATE UNIQUE INDEX stage_transitions_move ON stage_transitions (coalesce(from_stage, ''), to_stage);

ALTER TABLE documents DROP CONSTRAINT documents_stage_check;
-- Versions retired before this migration get the terminal stage they now have.
UPDATE documents SET stage = 'superseded' WHERE superseded_at IS NOT NULL;

CREATE FUNCTION check_stage_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.stage = OLD.stage THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM stage_transitions
        WHERE from_stage IS NOT DISTINCT FROM (CASE WHEN TG_OP = 'UPDATE' THEN OLD.stage END)
          AND to_stage = NEW.stage
    ) THEN
        RAISE EXCEPTION 'illegal stage transition % -> % (document %)',
            coalesce(CASE WHEN TG_OP = 'UPDATE' THEN OLD.stage END, '(new)'), NEW.stage, NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER documents_stage_transition
    BEFORE INSERT OR UPDATE OF stage ON documents
    FOR EACH ROW EXECUTE FUNCTION check_stage_transition();

-- A deferral has a maximum age: the time of the first deferral since the job last made
-- durable progress.
ALTER TABLE jobs ADD COLUMN deferred_since timestamptz;

-- Which job and worker reserved a ledger row, so that a reservation left behind by a
-- killed worker is closed once that worker's lease on the job has expired.
ALTER TABLE ledger ADD COLUMN job_id bigint;
ALTER TABLE ledger ADD COLUMN owner text;
CREATE INDEX ledger_reserved ON ledger (created_at) WHERE state = 'reserved';

-- A LlamaParse job submitted with a callback: the worker does not wait for it. Its id is
-- in the callback URL and seeds the callback's secret, so a delivery for one job can
-- never apply to another; the result applies once (state leaves 'submitted').
CREATE TABLE parse_jobs (
    id               uuid PRIMARY KEY,
    document_id      uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    provider_job_id  text NOT NULL,
    state            text NOT NULL DEFAULT 'submitted'
                         CHECK (state IN ('submitted', 'applied', 'failed', 'abandoned')),
    error            text,                           -- the provider's reason, when failed
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE UNIQUE INDEX parse_jobs_one_open ON parse_jobs (document_id) WHERE state = 'submitted';
