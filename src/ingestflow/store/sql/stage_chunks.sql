-- A staging table for a batch's chunks: COPY cannot compute the search vector, so the
-- rows land here and insert_staged_chunks.sql adds it on the way into chunks.
CREATE TEMP TABLE staged_chunks (
    id uuid, document_id uuid, ordinal integer, text text, text_sha256 text, token_count integer, metadata jsonb
) ON COMMIT DROP
