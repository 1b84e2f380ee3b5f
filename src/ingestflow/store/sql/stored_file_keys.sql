-- Every stored file a document (of any tenant) references: what a backup copies.
SELECT DISTINCT sha256 FROM documents ORDER BY sha256
