-- Among these documents, those whose source already has a newer current version.
SELECT d.id
FROM documents d
WHERE d.id = ANY(%(ids)s)
  AND EXISTS (SELECT 1 FROM documents n
              WHERE n.tenant = d.tenant AND n.source_name = d.source_name
                AND n.version > d.version AND n.is_current)
