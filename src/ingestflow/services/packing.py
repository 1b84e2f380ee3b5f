"""Packing inputs into provider requests: the one batching function.

Inputs keep their order and each request takes as many as fit every limit that applies:
the model's inputs and tokens per request (catalogue), a smaller configured request
size, and a tokens-per-minute cap (a bigger request could never be admitted).
"""

from __future__ import annotations

from collections.abc import Sequence

from ingestflow.catalogue import CL100K, EmbeddingModel
from ingestflow.errors import PermanentError


def pack(token_counts: Sequence[int], model: EmbeddingModel, *, max_inputs: int | None = None,
         max_tokens: int | None = None) -> list[range]:
    """Consecutive ranges covering every input, each one request; the fewest the limits allow."""
    inputs_cap = _smallest(model.max_inputs_per_request, max_inputs)
    tokens_cap = _smallest(model.max_tokens_per_request, max_tokens)
    out: list[range] = []
    start, tokens = 0, 0
    for i, n in enumerate(token_counts):
        if model.tokenizer == CL100K and n > model.max_input_tokens:
            raise PermanentError("input_too_long",
                                 f"input {i} has {n} tokens; {model.name} takes at most {model.max_input_tokens}")
        full = inputs_cap is not None and i - start >= inputs_cap
        over = tokens_cap is not None and tokens + n > tokens_cap
        if i > start and (full or over):
            out.append(range(start, i))
            start, tokens = i, 0
        tokens += n
    if start < len(token_counts):
        out.append(range(start, len(token_counts)))
    return out


def _smallest(*limits: int | None) -> int | None:
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None
