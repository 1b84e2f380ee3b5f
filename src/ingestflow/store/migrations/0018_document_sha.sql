-- Whether any tenant still uses some stored bytes, asked at every delete, is one index
-- probe (documents_tenant_sha serves only questions within one tenant).
CREATE INDEX documents_sha ON documents (sha256);
