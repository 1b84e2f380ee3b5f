COPY staged_chunks (id, document_id, ordinal, text, text_sha256, token_count, metadata) FROM STDIN WITH (FORMAT BINARY)
