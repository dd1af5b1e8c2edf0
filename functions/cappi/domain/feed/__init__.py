"""Parse and validate one club feed document: `{"Result": {"Calls": [{CallId, ClubId, TechId}, ...]}}`.

The rules are DESIGN.md section 2; the ID rules live in `cappi.domain.ids`. A row that breaks them is dropped and
counted by reason; a document that is not of the documented shape, or whose rejected rows exceed the tolerated
share, is rejected whole (FeedRejected), so a broken feed can never replace a good snapshot.

This is the hot path of ingest (100,000+ rows). The modules, each importing only those listed before it:
- `outcome`: ParsedFeed, FeedRejected, the rejection and warning codes and their words, the rejected rows' counts;
- `strict_json`: reading the bytes as JSON, strictly where Python's `json` is lenient;
- `reference`: the reference parser, which reads any document;
- `fast`: the fast path, msgspec's typed decoding of a document of exactly the documented shape (or None);
- `parse`: `parse_feed`, which runs the parser its caller names (`Parser.FAST` by default, `Parser.REFERENCE`).
This package re-exports their public names.
"""

from __future__ import annotations

from cappi.domain.feed.outcome import (
    AMBIGUOUS_FIELD,
    BAD_SHAPE,
    CALL_ID_INVALID,
    CALL_ID_MISSING,
    CLUB_ID_INVALID,
    CLUB_ID_MISSING,
    CLUB_NOT_OWNED,
    DOCUMENT_REASON_TEXT,
    MAX_DEPTH,
    MAX_EXAMPLES,
    MAX_REJECTED_RATIO,
    NOT_JSON,
    QUOTED_CALL_ID_WARNING,
    REASON_TEXT,
    REJECT_REASONS,
    ROW_NOT_OBJECT,
    TECH_ID_INVALID,
    TECH_ID_MISSING,
    TOO_DEEP,
    TOO_MANY_REJECTED,
    WARNING_TEXT,
    FeedRejected,
    ParsedFeed,
)
from cappi.domain.feed.parse import Parser, parse_feed
from cappi.domain.feed.reference import calls_array
from cappi.domain.feed.strict_json import load_json
from cappi.domain.ids import QUOTED_CALL_ID
from cappi.domain.row_example import RowExample  # part of what parse_feed returns

__all__ = [
    "AMBIGUOUS_FIELD",
    "BAD_SHAPE",
    "CALL_ID_INVALID",
    "CALL_ID_MISSING",
    "CLUB_ID_INVALID",
    "CLUB_ID_MISSING",
    "CLUB_NOT_OWNED",
    "DOCUMENT_REASON_TEXT",
    "MAX_DEPTH",
    "MAX_EXAMPLES",
    "MAX_REJECTED_RATIO",
    "NOT_JSON",
    "QUOTED_CALL_ID",
    "QUOTED_CALL_ID_WARNING",
    "REASON_TEXT",
    "REJECT_REASONS",
    "ROW_NOT_OBJECT",
    "TECH_ID_INVALID",
    "TECH_ID_MISSING",
    "TOO_DEEP",
    "TOO_MANY_REJECTED",
    "WARNING_TEXT",
    "FeedRejected",
    "ParsedFeed",
    "Parser",
    "RowExample",
    "calls_array",
    "load_json",
    "parse_feed",
]
