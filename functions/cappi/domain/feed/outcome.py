"""What parsing a feed gives: the parsed feed, or a whole-document rejection; the codes that name each rejected row
and document, in words for people; and the rejected rows' counts and examples, which both parsers build alike."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cappi.domain.ids import ABSENT, Reason
from cappi.domain.row_example import CUT_MARK, RowExample

MAX_REJECTED_RATIO = 0.05
# Deepest nesting of arrays and objects a document may have. The documented shape needs 4
# (document, Result, Calls, row); the margin leaves room for extra fields, which are ignored.
MAX_DEPTH = 64

# Whole-document rejection codes (FeedRejected.code; metric dimension values, keep them stable).
NOT_JSON = "not_json"
TOO_DEEP = "too_deep"
BAD_SHAPE = "bad_shape"
TOO_MANY_REJECTED = "too_many_rejected"
DOCUMENT_REASON_TEXT = {
    NOT_JSON: "not JSON: empty, truncated, an HTML page, not UTF-8, NaN or Infinity, a number too long to read",
    TOO_DEEP: f"arrays or objects nested more than {MAX_DEPTH} deep",
    BAD_SHAPE: "not an object whose Result.Calls is an array, or Result or Calls given twice",
    TOO_MANY_REJECTED: f"more than {MAX_REJECTED_RATIO:.0%} of rows rejected",
}

# Row rejection reasons (metric dimension values; keep them stable). The ID rules' own are `cappi.domain.ids.Reason`.
ROW_NOT_OBJECT = "row_not_object"
AMBIGUOUS_FIELD = "ambiguous_field"
CALL_ID_MISSING = Reason.CALL_ID_MISSING.value
CALL_ID_INVALID = Reason.CALL_ID_INVALID.value
CLUB_ID_MISSING = Reason.CLUB_ID_MISSING.value
CLUB_ID_INVALID = Reason.CLUB_ID_INVALID.value
CLUB_NOT_OWNED = "club_not_owned"
TECH_ID_MISSING = Reason.TECH_ID_MISSING.value
TECH_ID_INVALID = Reason.TECH_ID_INVALID.value
REJECT_REASONS = (
    ROW_NOT_OBJECT,
    AMBIGUOUS_FIELD,
    CALL_ID_MISSING,
    CALL_ID_INVALID,
    CLUB_ID_MISSING,
    CLUB_ID_INVALID,
    CLUB_NOT_OWNED,
    TECH_ID_MISSING,
    TECH_ID_INVALID,
)
# Each rule in words, for the people who read reports and consoles (the codes stay the metrics' and the JSON's).
REASON_TEXT = {
    ROW_NOT_OBJECT: "a row that is not a JSON object",
    AMBIGUOUS_FIELD: "a field given twice, e.g. CallId and callid, or CallId and CallId",
    CALL_ID_MISSING: "no CallId",
    CALL_ID_INVALID: "CallId not a whole number of up to 7 digits",
    CLUB_ID_MISSING: "no ClubId",
    CLUB_ID_INVALID: "ClubId not a whole number of up to 3 digits",
    CLUB_NOT_OWNED: "a ClubId this source is not registered for",
    TECH_ID_MISSING: "no TechId",
    TECH_ID_INVALID: "TechId not 1 to 32 letters and digits",
}
# Conformance warnings: accepted, but the club should fix its feed.
QUOTED_CALL_ID_WARNING = "quoted_call_id"
WARNING_TEXT = {QUOTED_CALL_ID_WARNING: "with a quoted CallId (the document asks for a JSON number)"}
MAX_EXAMPLES = 5  # rejected rows kept per reason, to show a club which rows broke which rule
_EXAMPLE_CHARS = 60  # an offending value is shown cut to this length


class FeedRejected(Exception):
    """The whole document is unusable. `code` is stable (metrics, results); the message is for people."""

    def __init__(self, code: str, message: str, parsed: ParsedFeed | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.parsed = parsed


@dataclass(slots=True)
class ParsedFeed:
    """Valid rows grouped by club ID, then canonical TechId, into sets of call IDs.

    A numeric call ID is kept as an int and a quoted one as its canonical string ("8655R"); the snapshot turns both
    into strings. Every club the source owns has an entry, even with no calls: an absent club means "all closed".
    """

    by_club: dict[int, dict[str, set[int | str]]]
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[RowExample]] = field(default_factory=dict)  # up to MAX_EXAMPLES per reason

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def rejected_ratio(self) -> float:
        return self.rejected_total / self.rows if self.rows else 0.0

    @property
    def duplicates(self) -> int:
        unique = sum(len(calls) for techs in self.by_club.values() for calls in techs.values())
        return self.accepted - unique


def tolerated(parsed: ParsedFeed, max_rejected_ratio: float) -> ParsedFeed:
    """`parsed`, unless more than `max_rejected_ratio` of its rows were rejected (FeedRejected, with the rows)."""
    if parsed.rows and parsed.rejected_ratio > max_rejected_ratio:
        raise FeedRejected(
            TOO_MANY_REJECTED,
            f"{parsed.rejected_total} of {parsed.rows} rows failed validation "
            f"({parsed.rejected_ratio:.1%} > {max_rejected_ratio:.0%}); {most_common_reasons(parsed.rejected)}",
            parsed,
        )
    return parsed


def most_common_reasons(rejected: dict[str, int]) -> str:
    """The most common rejection reason, code and words (`most common reason: tech_id_invalid (TechId not ...)`),
    or every reason tied for it, named as a tie; the tied ones in REJECT_REASONS' order."""
    if not rejected:
        return "no row rejected"
    most = max(rejected.values())
    order = {reason: n for n, reason in enumerate(REJECT_REASONS)}
    worst = sorted((r for r, count in rejected.items() if count == most), key=lambda r: (order.get(r, len(order)), r))
    named = ", ".join(f"{r} ({REASON_TEXT.get(r, r)})" for r in worst)
    if len(worst) == 1:
        return f"most common reason: {named}"
    return f"no single most common reason: {len(worst)} tied at {most} rows each: {named}"


def example(index: int, value: object) -> RowExample:
    """Row `index` with its offending `value` as JSON text, cut to a readable length (ABSENT: "(missing)")."""
    if value is ABSENT:
        return RowExample(index, "(missing)")
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        if not text.isascii():
            text.encode()  # a lone surrogate ("\ud800" in the feed) cannot be stored, logged or printed as UTF-8
    except UnicodeEncodeError:
        text = json.dumps(value, sort_keys=True)  # escaped: ASCII whatever the feed held
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return RowExample(index, text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - len(CUT_MARK)] + CUT_MARK)


class Rejections:
    """Rejected rows counted by reason, with the first MAX_EXAMPLES of each; shared by both parsers, which the
    property tests hold to the same counts and examples. Only rejected rows come here: the accepted pay nothing."""

    __slots__ = ("counts", "examples")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[RowExample]] = {}

    def add(self, reason: str, index: int, value: object) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(example(index, value))
