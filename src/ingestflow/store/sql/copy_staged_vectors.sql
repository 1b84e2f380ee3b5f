COPY staged_embeddings (chunk_id, space_id, embedding) FROM STDIN WITH (FORMAT BINARY)
