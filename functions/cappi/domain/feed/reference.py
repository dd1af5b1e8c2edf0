"""The reference parser: every feed document, of any spelling and shape, read by DESIGN.md section 2's rules.

It decodes the whole document into Python objects (`strict_json`), finds `Result.Calls` (field names matched
case-insensitively), then judges each row by the ID rules of `cappi.domain.ids` and groups the accepted ones. The
fast path (`fast`) is held to this parser's results by property tests; `parse_feed` uses this parser for every
document the fast path declines. The row loop looks the field names up once: clubs send the same spelling on every
row, and only rows that differ take the slow path.
"""

from __future__ import annotations

from cappi.domain.feed.outcome import (
    AMBIGUOUS_FIELD,
    BAD_SHAPE,
    CLUB_NOT_OWNED,
    QUOTED_CALL_ID_WARNING,
    ROW_NOT_OBJECT,
    FeedRejected,
    ParsedFeed,
    Rejections,
)
from cappi.domain.feed.strict_json import DECODER, REPEATS_DECODER, Repeated, loads, read
from cappi.domain.ids import ABSENT, Reason, call_id, club_id, tech_id

_ROW_FIELDS = frozenset({"callid", "clubid", "techid"})


def parse(body: bytes | str, owned: frozenset[int]) -> ParsedFeed:
    """The feed for a source owning the clubs `owned`; FeedRejected for a document that cannot be read as one.
    (The share of rejected rows is the caller's to judge.)"""
    text, structure = read(body)
    doc = loads(text, DECODER)
    calls = calls_array(doc)
    parsed, irregular = _validate_rows(calls, owned)
    if _may_repeat_keys(structure.count(b":"), doc, calls, irregular):
        # Rare (see there): read again, this time seeing repeated keys, which make rows or the document ambiguous.
        calls = calls_array(loads(text, REPEATS_DECODER))
        parsed, _irregular = _validate_rows(calls, owned)
    return parsed


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


def _field(obj: dict, name: str) -> object:
    """Case-insensitive lookup of one field of a JSON object (for the document's envelope)."""
    wanted = name.lower()
    matches = [v for k, v in obj.items() if k.lower() == wanted]
    if len(matches) > 1:
        raise FeedRejected(BAD_SHAPE, f"the object has more than one {name!r} field differing only by case")
    if type(obj) is Repeated and obj.repeats((wanted,)):
        raise FeedRejected(BAD_SHAPE, f"the object gives the {name!r} field more than once: it is ambiguous")
    return matches[0] if matches else ABSENT


def calls_array(doc: object) -> list:
    """The document's `Result.Calls` array, or FeedRejected (bad_shape)."""
    if not isinstance(doc, dict):
        raise FeedRejected(BAD_SHAPE, f"expected a JSON object with a Result field, got a JSON {_kind(doc)}")
    result = _field(doc, "Result")
    if not isinstance(result, dict):
        got = "no Result field" if result is ABSENT else f"Result is a JSON {_kind(result)}"
        raise FeedRejected(BAD_SHAPE, f"expected Result to be an object holding a Calls array: {got}")
    calls = _field(result, "Calls")
    if not isinstance(calls, list):
        got = "no Calls field" if calls is ABSENT else f"Calls is a JSON {_kind(calls)}"
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


def _validate_rows(calls: list, owned: frozenset[int]) -> tuple[ParsedFeed, int]:
    """The parsed feed, and how many rows were not objects of exactly the three fields (`_may_repeat_keys`)."""
    by_club: dict[int, dict[str, set[int | str]]] = {club: {} for club in owned}
    rejections = Rejections()
    reject = rejections.add

    quoted = 0
    accepted = 0
    irregular = 0
    # Field names as the first object row spells them; rows that differ fall back to a per-row lookup.
    keys = next((_row_keys(r) for r in calls if type(r) is dict), None) or ("CallId", "ClubId", "TechId")
    k_call, k_club, k_tech = keys
    absent = ABSENT

    for index, row in enumerate(calls):
        if type(row) is not dict:
            irregular += 1
            if type(row) is not Repeated:
                reject(ROW_NOT_OBJECT, index, row)
                continue
            if row.repeats(_ROW_FIELDS):
                reject(AMBIGUOUS_FIELD, index, sorted(row.names))
                continue
            # Only an ignored field was repeated: the row reads one way.
        call = row.get(k_call, absent)
        club = row.get(k_club, absent)
        tech = row.get(k_tech, absent)
        if len(row) != 3 or call is absent or club is absent or tech is absent:
            # Slow path: other spellings, extra fields (ignored), or a field given twice in different cases.
            irregular += 1
            row_keys = _row_keys(row)
            if row_keys is None:
                reject(AMBIGUOUS_FIELD, index, sorted(row))
                continue
            call = row.get(row_keys[0], absent)
            club = row.get(row_keys[1], absent)
            tech = row.get(row_keys[2], absent)

        checked_call = call_id(call)
        if type(checked_call) is Reason:
            reject(checked_call.value, index, call)
            continue
        if type(call) is str:
            quoted += 1

        checked_club = club_id(club)
        if type(checked_club) is Reason:
            reject(checked_club.value, index, club)
            continue
        techs = by_club.get(checked_club)
        if techs is None:
            reject(CLUB_NOT_OWNED, index, club)
            continue

        checked_tech = tech_id(tech)
        if type(checked_tech) is Reason:
            reject(checked_tech.value, index, tech)
            continue

        accepted += 1
        bucket = techs.get(checked_tech)
        if bucket is None:
            techs[checked_tech] = {checked_call}
        else:
            bucket.add(checked_call)

    parsed = ParsedFeed(
        by_club=by_club,
        rows=len(calls),
        accepted=accepted,
        rejected=rejections.counts,
        warnings={QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        examples=rejections.examples,
    )
    return parsed, irregular
