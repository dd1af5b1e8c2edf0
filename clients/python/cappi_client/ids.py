"""ClubId and TechId rules, checked before any request so a typo costs no token and no round trip.

They mirror what CAPPI's query handler accepts in the path (a drift test in the CAPPI repository keeps them equal):
ClubId is 1-3 ASCII digits ("004" is club 4) or an int 0-999, nothing trimmed; TechId is 1-32 ASCII letters or
digits once surrounding spaces and tabs (no other character) are trimmed, matched
case-insensitively, so its canonical form is upper case: `" ab12 "` is `"AB12"`, as the server reads it.
"""

from __future__ import annotations

import re

from cappi_client.errors import InvalidClubId, InvalidTechId

MAX_CLUB_ID = 999
MAX_TECH_ID_LEN = 32
TECH_ID_TRIMMED = " \t"  # spaces and tabs only: any other control character refuses the TechId
_CLUB_ID = re.compile(r"[0-9]{1,3}")  # [0-9], not \d: Arabic-Indic and other Unicode digits are refused
_SHOWN = 40  # characters of a refused value quoted in the error message


def club_id(raw: int | str) -> int:
    """The ClubId as an int, or InvalidClubId: `club_id("004") == 4`, `club_id(212) == 212`."""
    if isinstance(raw, bool):  # bool is an int subclass: True would quietly be club 1
        raise InvalidClubId("invalid_club_id", "ClubId must be an int or a str, not a bool", raw)
    if isinstance(raw, int):
        if 0 <= raw <= MAX_CLUB_ID:
            return raw
        raise InvalidClubId("invalid_club_id", f"ClubId must be 0-{MAX_CLUB_ID}, got {raw}", raw)
    if isinstance(raw, str) and _CLUB_ID.fullmatch(raw):
        return int(raw)
    raise InvalidClubId("invalid_club_id", f"ClubId must be 1 to 3 digits (0-{MAX_CLUB_ID}), got {_show(raw)}", raw)


def tech_id(raw: str) -> str:
    """The canonical (upper-case) TechId, or InvalidTechId: `tech_id("ab12") == tech_id(" ab12 ") == "AB12"`."""
    tech = raw.strip(TECH_ID_TRIMMED) if isinstance(raw, str) else ""
    if 0 < len(tech) <= MAX_TECH_ID_LEN and tech.isascii() and tech.isalnum():
        return tech.upper()
    raise InvalidTechId(
        "invalid_tech_id", f"TechId must be 1 to {MAX_TECH_ID_LEN} ASCII letters or digits, got {_show(raw)}", raw
    )


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "\u2026"
