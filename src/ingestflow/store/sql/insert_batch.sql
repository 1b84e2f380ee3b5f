INSERT INTO embedding_batches (id, tenant, space_id, ledger_id, inputs, tokens)
VALUES (%(id)s, %(tenant)s, %(space_id)s, %(ledger_id)s, %(inputs)s, %(tokens)s)
