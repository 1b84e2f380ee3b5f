-- Of these content hashes, those no document of any tenant uses any more (blobs are
-- shared by hash); documents_sha (migration 0018) makes each one index probe.
SELECT s.sha256
FROM unnest(%(shas)s::text[]) AS s(sha256)
WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = s.sha256)
