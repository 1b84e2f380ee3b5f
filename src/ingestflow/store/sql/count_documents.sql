-- How many documents list_documents.sql lists, over all its pages.
SELECT count(*) AS documents
FROM documents d
WHERE d.tenant = %(tenant)s
  AND (CASE WHEN %(stage)s::text IS NULL THEN d.superseded_at IS NULL ELSE d.stage = %(stage)s END)
