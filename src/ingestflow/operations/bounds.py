"""What a search request (and a documents listing's stage) may be, decided here for every face.

The Python client (local and remote), the CLI and the API's request schema all check a
search's arguments with these functions, so the same mistake is refused with the same code
and message whichever face it arrives by (the API answers 400 with the code, as for any
operation's refusal). Text is stored and compared as PostgreSQL text, which holds no NUL
and only valid UTF-8: a lone surrogate (bytes that were not UTF-8) cannot reach it.
"""

from __future__ import annotations

import numbers
import reprlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_args

from ingestflow.catalogue import SearchMode
from ingestflow.lifecycle import Stage
from ingestflow.operations.errors import Refused

MAX_QUERY_CHARS = 8000
MIN_K, MAX_K = 1, 100
MAX_FILTER_CHARS = {"source_name": 1024, "mime": 200}
MAX_FILTER_DOCUMENTS = 1000
MIN_SCORE_BOUNDS = (0.0, 1.0)  # every mode's score lies in [0, 1] (a cosine below 0 shows as 0)
MODES: tuple[str, ...] = get_args(SearchMode)
STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
# Every code a check below can refuse with: the API answers them 400, not 422.
CODES = frozenset({"invalid_query", "query_too_long", "invalid_k", "unknown_mode", "invalid_filters",
                   "invalid_min_score", "unknown_stage"})


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold it: no NUL, no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_query(query: Any) -> str:
    """The query as given. Blank is allowed (it finds nothing, with a note); a NUL is read
    as a space by the search."""
    if not isinstance(query, str):
        raise Refused("invalid", "invalid_query", "The query must be text.")
    if len(query) > MAX_QUERY_CHARS:
        raise Refused("invalid", "query_too_long", f"The query is longer than {MAX_QUERY_CHARS} characters; "
                                                   "shorten it.")
    if not storable(query.replace("\x00", " ")):
        raise Refused("invalid", "invalid_query", "The query is not valid Unicode text (a lone surrogate).")
    return query


def check_k(k: Any) -> int:
    """How many passages: a whole number from MIN_K to MAX_K (never a bool, never "5"; 5.0
    is whole, as JSON Schema's integers are)."""
    whole = isinstance(k, numbers.Integral) or (isinstance(k, float) and k.is_integer())
    if isinstance(k, bool) or not whole or not MIN_K <= k <= MAX_K:
        raise Refused("invalid", "invalid_k", f"k is how many passages to return: a whole number from {MIN_K} "
                                              f"to {MAX_K}, not {reprlib.repr(k)}.")
    return int(k)


def check_mode(mode: Any) -> str | None:
    """One of MODES, or None for the configured SEARCH_MODE."""
    if mode is not None and mode not in MODES:
        raise Refused("invalid", "unknown_mode",
                      f"Unknown search mode {reprlib.repr(mode)}; use one of: {', '.join(MODES)}.")
    return mode


def check_stage(stage: Any) -> str | None:
    """A documents listing's stage: one of STAGES, or None for every current document. An
    unknown one is a mistake, not a stage nothing is in (which lists nothing)."""
    if stage is not None and stage not in STAGES:
        raise Refused("invalid", "unknown_stage",
                      f"Unknown stage {reprlib.repr(stage)}; use one of: {', '.join(STAGES)}.")
    return None if stage is None else str(stage)


def check_filter_text(field: str, value: Any) -> str | None:
    """A text filter (``source_name``, ``mime``): matched exactly, so text no stored value
    can hold (NUL, a lone surrogate, longer than the longest) is a mistake, said as one."""
    if value is None:
        return None
    limit = MAX_FILTER_CHARS[field]
    if not isinstance(value, str):
        raise Refused("invalid", "invalid_filters", f"The {field} filter must be text.")
    if len(value) > limit:
        raise Refused("invalid", "invalid_filters", f"The {field} filter is longer than {limit} characters.")
    if not storable(value):
        raise Refused("invalid", "invalid_filters", f"The {field} filter holds a NUL or is not valid Unicode text.")
    return value


def check_document_ids(ids: Any) -> list[uuid.UUID] | None:
    """The document_ids filter: at most MAX_FILTER_DOCUMENTS ids (UUIDs or their text)."""
    if ids is None:
        return None
    if isinstance(ids, str | bytes) or not isinstance(ids, list | tuple):
        raise Refused("invalid", "invalid_filters", "The document_ids filter must be a list of document ids.")
    if len(ids) > MAX_FILTER_DOCUMENTS:
        raise Refused("invalid", "invalid_filters",
                      f"The document_ids filter holds more than {MAX_FILTER_DOCUMENTS} ids.")
    try:
        return [i if isinstance(i, uuid.UUID) else uuid.UUID(i) for i in ids]
    except (TypeError, ValueError, AttributeError):
        raise Refused("invalid", "invalid_filters", "The document_ids filter holds something that is not "
                                                    "a document id (a UUID).") from None


@dataclass(frozen=True)
class Filters:
    """Search only these: a source name, document ids, a MIME type (all given must match)."""

    source_name: str | None = None
    document_ids: list[uuid.UUID] | None = None
    mime: str | None = None


def check_filters(filters: Any) -> Filters:
    """Filters, or their fields as a mapping (JSON's shape, a LangChain call's ``filters=``);
    None: no filter."""
    if filters is None:
        return Filters()
    if isinstance(filters, Mapping):
        unknown = sorted(set(filters) - {f.name for f in fields(Filters)})
        if unknown:
            raise Refused("invalid", "invalid_filters", f"Unknown filter(s) {reprlib.repr(unknown)}; use "
                                                        "source_name, document_ids or mime.")
        filters = Filters(**filters)
    if not isinstance(filters, Filters):
        raise Refused("invalid", "invalid_filters", "filters are source_name, document_ids and mime: an object "
                                                    "of them (SearchFilters in Python).")
    return Filters(check_filter_text("source_name", filters.source_name), check_document_ids(filters.document_ids),
                   check_filter_text("mime", filters.mime))


def check_min_score(min_score: Any) -> float | None:
    """The score a passage must reach, within MIN_SCORE_BOUNDS (NaN is not); None: the
    model's default."""
    if min_score is None:
        return None
    number = isinstance(min_score, numbers.Real) and not isinstance(min_score, bool)
    if not number or not MIN_SCORE_BOUNDS[0] <= min_score <= MIN_SCORE_BOUNDS[1]:
        raise Refused("invalid", "invalid_min_score",
                      f"min_score must be between {MIN_SCORE_BOUNDS[0]:g} and {MIN_SCORE_BOUNDS[1]:g}.")
    return float(min_score)


def check_arguments(query: Any, k: Any, mode: Any, filters: Any,
                    min_score: Any = None) -> tuple[str, int, str | None, Filters, float | None]:
    """A search's arguments, checked in the order the API's schema checks them, so the
    first mistake is the same one on every face."""
    return check_query(query), check_k(k), check_mode(mode), check_filters(filters), check_min_score(min_score)
