-- Whether a database holds no documents, no API keys and no ledger entries: what a
-- restore may overwrite. NULL-safe on a database whose schema does not exist yet.
SELECT to_regclass('documents') IS NULL
    OR NOT (EXISTS (SELECT FROM documents) OR EXISTS (SELECT FROM api_keys) OR EXISTS (SELECT FROM ledger))
