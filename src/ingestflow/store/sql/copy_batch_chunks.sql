COPY embedding_batch_chunks (batch_id, chunk_id, document_id, custom_id, position, tokens) FROM STDIN
