"""Identifier rules shared by the club feed and the query API (DESIGN.md section 2).

Kept free of any I/O so the ingest parser and the query handler agree to the letter.
"""

from __future__ import annotations

import re

MAX_CALL_ID = 9_999_999  # at most 7 digits
MAX_CLUB_ID = 999  # at most 3 digits
MAX_TECH_ID_LEN = 32

# A quoted call ID: 1..7 digits, optionally one upper-case letter (the document's "8655R").
QUOTED_CALL_ID = re.compile(r"[0-9]{1,7}[A-Z]?")
# ClubId as it appears in a request path: 1..3 digits ("004" is club 4).
PATH_CLUB_ID = re.compile(r"[0-9]{1,3}")


def normalize_tech_id(raw: object) -> str | None:
    """Return the canonical (upper-case) form of a TechId, or None when it breaks the rules.

    ASCII letters and digits only, 1..32 characters after trimming surrounding whitespace.
    Matching is case-insensitive, so the canonical form is upper case.
    """
    if type(raw) is not str:
        return None
    tech = raw.strip()
    if 0 < len(tech) <= MAX_TECH_ID_LEN and tech.isascii() and tech.isalnum():
        return tech.upper()
    return None


def parse_path_club_id(raw: str) -> int | None:
    """ClubId from a request path: 1..3 ASCII digits, else None."""
    if PATH_CLUB_ID.fullmatch(raw):
        return int(raw)
    return None


def call_id_sort_key(call_id: str) -> tuple[int, str]:
    """Natural order for call IDs: by number, then by the optional letter suffix."""
    if call_id[-1:].isdigit():
        return int(call_id), ""
    return int(call_id[:-1]), call_id[-1]
