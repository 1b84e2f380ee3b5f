-- Open batches of the space holding chunks of these documents, with the documents each
-- holds: those documents wait for the batch instead of sending their chunks again.
SELECT b.id, b.tenant, b.provider_batch_id, b.status, b.ledger_id, b.inputs, b.tokens,
       extract(epoch FROM now() - b.created_at)::float8 AS age_seconds,
       array_agg(DISTINCT bc.document_id) AS documents
FROM embedding_batch_chunks bc
JOIN embedding_batches b ON b.id = bc.batch_id AND b.state = 'open' AND b.space_id = %(space_id)s
WHERE bc.document_id = ANY(%(ids)s)
GROUP BY b.id
ORDER BY b.created_at
