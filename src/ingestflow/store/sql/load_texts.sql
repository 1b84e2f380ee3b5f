SELECT document_id, markdown, pages, parser, title FROM document_texts WHERE document_id = ANY(%(ids)s)
