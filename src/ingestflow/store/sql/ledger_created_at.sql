SELECT created_at FROM ledger WHERE id = %(id)s
