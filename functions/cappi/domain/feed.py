"""Parse and validate one club feed document: `{"Result": {"Calls": [{CallId, ClubId, TechId}, ...]}}`.

The rules are DESIGN.md section 2. A row that breaks them is dropped and counted by reason; a document that is not
of the documented shape, or whose rejected rows exceed the tolerated share, is rejected whole (FeedRejected), so a
broken feed can never replace a good snapshot.

This is the hot path of ingest (100,000+ rows), so the row loop avoids per-row function calls and looks up the
field names once: clubs send the same spelling on every row, and only rows that differ take the slow path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cappi.domain.ids import MAX_CALL_ID, MAX_CLUB_ID, MAX_TECH_ID_LEN, QUOTED_CALL_ID

MAX_REJECTED_RATIO = 0.05

# Row rejection reasons (metric dimension values; keep them stable).
ROW_NOT_OBJECT = "row_not_object"
AMBIGUOUS_FIELD = "ambiguous_field"
CALL_ID_MISSING = "call_id_missing"
CALL_ID_INVALID = "call_id_invalid"
CLUB_ID_MISSING = "club_id_missing"
CLUB_ID_INVALID = "club_id_invalid"
CLUB_NOT_OWNED = "club_not_owned"
TECH_ID_MISSING = "tech_id_missing"
TECH_ID_INVALID = "tech_id_invalid"
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
    AMBIGUOUS_FIELD: "a field given twice, e.g. CallId and callid",
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

_MISSING = object()


class FeedRejected(Exception):
    """The whole document is unusable. `code` is stable (metrics, results); the message is for people."""

    def __init__(self, code: str, message: str, parsed: ParsedFeed | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.parsed = parsed


@dataclass(frozen=True, slots=True)
class RowExample:
    """One rejected row: its position in `Result.Calls` (from 0) and the offending value as JSON text."""

    index: int
    value: str


def _example(index: int, value: object) -> RowExample:
    if value is _MISSING:
        return RowExample(index, "(missing)")
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return RowExample(index, text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "...")


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


def parse_feed(
    body: bytes | str,
    club_ids: Iterable[int],
    *,
    max_rejected_ratio: float = MAX_REJECTED_RATIO,
) -> ParsedFeed:
    """Parse, validate and group a feed for a source that owns `club_ids`. Raises FeedRejected."""
    calls = calls_array(load_json(body))
    owned = frozenset(club_ids)
    parsed = _validate_rows(calls, owned)
    if parsed.rows and parsed.rejected_ratio > max_rejected_ratio:
        worst = max(parsed.rejected, key=parsed.rejected.__getitem__)
        raise FeedRejected(
            "too_many_rejected",
            f"{parsed.rejected_total} of {parsed.rows} rows failed validation "
            f"({parsed.rejected_ratio:.1%} > {max_rejected_ratio:.0%}); most common reason: {worst}",
            parsed,
        )
    return parsed


def load_json(body: bytes | str) -> object:
    if isinstance(body, (bytes, bytearray)) and body[:3] == b"\xef\xbb\xbf":
        body = body[3:]  # a UTF-8 byte-order mark is harmless; json.loads refuses it on bytes
    if not body or not body.strip():
        raise FeedRejected("not_json", "the feed body is empty")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        head = body[:1]
        hint = " (it looks like an HTML or XML page)" if head in (b"<", "<") else ""
        raise FeedRejected("not_json", f"the feed is not valid JSON{hint}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."


def _field(obj: dict, name: str) -> object:
    """Case-insensitive lookup of one field of a JSON object (for the document's envelope)."""
    wanted = name.lower()
    matches = [v for k, v in obj.items() if k.lower() == wanted]
    if len(matches) > 1:
        raise FeedRejected("bad_shape", f"the object has more than one {name!r} field differing only by case")
    return matches[0] if matches else _MISSING


def calls_array(doc: object) -> list:
    if not isinstance(doc, dict):
        raise FeedRejected("bad_shape", f"expected a JSON object with a Result field, got a JSON {_kind(doc)}")
    result = _field(doc, "Result")
    if not isinstance(result, dict):
        got = "no Result field" if result is _MISSING else f"Result is a JSON {_kind(result)}"
        raise FeedRejected("bad_shape", f"expected Result to be an object holding a Calls array: {got}")
    calls = _field(result, "Calls")
    if not isinstance(calls, list):
        got = "no Calls field" if calls is _MISSING else f"Calls is a JSON {_kind(calls)}"
        raise FeedRejected("bad_shape", f"expected Result.Calls to be an array: {got}")
    return calls


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _row_keys(row: dict) -> tuple[str, str, str] | None:
    """The row's spelling of CallId, ClubId and TechId, or None when a name appears twice in different cases."""
    by_lower: dict[str, str] = {}
    for key in row:
        lower = key.lower()
        if lower in ("callid", "clubid", "techid"):
            if lower in by_lower:
                return None
            by_lower[lower] = key
    return by_lower.get("callid", "CallId"), by_lower.get("clubid", "ClubId"), by_lower.get("techid", "TechId")


def _canonical_quoted_call_id(raw: str) -> int | str | None:
    if not QUOTED_CALL_ID.fullmatch(raw):
        return None
    if raw[-1].isdigit():
        return int(raw)
    return f"{int(raw[:-1])}{raw[-1]}"


def _validate_rows(calls: list, owned: frozenset[int]) -> ParsedFeed:
    by_club: dict[int, dict[str, set[int | str]]] = {club: {} for club in owned}
    rejected: dict[str, int] = {}
    examples: dict[str, list[RowExample]] = {}

    def reject(reason: str, index: int, value: object) -> None:
        # Only rejected rows come here, so the common path pays nothing for the examples.
        rejected[reason] = rejected.get(reason, 0) + 1
        kept = examples.setdefault(reason, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(_example(index, value))

    quoted = 0
    accepted = 0
    # Field names as the first object row spells them; rows that differ fall back to a per-row lookup.
    keys = next((_row_keys(r) for r in calls if type(r) is dict), None) or ("CallId", "ClubId", "TechId")
    k_call, k_club, k_tech = keys
    missing = _MISSING

    for index, row in enumerate(calls):
        if type(row) is not dict:
            reject(ROW_NOT_OBJECT, index, row)
            continue
        call = row.get(k_call, missing)
        club = row.get(k_club, missing)
        tech = row.get(k_tech, missing)
        if len(row) != 3 or call is missing or club is missing or tech is missing:
            # Slow path: other spellings, extra fields (ignored), or a field given twice in different cases.
            row_keys = _row_keys(row)
            if row_keys is None:
                reject(AMBIGUOUS_FIELD, index, sorted(row))
                continue
            call = row.get(row_keys[0], missing)
            club = row.get(row_keys[1], missing)
            tech = row.get(row_keys[2], missing)

        if type(call) is int:
            if not 0 <= call <= MAX_CALL_ID:
                reject(CALL_ID_INVALID, index, call)
                continue
        elif type(call) is str and (canonical := _canonical_quoted_call_id(call)) is not None:
            call = canonical
            quoted += 1
        else:
            reject(CALL_ID_MISSING if call is missing or call is None else CALL_ID_INVALID, index, call)
            continue

        techs = by_club.get(club) if type(club) is int else None
        if techs is None:
            if type(club) is int and 0 <= club <= MAX_CLUB_ID:
                reason = CLUB_NOT_OWNED
            else:
                reason = CLUB_ID_MISSING if club is missing or club is None else CLUB_ID_INVALID
            reject(reason, index, club)
            continue

        if type(tech) is str:
            if not (0 < len(tech) <= MAX_TECH_ID_LEN and tech.isalnum() and tech.isascii()):
                trimmed = tech.strip()
                if not (0 < len(trimmed) <= MAX_TECH_ID_LEN and trimmed.isalnum() and trimmed.isascii()):
                    reject(TECH_ID_INVALID, index, tech)
                    continue
                tech = trimmed
            tech = tech.upper()
        else:
            reject(TECH_ID_MISSING if tech is missing or tech is None else TECH_ID_INVALID, index, tech)
            continue

        accepted += 1
        bucket = techs.get(tech)
        if bucket is None:
            techs[tech] = {call}
        else:
            bucket.add(call)

    return ParsedFeed(
        by_club=by_club,
        rows=len(calls),
        accepted=accepted,
        rejected=rejected,
        warnings={QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        examples=examples,
    )
