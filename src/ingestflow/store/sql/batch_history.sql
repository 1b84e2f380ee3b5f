-- For chunks still without a vector in the space: how often a closed batch failed them
-- and how often one ended before running them.
SELECT bc.chunk_id,
       count(*) FILTER (WHERE bc.outcome = 'failed') AS failed,
       count(*) FILTER (WHERE bc.outcome = 'not_run') AS not_run
FROM embedding_batch_chunks bc
JOIN embedding_batches b ON b.id = bc.batch_id AND b.space_id = %(space_id)s AND b.state = 'closed'
WHERE bc.chunk_id = ANY(%(ids)s)
GROUP BY bc.chunk_id
