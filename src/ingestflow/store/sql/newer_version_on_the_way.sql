-- Among these documents, those whose source has a newer version that is neither failed nor
-- superseded: that one replaces them when it completes, so what they would cost is waste.
-- One probe per document of the (tenant, source_name, version) index.
SELECT d.id
FROM documents d
WHERE d.id = ANY(%(ids)s)
  AND EXISTS (SELECT 1 FROM documents n
              WHERE n.tenant = d.tenant AND n.source_name = d.source_name
                AND n.version > d.version AND n.stage NOT IN ('failed', 'superseded'))
