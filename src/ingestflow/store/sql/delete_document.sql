-- Chunks, vectors, texts, events and the job go by ON DELETE CASCADE; ledger rows stay
-- (their document_id becomes NULL) so spend history is kept.
DELETE FROM documents
WHERE id = %(document_id)s AND tenant = %(tenant)s
RETURNING sha256
