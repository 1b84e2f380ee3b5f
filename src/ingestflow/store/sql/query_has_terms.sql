-- Whether a question keeps any word for keyword search once stop words are dropped.
SELECT question_words(%(config)s::text::regconfig, %(question)s) IS NOT NULL
