-- Binary COPY: several times faster than INSERT for rows of a few KB.
COPY embeddings (chunk_id, space_id, embedding) FROM STDIN WITH (FORMAT BINARY)
