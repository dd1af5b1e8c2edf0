"""The release check's rules: which request to send a new query version before it takes traffic, and which answer
lets the release go on.

CodeDeploy calls the check before it shifts any traffic to a new version of the query function. The check asks that
version one question as API Gateway would (a payload 2.0 event for GET on the route, with the claims of a token the
query accepts), for a club that has a snapshot, so the answer has to come from the table: `200` with a JSON array.
When no enabled source has published yet, it asks for a club the registry does not serve and expects the query's
`404`. Anything else (a 503 from a build that cannot read storage, a 500, an HTML page, an unhandled error, a
timeout, the right status with a body that is not JSON) stops the release.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cappi.domain.heads import Head
from cappi.domain.ids import MAX_CLUB_ID
from cappi.domain.registry import ClubRegistry

PROBE_TECH = "RELEASECHECK"  # a TechId by the rules (letters, <= 32): a real one is not needed, the shard read is
PROBE_CLIENT = "cappi-release-check"  # `azp` and `sub` of the synthetic token, and the request's user agent
ACCEPTED = frozenset({200, 404})
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Probe:
    """The one request of a check: club and tech, and the status a good build answers it with."""

    club_id: int
    tech_id: str
    expected_status: int  # 200: the club has a snapshot; 404: a club nobody serves
    why: str  # for the log line


@dataclass(frozen=True, slots=True)
class Invocation:
    """What invoking the version gave: its payload and Lambda's `FunctionError`, or why there was no answer."""

    payload: bytes = b""
    function_error: str | None = None  # "Unhandled" when the function raised, timed out or ran out of memory
    failure: str | None = None  # no answer at all: the invoke timed out or was refused


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str
    status: int | None = None  # the answer's status, when there was one


def choose_probe(registry: ClubRegistry, heads: Mapping[str, Head | None]) -> Probe:
    """A club of an enabled source whose head points at a snapshot (the first such source in registry order, its
    lowest club), else the highest club ID the registry does not serve."""
    for source in registry.enabled_sources:
        head = heads.get(source.name)
        clubs = sorted(set(head.clubs) & source.club_ids) if head is not None else []
        if clubs:
            return Probe(clubs[0], PROBE_TECH, 200, f"club {clubs[0]} of source {source.name} has a snapshot")
    served = registry.club_ids
    club = next((c for c in range(MAX_CLUB_ID, -1, -1) if c not in served), None)
    if club is None:
        raise ValueError("every club ID is served: there is no club to expect a 404 for")
    return Probe(club, PROBE_TECH, 404, f"no enabled source has a snapshot yet: club {club} is served by nobody")


def probe_claims(probe: Probe, *, scope: str, club_claim: str) -> dict[str, str]:
    """The claims API Gateway's JWT authorizer would hand the query for a token it accepted: the required scope
    and, where the stage reads a club-list claim, one listing the probed club (arrays rendered as `[a b]`)."""
    now = int(time.time())
    claims = {
        "iss": PROBE_CLIENT,
        "sub": f"{PROBE_CLIENT}@clients",
        "azp": PROBE_CLIENT,
        "scope": scope,
        "iat": str(now),
        "exp": str(now + 300),
    }
    if club_claim:
        claims[club_claim] = f"[{probe.club_id}]"
    return claims


def probe_event(
    probe: Probe,
    *,
    method: str,
    route: str,
    claims: Mapping[str, str],
    request_id: str,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """A payload 2.0 event for `method` on `route` (path parameters `{ClubId}` and `{TechId}`), as API Gateway sends
    it after its JWT authorizer let the request through."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    path = route.format(ClubId=probe.club_id, TechId=probe.tech_id)
    route_key = f"{method} {route}"
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"user-agent": PROBE_CLIENT, "accept": JSON_TYPE},
        "requestContext": {
            "accountId": "release-check",
            "apiId": "release-check",
            # On a route with authorization scopes, `scopes` is the token's whole scope list.
            "authorizer": {"jwt": {"claims": dict(claims), "scopes": claims.get("scope", "").split() or None}},
            "domainName": "release-check.invalid",
            "domainPrefix": "release-check",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": PROBE_CLIENT,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "timeEpoch": now_ms,
        },
        "pathParameters": {"ClubId": str(probe.club_id), "TechId": probe.tech_id},
        "isBase64Encoded": False,
    }


def judge(invocation: Invocation, probe: Probe) -> Verdict:
    """Whether the version's answer to `probe` lets the release go on: the status the probe expects (200 or 404),
    `Content-Type: application/json`, and a JSON body of the answer's shape (an array for 200, an object with an
    `error` for 404), with no FunctionError."""
    if invocation.failure is not None:
        return Verdict(False, f"no answer: {invocation.failure}")
    if invocation.function_error is not None:
        return Verdict(False, f"the function failed ({invocation.function_error}): {_error_text(invocation.payload)}")
    try:
        response = json.loads(invocation.payload)
    except ValueError:
        return Verdict(False, f"not a payload 2.0 response: {_excerpt(invocation.payload)}")
    if not isinstance(response, dict) or type(response.get("statusCode")) is not int:
        return Verdict(False, f"not a payload 2.0 response (no statusCode): {_excerpt(invocation.payload)}")
    status: int = response["statusCode"]
    if status not in ACCEPTED:
        return Verdict(False, f"answered {status}: {_excerpt(response.get('body'))}", status)
    if status != probe.expected_status:
        return Verdict(False, f"answered {status} where a good build answers {probe.expected_status}", status)
    content_type = _content_type(response.get("headers"))
    if content_type != JSON_TYPE:
        return Verdict(False, f"answered {status} with Content-Type {content_type or 'missing'}", status)
    body = response.get("body")
    try:
        document = json.loads(body) if isinstance(body, str) and not response.get("isBase64Encoded") else None
    except ValueError:
        document = None
    if status == 200 and not isinstance(document, list):
        return Verdict(False, f"answered 200 without a JSON array: {_excerpt(body)}", status)
    if status == 404 and not (isinstance(document, dict) and isinstance(document.get("error"), str)):
        return Verdict(False, f"answered 404 without a JSON error: {_excerpt(body)}", status)
    return Verdict(True, f"answered {status} with JSON for club {probe.club_id}", status)


def _content_type(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == "content-type"), None)
    return value.split(";")[0].strip().lower() if isinstance(value, str) else None


def _error_text(payload: bytes) -> str:
    """Lambda's error document (`errorType`, `errorMessage`) in one line, or the raw payload's start."""
    try:
        error = json.loads(payload)
    except ValueError:
        return _excerpt(payload)
    if isinstance(error, dict) and ("errorType" in error or "errorMessage" in error):
        return f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
    return _excerpt(payload)


def _excerpt(value: Any, limit: int = 200) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."
