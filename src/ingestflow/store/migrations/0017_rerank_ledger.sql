-- Reranking is billed per search unit (one query with up to 100 documents): the ledger
-- records that unit beside tokens and pages.
ALTER TABLE ledger DROP CONSTRAINT ledger_unit_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_unit_check CHECK (unit IN ('tokens', 'pages', 'search_units'));
