SELECT stage, count(*) AS documents FROM documents WHERE superseded_at IS NULL GROUP BY stage
