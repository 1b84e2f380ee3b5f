-- Whoever applies a batch's results holds its row: two workers never apply one batch.
SELECT state FROM embedding_batches WHERE id = %(id)s FOR UPDATE
