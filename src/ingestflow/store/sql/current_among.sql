-- Those of these documents that are current, locked in id order (as current_versions.sql,
-- without their sources' other versions).
SELECT id FROM documents WHERE id = ANY(%(ids)s) AND is_current ORDER BY id FOR NO KEY UPDATE
