"""Rules of the query API (DESIGN.md section 2) that do not depend on HTTP plumbing or storage.

Claims arrive as API Gateway's HTTP API JWT authorizer delivers them: every value a string, `scope`
space-separated, arrays rendered as `[a b c]`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence

from cappi.domain.ids import MAX_TECH_ID_LEN, parse_path_club_id

_CLAIM_ITEM = re.compile(r"[\s,\[\]\"]+")


class QueryError(Exception):
    """A request CAPPI refuses: HTTP status, stable error code, human message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def parse_path(club_raw: str, tech_raw: str) -> tuple[int, str]:
    """(ClubId, canonical TechId) from the path segments, or QueryError(400)."""
    club_id = parse_path_club_id(club_raw)
    if club_id is None:
        raise QueryError(400, "invalid_club_id", "ClubId must be 1 to 3 digits (0-999)")
    if not (0 < len(tech_raw) <= MAX_TECH_ID_LEN and tech_raw.isascii() and tech_raw.isalnum()):
        raise QueryError(400, "invalid_tech_id", f"TechId must be 1 to {MAX_TECH_ID_LEN} letters (A-Z, a-z) or digits")
    return club_id, tech_raw.upper()


def claim_values(raw: str) -> list[str]:
    """The items of a claim as API Gateway renders it: `[212 213]`, `212`, or a comma list `212,213`."""
    return [item for item in _CLAIM_ITEM.split(raw) if item]


def has_scope(claims: Mapping[str, str], scope: str) -> bool:
    """Scope check as the JWT authorizer makes it: `scope` (space-separated) or `scp` holds the scope."""
    return any(scope in claim_values(claims.get(name, "")) for name in ("scope", "scp"))


def allowed_clubs(claims: Mapping[str, str], claim: str) -> frozenset[int] | None:
    """Club IDs a client may read from its club-list claim; None when the token carries no such claim.

    A claim that is present but holds nothing usable allows no club at all (it fails closed).
    """
    if not claim or claim not in claims:
        return None
    clubs = set()
    for item in claim_values(claims[claim]):
        club_id = parse_path_club_id(item)
        if club_id is not None:
            clubs.add(club_id)
    return frozenset(clubs)


def client_of(claims: Mapping[str, str]) -> str | None:
    return claims.get("azp") or claims.get("client_id") or claims.get("sub")


def response_body(call_ids: Sequence[str], *, nested_single: bool) -> bytes:
    """A flat JSON array of strings; with `nested_single`, one result is nested as the document's example shows."""
    payload: list = [list(call_ids)] if nested_single and len(call_ids) == 1 else list(call_ids)
    return json.dumps(payload, separators=(",", ":")).encode()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(epoch_s: float) -> str:
    """RFC 9110 IMF-fixdate. Written out because email.utils costs ~20 ms of Lambda cold start for this one call."""
    t = time.gmtime(epoch_s)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def etag_for(body: bytes) -> str:
    """A strong validator of the exact body: a tech whose calls did not change keeps its ETag across snapshots."""
    return '"' + hashlib.blake2s(body, digest_size=12).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match comparison (weak, as RFC 9110 asks for this header). Junk never matches."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False
