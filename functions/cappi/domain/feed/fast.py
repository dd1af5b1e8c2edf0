"""The fast path of `parse_feed`: msgspec's typed decoding of a feed of exactly the documented shape, or nothing.

The reference parser (`reference`) decodes the whole document into Python objects, then walks every row
as a dict; on 100,000 rows that is 2 to 3 times `json.loads`. Here msgspec decodes the same bytes straight into
small row objects of the three fields, and one loop validates and groups them by the same rules, in the same order.

It only takes documents it is sure to read exactly as the reference does, and answers None for everything else, so
the caller falls back to the reference, which then accepts, rejects or reports exactly as before:
- the envelope is one `Result` member holding one `Calls` member, and every row an object of exactly the three
  fields, each once, each a JSON integer, string or null. The spellings (any casing) are those the document's first
  keys use (`_spellings`); a row spelled otherwise, an extra or repeated member anywhere, a missing field, a row
  that is not an object, a float, a boolean or a nested value: msgspec refuses it (or the member count below does)
  and the document goes to the reference;
- repeated or unread members are caught without a per-row check: every member of every object has exactly one
  `:` outside strings, and msgspec fills only the members it reads, so the document's `:` count equals the members
  read (2 + 3 per row) exactly when no object holds any other member (a `:` inside a string only adds to the count,
  which then sends the document to the reference);
- every way the document is not strict JSON (not UTF-8, NaN/Infinity, a number of more than 4,300 digits, a lone
  surrogate escape, control characters, trailing data, an empty body) is a msgspec error, hence the reference and
  its rejection code and message; the nesting is 4 deep by construction, so the reference's depth check has nothing
  to find here.

tests/unit/test_feed_fast_path.py checks on generated feeds that both paths give equal results and rejections.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from cappi.domain.feed.outcome import CLUB_NOT_OWNED, QUOTED_CALL_ID_WARNING, ParsedFeed, Rejections
from cappi.domain.ids import MAX_CALL_ID, Reason, call_id, club_id, tech_id

# The canonical spellings, for a name the document never gives (then it has no rows, or msgspec refuses it).
_NAMES = ("Result", "Calls", "CallId", "ClubId", "TechId")
# The first member name of each kind, in any casing: a quoted name followed by a `:` can only be a key.
_FIRST_KEY = tuple(re.compile(rb'"(' + name.encode() + rb')"[ \t\r\n]*:', re.IGNORECASE) for name in _NAMES)
_MEMBERS_PER_ROW = 3
_ENVELOPE_MEMBERS = 2  # Result, and Calls inside it
_BOM = b"\xef\xbb\xbf"


def parse(body: bytes | str, owned: frozenset[int]) -> ParsedFeed | None:
    """The feed as the reference would parse it, or None when this path cannot be sure of reading it the same way."""
    raw = _utf8(body)
    if raw is None:
        return None
    decoder = _decoder(_spellings(raw))
    # The rows and the sets built from them hold no reference cycles: the cycle collector, which would otherwise
    # run dozens of times over a large feed's new objects, is paused for the decode and the loop (about 5%).
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            rows: Sequence[Any] = decoder.decode(raw).result.calls
        except (msgspec.DecodeError, RecursionError):
            return None
        if raw.count(b":") != _ENVELOPE_MEMBERS + _MEMBERS_PER_ROW * len(rows):
            return None  # some object has a member not read: repeated, unknown, or a `:` inside a string
        return _validate(rows, owned)
    finally:
        if collecting:
            gc.enable()


def _utf8(body: bytes | str) -> bytes | None:
    """The body as UTF-8 bytes without a byte-order mark, or None when it is not valid UTF-8 (the reference says why).

    msgspec checks UTF-8 itself; Python's decoder is the reference's rule, so non-ASCII bodies are held to it too.
    """
    if isinstance(body, str):
        try:
            return body.removeprefix("\ufeff").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in the text
            return None
    raw = bytes(body).removeprefix(_BOM)
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return raw


def _spellings(raw: bytes) -> tuple[str, ...]:
    """How the document spells Result, Calls, CallId, ClubId and TechId: as their first keys do (one regex search
    each, which stops near the start of the document)."""
    found = []
    for pattern, canonical in zip(_FIRST_KEY, _NAMES, strict=True):
        match = pattern.search(raw)
        found.append(match.group(1).decode("ascii") if match else canonical)
    return tuple(found)


@functools.lru_cache(maxsize=16)
def _decoder(spellings: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """A decoder for the documented shape with these spellings (a club sends the same ones on every poll).

    Every field is required and no other member is allowed, so msgspec stops at the first row the loop could not
    read as the reference does. Rows hold only scalars, so they need no tracking by the garbage collector.
    """
    result, calls, call_id, club_id, tech_id = spellings
    scalar = int | str | None
    row = msgspec.defstruct(
        "Row",
        [("call", scalar), ("club", scalar), ("tech", scalar)],
        rename={"call": call_id, "club": club_id, "tech": tech_id},
        forbid_unknown_fields=True,
        gc=False,
    )
    rows: Any = list[row]  # type: ignore[valid-type]  # a type made at run time
    calls_holder = msgspec.defstruct("Result", [("calls", rows)], rename={"calls": calls}, forbid_unknown_fields=True)
    document = msgspec.defstruct(
        "Document", [("result", calls_holder)], rename={"result": result}, forbid_unknown_fields=True
    )
    return msgspec.json.Decoder(document)


def _validate(rows: Sequence[Any], owned: frozenset[int]) -> ParsedFeed:
    """The reference's row rules (`reference._validate_rows`), in its order, for rows of exactly the three fields.

    Kept apart from the reference's loop, which reads dicts of any spelling and any number of fields; the property
    tests hold the two to the same results. The loop's first test takes the common row whole (a numeric CallId in
    range, an owned club, a TechId as written seen before) with nothing but its lookups: the one place a rule is
    written out rather than called, held equal to `cappi.domain.ids` by a property test. Every other row meets the
    rules in the reference's order, each rule called once (the TechId's once per club and TechId as written).

    One dict per club maps each TechId as the feed writes it ("ab12", " AB12") and each canonical TechId ("AB12")
    to the set of its calls: a tech's later rows skip the TechId rule, and a TechId written in canonical form (the
    common case) costs one entry, not two. The spellings that are not canonical are removed at the end, which
    leaves the groups by canonical TechId. At 1,000,000 rows and 250,000 techs this table outgrows the CPU caches,
    so every entry and lookup saved counts.
    """
    by_club: dict[int, dict[str, set[int | str]]] = {club: {} for club in owned}
    spellings: list[tuple[int, str]] = []  # (club, TechId as written) of the entries that are not canonical
    rejections = Rejections()
    reject = rejections.add

    quoted = 0
    highest = MAX_CALL_ID
    buckets_of = by_club.get
    for index, row in enumerate(rows):
        call = row.call
        if type(call) is int and 0 <= call <= highest:
            # The common row test. msgspec hands over only ints, strings and nulls, so: an int CallId in range is
            # one `ids.call_id` accepts as it is; the club keys are the owned club IDs (ints that `ids.club_id`
            # accepts); the keys below them are TechIds as written that `ids.tech_id` has accepted before (and
            # canonical ones, which it accepts as they are).
            buckets = buckets_of(row.club)  # the keys are ints: a string or null finds nothing
            if buckets is not None:
                bucket = buckets.get(row.tech)  # the keys are strings: null or a number finds nothing
                if bucket is not None:
                    bucket.add(call)
                    continue
        else:
            checked_call = call_id(call)
            if type(checked_call) is Reason:
                reject(checked_call.value, index, call)
                continue
            call = checked_call
            quoted += 1  # valid, and not an int: quoted
            buckets = buckets_of(row.club)

        if buckets is None:  # not an owned club: which rule the ClubId breaks, if any
            club = row.club
            checked_club = club_id(club)
            reject(checked_club.value if type(checked_club) is Reason else CLUB_NOT_OWNED, index, club)
            continue

        tech = row.tech
        bucket = buckets.get(tech)
        if bucket is None:  # the first row of this club with this TechId as written (a tech has a few calls)
            checked_tech = tech_id(tech)
            if type(checked_tech) is Reason:
                reject(checked_tech.value, index, tech)
                continue
            if checked_tech == tech:
                # Keyed by the canonical copy (`tech_id` makes a new string): the keys then lie together in memory,
                # where the feed's own strings lie among a million rows, and the lookups that compare them miss less.
                bucket = buckets[checked_tech] = set()
            else:
                bucket = buckets.get(checked_tech)
                if bucket is None:
                    bucket = buckets[checked_tech] = set()
                buckets[tech] = bucket
                spellings.append((row.club, tech))
        bucket.add(call)
    for club, tech in spellings:
        del by_club[club][tech]
    accepted = len(rows) - sum(rejections.counts.values())

    return ParsedFeed(
        by_club=by_club,
        rows=len(rows),
        accepted=accepted,
        rejected=rejections.counts,
        warnings={QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        examples=rejections.examples,
    )
