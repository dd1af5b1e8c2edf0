"""The query side's rules (DESIGN.md section 2): read the path, authorize the client, build the answer.

Nothing here knows HTTP status codes: a refused request raises one of the `Refused` subclasses below, and the
query handler maps each class to its status and headers in one table. Claims arrive as API Gateway's HTTP API
JWT authorizer delivers them: every value a string, `scope` space-separated, arrays rendered as `[a b c]`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cappi.domain.heads import OpenCalls
from cappi.domain.ids import MAX_TECH_ID_LEN, Reason, path_club_id, path_tech_id

if TYPE_CHECKING:
    from cappi.domain.last_poll import LastPoll

_CLAIM_ITEM = re.compile(r"[\s,\[\]\"]+")
NO_POLL_YET_RETRY_S = 10  # no poll recorded, or one is due now: its list is likely seconds away
DEFAULT_POLL_INTERVAL_S = 600.0  # the stages poll every 10 minutes


class Refused(Exception):
    """A request CAPPI refuses: a stable error code and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MalformedRequest(Refused):
    """The path's ClubId or TechId breaks the rules."""


class Unauthenticated(Refused):
    """No verified token reached the function."""


class InsufficientScope(Refused):
    """The token lacks the scope the API requires."""

    def __init__(self, scope: str) -> None:
        super().__init__("insufficient_scope", f"the token lacks scope {scope}")
        self.scope = scope


class ForbiddenClub(Refused):
    """The token may not read this club (or does not say which clubs it may read, where that is required)."""


class UnknownClub(Refused):
    """No registered source serves this club."""


class NoSnapshotYet(Refused):
    """A served club whose list has not been received yet: worth retrying after `retry_after_s` seconds."""

    def __init__(self, code: str, message: str, retry_after_s: int = NO_POLL_YET_RETRY_S) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


def retry_after_s(last: LastPoll | None, now_ms: int, interval_s: float) -> int:
    """Whole seconds until a club's list is next due: its source's next poll (the last one's start plus the
    schedule's period) plus as long as the last poll took. With no poll recorded, or one due already (running
    now, or late), a short wait; never more than one period and one poll's length (a skewed clock)."""
    if last is None:
        return NO_POLL_YET_RETRY_S
    cycle_s = interval_s + last.duration_s
    remaining = math.ceil((last.fetched_at_ms + cycle_s * 1000 - now_ms) / 1000)
    if remaining <= 0:
        return NO_POLL_YET_RETRY_S
    return min(remaining, math.ceil(cycle_s))


class OpenCallsReader(Protocol):
    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None: ...

    def last_poll(self, club_id: int) -> LastPoll | None: ...


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Who may read what: the scope, the club-list claim and whether it is required, and the clubs served."""

    required_scope: str
    club_claim: str  # "" disables club-level authorization
    require_club_claim: bool
    served_clubs: frozenset[int]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the handler sends: the exact body, its validator, and what the snapshot says about freshness."""

    body: bytes
    etag: str
    fetched_at_ms: int  # when the club's list was fetched (Last-Modified)
    checked_at_ms: int | None  # when a poll last confirmed it
    version: str
    not_modified: bool  # the client's If-None-Match still matches


def parse_path(club_raw: str, tech_raw: str) -> tuple[int, str]:
    """(ClubId, canonical TechId) from the path segments by the ID rules (`cappi.domain.ids`), or MalformedRequest."""
    club_id = path_club_id(club_raw)
    if type(club_id) is Reason:
        raise MalformedRequest("invalid_club_id", "ClubId must be 1 to 3 digits (0-999)")
    tech_id = path_tech_id(tech_raw)
    if type(tech_id) is Reason:
        raise MalformedRequest("invalid_tech_id", f"TechId must be 1 to {MAX_TECH_ID_LEN} letters (A-Z, a-z) or digits")
    return club_id, tech_id


def claim_values(raw: str) -> list[str]:
    """The items of a claim as API Gateway renders it: `[212 213]`, `212`, or a comma list `212,213`."""
    return [item for item in _CLAIM_ITEM.split(raw) if item]


