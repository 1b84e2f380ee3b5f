-- Whether a newer version of this document's source is already the current one.
SELECT EXISTS (
    SELECT 1 FROM documents d JOIN documents n
      ON n.tenant = d.tenant AND n.source_name = d.source_name AND n.version > d.version
    WHERE d.id = %(document_id)s AND n.is_current
)
