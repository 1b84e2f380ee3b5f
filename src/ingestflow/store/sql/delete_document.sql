-- Every version of a document's source (the caller holds the source's lock): chunks,
-- vectors, texts, events, jobs and parse jobs go by ON DELETE CASCADE; ledger rows keep
-- their amounts (their document_id becomes NULL) and hold no text. One content hash per
-- version deleted, for the stored bytes.
DELETE FROM documents
WHERE tenant = %(tenant)s AND source_name = %(source_name)s
RETURNING sha256
