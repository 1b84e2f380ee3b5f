"""The document lifecycle: every stage and every legal move between stages, in one place.

The database enforces this table: ``store/database.py`` copies it into ``stage_transitions``
at every migration and a trigger on ``documents`` raises on any other move, so a bug in
any caller (worker, API, CLI, webhook) cannot put a document into a state the pipeline
does not understand. The CLI, the API, the dashboard and the metrics list stages from here.

    queued -> parsing -> parsed -> chunking -> chunked -> embedding -> embedded -> complete
    (any stage but a terminal one) -> failed -> (retry) -> queued
    (any stage but superseded) -> superseded     a newer version of the source became current
    complete -> chunked                           HYBRID repair of a degraded document
    (new) -> parsed                               a re-chunk: a new version of a document's parsed text
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    QUEUED = "queued"
    PARSING = "parsing"
    PARSED = "parsed"
    CHUNKING = "chunking"
    CHUNKED = "chunked"
    EMBEDDING = "embedding"
    EMBEDDED = "embedded"
    COMPLETE = "complete"
    FAILED = "failed"
    SUPERSEDED = "superseded"


# The pipeline's stages in order: progress bars and "has it got this far" comparisons.
PIPELINE = (Stage.QUEUED, Stage.PARSING, Stage.PARSED, Stage.CHUNKING, Stage.CHUNKED,
            Stage.EMBEDDING, Stage.EMBEDDED, Stage.COMPLETE)
RANK = {stage: i for i, stage in enumerate(PIPELINE)}
# No job runs for a document in one of these stages (complete may be repaired, see below).
TERMINAL = frozenset({Stage.COMPLETE, Stage.FAILED, Stage.SUPERSEDED})
# Stages a document passes through while a worker holds its job.
IN_FLIGHT = frozenset(set(Stage) - TERMINAL)

# (from, to, who makes the move). ``None`` as "from" is the creation of a document.
TRANSITIONS: tuple[tuple[Stage | None, Stage, str], ...] = (
    (None, Stage.QUEUED, "register"),
    (None, Stage.PARSED, "re-chunk (reembed)"),
    (Stage.QUEUED, Stage.PARSING, "worker"),
    (Stage.PARSING, Stage.PARSED, "worker, webhook"),
    (Stage.PARSED, Stage.CHUNKING, "worker"),
    (Stage.CHUNKING, Stage.CHUNKED, "worker"),
    (Stage.CHUNKED, Stage.EMBEDDING, "worker"),
    (Stage.EMBEDDING, Stage.EMBEDDED, "worker"),
    (Stage.EMBEDDED, Stage.COMPLETE, "worker"),
    (Stage.COMPLETE, Stage.CHUNKED, "repair scheduler"),
    *((stage, Stage.FAILED, "worker") for stage in PIPELINE if stage not in TERMINAL),
    (Stage.FAILED, Stage.QUEUED, "retry (CLI, API, re-ingest)"),
    *((stage, Stage.SUPERSEDED, "version swap") for stage in Stage if stage is not Stage.SUPERSEDED),
)

