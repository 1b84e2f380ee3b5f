-- Vector reuse (reuse_vectors.sql) copies the vector of a chunk of identical text within
-- the document's tenant. Keyed on the text alone, the lookup walked every chunk sharing a
-- text (a footer, a disclaimer) in all tenants, each checked against its document: a small
-- tenant's batch read ~100,000 rows per shared text at 500k copies. With the tenant beside
-- the text hash the lookup starts at the tenant's own copies. A document's tenant never
-- changes, so the copy on the chunk cannot go stale; insert_staged_chunks.sql, the one
-- writer of chunks, fills it.
ALTER TABLE chunks ADD COLUMN tenant text;
UPDATE chunks c SET tenant = d.tenant FROM documents d WHERE d.id = c.document_id;
CREATE INDEX chunks_tenant_text_sha ON chunks (tenant, text_sha256);
DROP INDEX chunks_text_sha;
