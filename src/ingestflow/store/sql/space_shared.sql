-- Whether a tenant other than %(tenant)s holds vectors in the space. Read through the
-- other tenants' documents (one probe each into the space's primary key, by its first
-- chunk with a vector), never through the space's partition: the asker's own vectors,
-- however many, are not read.
SELECT EXISTS (
    SELECT 1
    FROM documents d
    WHERE d.tenant <> %(tenant)s
      AND EXISTS (SELECT 1 FROM chunks c JOIN embeddings e ON e.chunk_id = c.id AND e.space_id = %(space_id)s
                  WHERE c.document_id = d.id)
)
