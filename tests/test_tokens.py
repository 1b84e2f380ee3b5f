"""The cl100k_base counter: exact, offline, and identical to bpe-openai's own encoder."""

from __future__ import annotations

import random
from pathlib import Path

from ingestflow.tokens import count_tokens, encoding

ROOT = Path(__file__).resolve().parents[1]


def test_counts_match_bpe_openai_on_real_and_random_text() -> None:
    import bpe_openai

    reference = bpe_openai.get_encoding("cl100k_base")
    rng = random.Random(5)
    texts = [p.read_text(errors="replace") for p in sorted(ROOT.glob("src/ingestflow/**/*.py"))[:40]]
    texts += ["".join(chr(rng.randrange(32, 0x3000)) for _ in range(1500)) for _ in range(100)]
    texts += ["", "  \n\n\t x ", "I'll we've THEY'RE 12345678 ©©© \r\n\r\n", "🙂" * 50, "<|endoftext|> as text"]
    for text in texts:
        assert encoding().encode_ordinary(text) == reference.encode_ordinary(text)
    assert count_tokens("hello world") == 2 and count_tokens("") == 0
