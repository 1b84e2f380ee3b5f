INSERT INTO document_texts (document_id, markdown, pages, parser)
VALUES (%(document_id)s, %(markdown)s, %(pages)s, %(parser)s)
ON CONFLICT (document_id) DO UPDATE
SET markdown = EXCLUDED.markdown, pages = EXCLUDED.pages, parser = EXCLUDED.parser
