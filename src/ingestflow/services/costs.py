"""Prices of the paid services.

Embeddings are billed per input token, LlamaParse per page in credits. Defaults follow the
providers' public price lists (late 2026); every number can be overridden in settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

DEFAULT_EMBEDDING_USD_PER_MTOK = {
    "text-embedding-3-small": Decimal("0.02"),
    "text-embedding-3-large": Decimal("0.13"),
    "text-embedding-ada-002": Decimal("0.10"),
}
MILLION = Decimal(1_000_000)


class UnknownPrice(ValueError):
    pass


@dataclass(frozen=True)
class PriceTable:
    embedding_usd_per_mtok: dict[str, Decimal] = field(
        default_factory=lambda: dict(DEFAULT_EMBEDDING_USD_PER_MTOK)
    )
    llamaparse_credits_per_page: Decimal = Decimal(3)
    llamaparse_usd_per_1000_credits: Decimal = Decimal("1.25")

    def embedding_cost(self, model: str, tokens: int) -> Decimal:
        try:
            return self.embedding_usd_per_mtok[model] * tokens / MILLION
        except KeyError:
            raise UnknownPrice(f"no price for embedding model {model!r}") from None

    def parse_cost(self, pages: int) -> Decimal:
        return self.llamaparse_credits_per_page * pages * self.llamaparse_usd_per_1000_credits / 1000
