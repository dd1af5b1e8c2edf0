"""The identifier rules of DESIGN.md section 2, in one place: CallId, ClubId and TechId as a club feed gives them,
and ClubId and TechId as a request path gives them.

Each rule is a function that returns the value in its canonical form, or the Reason it breaks the rule. The feed's
reference parser, the fast path's slow branches and the query's path checks all call these; only the fast path's
test for its common row is written out inline (a property test in tests/unit/test_feed_fast_path.py holds it equal
to these functions), and the tester client keeps a copy that tests/unit/test_cappi_client_contract.py compares
with them. Free of any I/O.
"""

from __future__ import annotations

import enum
import re
from typing import Final, final

MAX_CALL_ID = 9_999_999  # at most 7 digits
MAX_CLUB_ID = 999  # at most 3 digits
MAX_TECH_ID_LEN = 32

# A quoted call ID: 1..7 digits, optionally one upper-case letter (the document's "8655R").
QUOTED_CALL_ID = re.compile(r"[0-9]{1,7}[A-Z]?")
# ClubId as it appears in a request path: 1..3 digits ("004" is club 4).
PATH_CLUB_ID = re.compile(r"[0-9]{1,3}")
# The whitespace a TechId may be surrounded by, and which is trimmed: spaces and tabs, nothing else. Every other
# control character (CR, LF, FF, VT, the separators U+001C..U+001F that str.strip() would take) refuses the TechId,
# as do U+0085, U+00A0 and the other Unicode spaces.
TECH_ID_TRIMMED = " \t"


@final  # spelt out so mypy narrows `type(x) is Reason`, which callers test (isinstance on an Enum is 6x slower)
class Reason(enum.Enum):
    """Why a value breaks its rule. Each value is the feed's row rejection code (a metric dimension: keep them)."""

    CALL_ID_MISSING = "call_id_missing"
    CALL_ID_INVALID = "call_id_invalid"
    CLUB_ID_MISSING = "club_id_missing"
    CLUB_ID_INVALID = "club_id_invalid"
    TECH_ID_MISSING = "tech_id_missing"
    TECH_ID_INVALID = "tech_id_invalid"


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


# A field the row does not give: judged as missing, as JSON null is (a feed shows the two apart in its examples).
ABSENT: Final = _Absent()


def call_id(raw: object) -> int | str | Reason:
    """A feed's CallId: a JSON integer 0..9,999,999 as itself; a quoted 1..7 digits, optionally followed by one
    upper-case letter, in canonical form (`"0012"` -> 12, `"08655R"` -> `"8655R"`); else the Reason.

    A quoted value is accepted, but the feed counts it as a conformance warning (the document asks for a number).
    """
    if type(raw) is int:  # not bool
        return raw if 0 <= raw <= MAX_CALL_ID else Reason.CALL_ID_INVALID
    if type(raw) is str and QUOTED_CALL_ID.fullmatch(raw):
        if raw[-1].isdigit():
            return int(raw)
        return f"{int(raw[:-1])}{raw[-1]}"
    return Reason.CALL_ID_MISSING if raw is None or raw is ABSENT else Reason.CALL_ID_INVALID


def club_id(raw: object) -> int | Reason:
    """A feed's ClubId: a JSON integer 0..999, else the Reason. (Whether the source may publish it is the feed's
    question, not this rule's.)"""
    if type(raw) is int and 0 <= raw <= MAX_CLUB_ID:  # not bool
        return raw
    return Reason.CLUB_ID_MISSING if raw is None or raw is ABSENT else Reason.CLUB_ID_INVALID


def tech_id(raw: object) -> str | Reason:
    """A TechId, from a feed or a request path: surrounding spaces and tabs (TECH_ID_TRIMMED) trimmed, then 1..32
    ASCII letters and digits, in canonical (upper-case) form, since matching is case-insensitive; else the Reason.
    """
    if type(raw) is str:
        tech = raw.strip(TECH_ID_TRIMMED)
        # isascii() first: O(1) in CPython; then isalnum() is exactly [A-Za-z0-9]
        if 0 < len(tech) <= MAX_TECH_ID_LEN and tech.isascii() and tech.isalnum():
            return tech.upper()
        return Reason.TECH_ID_INVALID
    return Reason.TECH_ID_MISSING if raw is None or raw is ABSENT else Reason.TECH_ID_INVALID


def path_club_id(raw: str) -> int | Reason:
    """A ClubId from a request path or a club-list claim: 1..3 ASCII digits (`"004"` is club 4), else the Reason.
    Nothing is trimmed: `" 212"` breaks the rule."""
    if PATH_CLUB_ID.fullmatch(raw):
        return int(raw)
    return Reason.CLUB_ID_INVALID


def path_tech_id(raw: str) -> str | Reason:
    """A TechId from a request path: the feed's rule (`tech_id`), so `" ab12 "` is `"AB12"` on both sides."""
    return tech_id(raw)


def call_id_sort_key(call_id: str) -> tuple[int, str]:
    """Natural order for call IDs: by number, then by the optional letter suffix."""
    if call_id[-1:].isdigit():
        return int(call_id), ""
    return int(call_id[:-1]), call_id[-1]
