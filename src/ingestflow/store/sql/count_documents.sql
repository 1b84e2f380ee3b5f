-- How many documents list_documents.sql lists, over all its pages (tallies, migration 0022).
SELECT coalesce(sum(n), 0)::bigint AS documents
FROM document_tallies
WHERE tenant = %(tenant)s
  AND (CASE WHEN %(stage)s::text IS NULL THEN stage <> 'superseded' ELSE stage = %(stage)s END)
