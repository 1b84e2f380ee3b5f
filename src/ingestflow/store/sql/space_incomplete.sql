-- Whether some chunk of the tenant's current documents still lacks a vector in the space,
-- or the space is still in a bulk load without its index (a model change switches once
-- the new space is indexed: until then the old one answers from its graph, and the
-- worker that builds the index switches the tenant, worker.py).
-- Run after every batch during a model change, so it stops early: while the tenant's
-- re-embed jobs are queued the answer is yes at once (the queued-jobs index); after
-- that, at the first chunk without a vector. space_coverage.sql counts, for reports.
SELECT EXISTS (
    SELECT 1 FROM embedding_spaces s WHERE s.id = %(space_id)s AND s.bulk_load_since IS NOT NULL
) OR EXISTS (
    SELECT 1 FROM jobs j JOIN documents d ON d.id = j.document_id
    WHERE j.state IN ('ready', 'running') AND j.task = 'reembed' AND d.tenant = %(tenant)s
) OR EXISTS (
    SELECT 1
    FROM documents d
    JOIN chunks c ON c.document_id = d.id
    WHERE d.tenant = %(tenant)s AND d.is_current
      AND NOT EXISTS (
          SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id AND e.space_id = %(space_id)s)
)