def has_scope(claims: Mapping[str, str], scope: str) -> bool:
    """Scope check as the JWT authorizer makes it: `scope` (space-separated) or `scp` holds the scope."""
    return any(scope in claim_values(claims.get(name, "")) for name in ("scope", "scp"))


def allowed_clubs(claims: Mapping[str, str], claim: str) -> frozenset[int] | None:
    """Club IDs a client may read from its club-list claim; None when the token carries no such claim.

    A claim that is present but not a list of club IDs allows no club at all (it fails closed): null (which the
    handler passes on as `null`), an empty string or list (a client of no club), an object, or a list with any
    item that is not a ClubId (`[212 null]`, `[212 x]`). A number is indistinguishable from its text once API
    Gateway has rendered it: `42` is club 42.
    """
    if not claim or claim not in claims:
        return None
    clubs = set()
    for item in claim_values(claims[claim]):
        club_id = path_club_id(item)
        if type(club_id) is not int:
            return frozenset()
        clubs.add(club_id)
    return frozenset(clubs)


def client_of(claims: Mapping[str, str]) -> str | None:
    return claims.get("azp") or claims.get("client_id") or claims.get("sub")


def authorize(claims: Mapping[str, str], club_id: int, policy: AccessPolicy) -> None:
    """Refuse a client that may not read `club_id`, and a club CAPPI does not serve (after authorization, so a
    client learns nothing about clubs it may not read)."""
    allowed = allowed_clubs(claims, policy.club_claim)
    if allowed is None and policy.require_club_claim:
        raise ForbiddenClub("forbidden_club", "the token does not say which clubs it may read")
    if allowed is not None and club_id not in allowed:
        raise ForbiddenClub("forbidden_club", f"this client may not read club {club_id}")
    if club_id not in policy.served_clubs:
        raise UnknownClub("unknown_club", f"CAPPI does not serve club {club_id}")


def response_body(call_ids: Sequence[str], *, nested_single: bool) -> bytes:
    """A flat JSON array of strings; with `nested_single`, one result is nested as the document's example shows."""
    payload: list[Any] = [list(call_ids)] if nested_single and len(call_ids) == 1 else list(call_ids)
    return json.dumps(payload, separators=(",", ":")).encode()


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


def _ignore(**_context: Any) -> None:
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)


def open_call_ids(
    claims: Mapping[str, str] | None,
    club_raw: str,
    tech_raw: str,
    *,
    policy: AccessPolicy,
    reader: OpenCallsReader,
    nested_single: bool = False,
    if_none_match: str | None = None,
    note: Callable[..., None] = _ignore,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    now_ms: Callable[[], int] = _now_ms,
) -> Answer:
    """The answer to one query, in the order the checks are made: token, scope, path, club access, snapshot.

    `note(**context)` hears what was learnt on the way (client, club, version), e.g. to add it to the log.
    """
    if claims is None:
        raise Unauthenticated("unauthorized", "a bearer token is required")
    note(client=client_of(claims))
    if not has_scope(claims, policy.required_scope):
        raise InsufficientScope(policy.required_scope)
    club_id, tech_id = parse_path(club_raw, tech_raw)
    note(club_id=club_id)
    authorize(claims, club_id, policy)
    found = reader.open_calls(club_id, tech_id)
    if found is None:
        wait = retry_after_s(reader.last_poll(club_id), now_ms(), poll_interval_s)
        raise NoSnapshotYet("no_snapshot_yet", f"no open-call list has been received from club {club_id} yet", wait)
    note(snapshot_version=found.version)
    body = response_body(found.call_ids, nested_single=nested_single)
    etag = etag_for(body)
    return Answer(
        body=body,
        etag=etag,
        fetched_at_ms=found.fetched_at_ms,
        checked_at_ms=found.checked_at_ms,
        version=found.version,
        not_modified=etag_matches(if_none_match, etag),
    )
