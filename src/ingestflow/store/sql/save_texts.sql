-- Parsed texts of a batch (a rerun of parsing replaces an earlier result), and which
-- parser produced each.
WITH saved AS (
    INSERT INTO document_texts (document_id, markdown, pages, parser, title)
    SELECT * FROM unnest(%(ids)s::uuid[], %(markdowns)s::text[], %(pages)s::jsonb[], %(parsers)s::text[],
                         %(titles)s::text[])
    ON CONFLICT (document_id) DO UPDATE
    SET markdown = EXCLUDED.markdown, pages = EXCLUDED.pages, parser = EXCLUDED.parser, title = EXCLUDED.title
    RETURNING document_id, parser
)
UPDATE documents d SET parser = saved.parser FROM saved WHERE d.id = saved.document_id
