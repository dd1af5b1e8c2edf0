"""Parse and validate one club feed document: `{"Result": {"Calls": [{CallId, ClubId, TechId}, ...]}}`.

The rules are DESIGN.md section 2. A row that breaks them is dropped and counted by reason; a document that is not
of the documented shape, or whose rejected rows exceed the tolerated share, is rejected whole (FeedRejected), so a
broken feed can never replace a good snapshot.

This is the hot path of ingest (100,000+ rows). A feed of exactly the documented shape is read by the fast path
(`feed_fast`: msgspec's typed decoding, held to this module's results by property tests); this module's parser is
the reference, and reads every other document. Its row loop avoids per-row function calls and looks up the field
names once: clubs send the same spelling on every row, and only rows that differ take the slow path.

Decoding is strict where Python's `json` is lenient, because whatever it lets through ends up in the snapshot or the
ingest Lambda's stack: UTF-8 only, no NaN/Infinity (RFC 8259 has no such numbers), nesting bounded by MAX_DEPTH
(checked on the bytes before `json` recurses, see `_nesting_exceeds`), and duplicate keys seen rather than silently
resolved to the last value (see `_may_repeat_keys`). Every decoding failure is a whole-document FeedRejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from cappi.domain.ids import MAX_CALL_ID, MAX_CLUB_ID, MAX_TECH_ID_LEN, QUOTED_CALL_ID
from cappi.domain.row_example import RowExample  # re-exported: part of what parse_feed returns

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

_MISSING = object()
_ROW_FIELDS = frozenset({"callid", "clubid", "techid"})


class FeedRejected(Exception):
    """The whole document is unusable. `code` is stable (metrics, results); the message is for people."""

    def __init__(self, code: str, message: str, parsed: ParsedFeed | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.parsed = parsed


def _example(index: int, value: object) -> RowExample:
    if value is _MISSING:
        return RowExample(index, "(missing)")
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        if not text.isascii():
            text.encode()  # a lone surrogate ("\ud800" in the feed) cannot be stored, logged or printed as UTF-8
    except UnicodeEncodeError:
        text = json.dumps(value, sort_keys=True)  # escaped: ASCII whatever the feed held
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return RowExample(index, text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "...")


class _Rejections:
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
            kept.append(_example(index, value))


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
    """Parse, validate and group a feed for a source that owns `club_ids`. Raises FeedRejected, and nothing else.

    A feed of exactly the documented shape takes the fast path (`feed_fast`, msgspec's typed decoding, imported at
    the first feed so the functions that never parse one do not load it). Any other document (extra fields, mixed
    spellings, bad rows of other types, anything that is not strict JSON) is read by the reference parser below,
    which also gives every whole-document rejection but `too_many_rejected` its code and message.
    """
    owned = frozenset(club_ids)
    parsed = None
    if _use_fast_path:
        from cappi.domain import feed_fast

        parsed = feed_fast.parse(body, owned)
    if parsed is None:
        parsed = _parse_reference(body, owned)
    return _tolerated(parsed, max_rejected_ratio)


def parse_feed_reference(
    body: bytes | str,
    club_ids: Iterable[int],
    *,
    max_rejected_ratio: float = MAX_REJECTED_RATIO,
) -> ParsedFeed:
    """`parse_feed` by the reference parser alone: what the fast path is held to (tests, `bench/ingest.py`)."""
    return _tolerated(_parse_reference(body, frozenset(club_ids)), max_rejected_ratio)


# Tests turn this off to run the reference on every document; the fast path answers for itself otherwise.
_use_fast_path = True


def _parse_reference(body: bytes | str, owned: frozenset[int]) -> ParsedFeed:
    text, structure = _read(body)
    doc = _loads(text, _DECODER)
    calls = calls_array(doc)
    parsed, irregular = _validate_rows(calls, owned)
    if _may_repeat_keys(structure.count(b":"), doc, calls, irregular):
        # Rare (see there): read again, this time seeing repeated keys, which make rows or the document ambiguous.
        calls = calls_array(_loads(text, _REPEATS_DECODER))
        parsed, _irregular = _validate_rows(calls, owned)
    return parsed


def _tolerated(parsed: ParsedFeed, max_rejected_ratio: float) -> ParsedFeed:
    """`parsed`, unless more than `max_rejected_ratio` of its rows were rejected (FeedRejected, with the rows)."""
    if parsed.rows and parsed.rejected_ratio > max_rejected_ratio:
        worst = max(parsed.rejected, key=parsed.rejected.__getitem__)
        raise FeedRejected(
            TOO_MANY_REJECTED,
            f"{parsed.rejected_total} of {parsed.rows} rows failed validation "
            f"({parsed.rejected_ratio:.1%} > {max_rejected_ratio:.0%}); most common reason: {worst}",
            parsed,
        )
    return parsed


def load_json(body: bytes | str) -> object:
    """The document as Python values, decoded as strictly as `parse_feed` does (repeated keys: the last wins)."""
    text, _structure = _read(body)
    return _loads(text, _DECODER)


# Bytes that carry a document's structure: string quotes, brackets and name separators. Everything else is dropped
# by one C-speed `bytes.translate` before the nesting check.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}:')
_ONE_BRACKET_KIND = bytes.maketrans(b"{}", b"[]")
_STRING = re.compile(rb'"[^"]*"')


def _read(body: bytes | str) -> tuple[str, bytes]:
    """The body as text, and its structural bytes (quotes, brackets and colons, escapes taken out).

    Refuses what is not UTF-8 (RFC 8259 section 8.1: `json.loads` would also guess UTF-16 and UTF-32, and let
    encoded surrogates through) and what nests deeper than MAX_DEPTH, before `json` recurses into it.
    """
    if isinstance(body, str):
        text = body.removeprefix("\ufeff")
        raw = text.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(body).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is harmless
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            raise FeedRejected(NOT_JSON, f"the feed is not UTF-8 text{hint}: {_short(exc)}") from None
    if not text.strip(" \t\r\n"):
        raise FeedRejected(NOT_JSON, "the feed body is empty")
    if b"\\" in raw:
        # Inside strings `\\` and `\"` are the only escapes holding a quote or a backslash; outside strings a
        # backslash is a syntax error `json` stops at, so what it reaches is still read right.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE)
    if _nesting_exceeds(_brackets_outside_strings(structure), MAX_DEPTH):
        raise FeedRejected(TOO_DEEP, f"the feed nests arrays or objects more than {MAX_DEPTH} deep")
    return text, structure


def _brackets_outside_strings(structure: bytes) -> bytes:
    """The brackets of `structure` that are not inside a string, all as `[` and `]` (the kind does not matter
    for depth; `json` reports a mismatch itself)."""
    quotes_and_brackets = structure.translate(None, b":")
    # With no bracket in any string, quotes come in adjacent pairs (`""` for each string), and only then: at the
    # first bracket inside a string, the run of quotes before it starts and ends with an opening quote.
    if quotes_and_brackets.count(b'""') * 2 != quotes_and_brackets.count(b'"'):
        quotes_and_brackets = _STRING.sub(b"", quotes_and_brackets).partition(b'"')[0]  # unterminated: to the end
    return quotes_and_brackets.translate(_ONE_BRACKET_KIND, b'"')


def _nesting_exceeds(brackets: bytes, limit: int) -> bool:
    """Whether `brackets` (only `[` and `]`) nest deeper than `limit`, or would take `json` deeper before it
    fails on them.

    Each `replace` takes out the innermost level everywhere at C speed (a feed's 100,000 rows go in the first),
    so the loop runs at most `limit + 1` times, however long or deep the input.
    """
    for level in range(limit + 1):
        if not brackets:
            return False
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            # Unmatched brackets (`]]..[[`, a truncated or broken body): `json` descends at most into the levels
            # taken out so far plus the unclosed `[`, then fails; not too deep if that stays within the limit.
            return level + brackets.count(b"[") > limit
        brackets = inner_removed
    return True


class _NotJsonNumber(ValueError):
    """NaN, Infinity or -Infinity: Python's `json` accepts them, RFC 8259 section 6 does not."""


def _refuse_constant(name: str) -> object:
    raise _NotJsonNumber(f"{name} is not a JSON number (RFC 8259)")


class _Repeated(dict):
    """A JSON object that gave a key more than once. `json` keeps the last value; `names` keeps every key as the
    text gave them, so the row or the document can be rejected as ambiguous instead of read one arbitrary way."""

    __slots__ = ("names",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.names = [name for name, _value in pairs]

    def repeats(self, lowered: Collection[str]) -> bool:
        """Whether a name of `lowered` (lower case) is given twice, exactly or in another casing."""
        given = [name.lower() for name in self.names if name.lower() in lowered]
        return len(given) != len(set(given))


def _keep_repeats(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _Repeated(pairs)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# About 40% slower than _DECODER (a Python call per object): used only when repeated keys are possible.
_REPEATS_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_keep_repeats)


def _loads(text: str, decoder: json.JSONDecoder) -> object:
    try:
        return decoder.decode(text)
    except _NotJsonNumber as exc:
        raise FeedRejected(NOT_JSON, f"the feed is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if text[:1] == "<":
            hint = " (it looks like an HTML or XML page)"
        elif "\x00" in text[:4]:
            hint = " (it looks like UTF-16 or UTF-32; CAPPI reads UTF-8)"
        raise FeedRejected(NOT_JSON, f"the feed is not valid JSON{hint}: {_short(exc)}") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits (4300)
        raise FeedRejected(NOT_JSON, f"the feed holds a number too long to read: {_short(exc)}") from None
    except RecursionError:  # not expected past the nesting check; kept so no decoding failure escapes
        raise FeedRejected(TOO_DEEP, "the feed nests arrays or objects too deep to read") from None


def _may_repeat_keys(colons: int, doc: object, calls: list, irregular: int) -> bool:
    """Whether an object of the document may give a key twice, which `json` resolves silently to the last value.

    Each member of an object has exactly one `:` outside strings, so `colons` (every `:` of the text) is at least
    the members the text writes, which is at least the keys of the envelope and row objects once parsed. When it
    equals them, no object repeated a key: the common case, decided without a Python call per row when every row
    is a 3-field object (`irregular` counts those that are not). Otherwise (a repeat, a `:` inside a string,
    objects nested in rows) the caller parses again, watching for repeats.
    """
    assert isinstance(doc, dict)  # calls_array has checked the envelope
    result = _field(doc, "Result")
    keys = len(doc) + (len(result) if isinstance(result, dict) else 0)
    if irregular:
        keys += sum(len(row) for row in calls if type(row) is dict)
    else:
        keys += 3 * len(calls)
    return colons != keys


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."


def _field(obj: dict, name: str) -> object:
    """Case-insensitive lookup of one field of a JSON object (for the document's envelope)."""
    wanted = name.lower()
    matches = [v for k, v in obj.items() if k.lower() == wanted]
    if len(matches) > 1:
        raise FeedRejected(BAD_SHAPE, f"the object has more than one {name!r} field differing only by case")
    if type(obj) is _Repeated and obj.repeats((wanted,)):
        raise FeedRejected(BAD_SHAPE, f"the object gives the {name!r} field more than once: it is ambiguous")
    return matches[0] if matches else _MISSING


def calls_array(doc: object) -> list:
    if not isinstance(doc, dict):
        raise FeedRejected(BAD_SHAPE, f"expected a JSON object with a Result field, got a JSON {_kind(doc)}")
    result = _field(doc, "Result")
    if not isinstance(result, dict):
        got = "no Result field" if result is _MISSING else f"Result is a JSON {_kind(result)}"
        raise FeedRejected(BAD_SHAPE, f"expected Result to be an object holding a Calls array: {got}")
    calls = _field(result, "Calls")
    if not isinstance(calls, list):
        got = "no Calls field" if calls is _MISSING else f"Calls is a JSON {_kind(calls)}"
        raise FeedRejected(BAD_SHAPE, f"expected Result.Calls to be an array: {got}")
    return calls


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    return {list: "array", str: "string", int: "number", float: "number", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _row_keys(row: dict) -> tuple[str, str, str] | None:
    """The row's spelling of CallId, ClubId and TechId, or None when a name appears twice in different cases."""
    by_lower: dict[str, str] = {}
    for key in row:
        lower = key.lower()
        if lower in _ROW_FIELDS:
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


def _validate_rows(calls: list, owned: frozenset[int]) -> tuple[ParsedFeed, int]:
    """The parsed feed, and how many rows were not objects of exactly the three fields (`_may_repeat_keys`)."""
    by_club: dict[int, dict[str, set[int | str]]] = {club: {} for club in owned}
    rejections = _Rejections()
    reject = rejections.add

    quoted = 0
    accepted = 0
    irregular = 0
    # Field names as the first object row spells them; rows that differ fall back to a per-row lookup.
    keys = next((_row_keys(r) for r in calls if type(r) is dict), None) or ("CallId", "ClubId", "TechId")
    k_call, k_club, k_tech = keys
    missing = _MISSING

    for index, row in enumerate(calls):
        if type(row) is not dict:
            irregular += 1
            if type(row) is not _Repeated:
                reject(ROW_NOT_OBJECT, index, row)
                continue
            if row.repeats(_ROW_FIELDS):
                reject(AMBIGUOUS_FIELD, index, sorted(row.names))
                continue
            # Only an ignored field was repeated: the row reads one way.
        call = row.get(k_call, missing)
        club = row.get(k_club, missing)
        tech = row.get(k_tech, missing)
        if len(row) != 3 or call is missing or club is missing or tech is missing:
            # Slow path: other spellings, extra fields (ignored), or a field given twice in different cases.
            irregular += 1
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

    parsed = ParsedFeed(
        by_club=by_club,
        rows=len(calls),
        accepted=accepted,
        rejected=rejections.counts,
        warnings={QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        examples=rejections.examples,
    )
    return parsed, irregular
