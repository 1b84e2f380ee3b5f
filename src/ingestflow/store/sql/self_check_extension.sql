-- Run in a transaction that is rolled back: the self-check leaves no extension behind.
CREATE EXTENSION IF NOT EXISTS vector
