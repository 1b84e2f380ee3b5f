-- A real cosine distance in vector and in halfvec (the stored type: its code paths
-- differ), as wide as OpenAI's embeddings so that pgvector's SIMD code runs. A template:
-- {dims} is filled in from an integer constant (a type modifier takes no bind parameter).
SELECT %(a)s::vector({dims}) <=> %(b)s::vector({dims}),
       %(a)s::halfvec({dims}) <=> %(b)s::halfvec({dims})  -- what search computes
