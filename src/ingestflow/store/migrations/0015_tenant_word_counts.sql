-- Keyword search chose a question's words by pg_stats and pg_class.reltuples, which count
-- every tenant's chunks: another tenant's uploads changed which words a tenant's search
-- used (an oracle for whether a word is common in other tenants' documents, and a way to
-- bury a word in everybody's keyword search). search.sql now counts, for each word, the
-- searching tenant's own chunks holding it (a bounded read, up to the row budget), and
-- chooses from those counts; the function reading the shared statistics goes.
DROP FUNCTION any_word_query(regconfig, text, real, real);
