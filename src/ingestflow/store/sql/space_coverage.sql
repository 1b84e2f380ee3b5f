-- How many of the tenant's current documents have a vector in the space for every chunk,
-- out of how many current documents, and the chunks and tokens still missing. One pass
-- over the tenant's current chunks (indexes: chunks (document_id, ordinal), the embeddings key).
SELECT count(*) FILTER (WHERE missing = 0) AS covered,
       count(*) AS current,
       coalesce(sum(missing), 0)::bigint AS missing_chunks,
       coalesce(sum(missing_tokens), 0)::bigint AS missing_tokens
FROM (
    SELECT d.id,
           count(c.id) FILTER (WHERE e.chunk_id IS NULL AND c.id IS NOT NULL) AS missing,
           coalesce(sum(c.token_count) FILTER (WHERE e.chunk_id IS NULL), 0) AS missing_tokens
    FROM documents d
    LEFT JOIN chunks c ON c.document_id = d.id
    LEFT JOIN embeddings e ON e.chunk_id = c.id AND e.space_id = %(space_id)s
    WHERE d.tenant = %(tenant)s AND d.is_current
    GROUP BY d.id
) per_document
