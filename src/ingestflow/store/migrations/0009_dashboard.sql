-- The dashboard polls every few seconds; these keep each poll bounded as tables grow.
-- Throughput reads only the last hour's finishing events (then their documents by key).
CREATE INDEX events_finished_at ON events (created_at) WHERE kind IN ('stage_done', 'failed');
-- A page of a tenant's documents, newest first, is an index range, not a sort of them all.
CREATE INDEX documents_tenant_created ON documents (tenant, created_at DESC, id DESC);
