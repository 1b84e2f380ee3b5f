-- Whether a question keeps any word for keyword search once stop words are dropped.
SELECT any_word_query(%(config)s::text::regconfig, %(question)s) IS NOT NULL
