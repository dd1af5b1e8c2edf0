"""The query API's HTTP side of the domain's answers: one table from refusal to status and headers, JSON error
bodies, an answer's validators and caching headers, what the handler reads from the payload 2.0 event (method,
request ID, headers, the token claims API Gateway's JWT authorizer put there), and the payload 2.0 response itself.

No Powertools event handler: the function serves one route that API Gateway has already matched, and importing
`aws_lambda_powertools.event_handler` (every resolver it has, asyncio included) cost about a third of the cold
start. The response is the shape API Gateway reads from a payload 2.0 function."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from email.utils import formatdate  # boto3 imports email.utils already: no extra cold start
from functools import lru_cache
from typing import Any

from cappi.domain import query as rules

JSON = "application/json"
STATUS: dict[type[rules.Refused], int] = {
    rules.MalformedRequest: 400,
    rules.Unauthenticated: 401,
    rules.InsufficientScope: 403,
    rules.ForbiddenClub: 403,
    rules.UnknownClub: 404,
    rules.NoSnapshotYet: 503,
}


def response(status: int, body: str, headers: dict[str, str]) -> dict[str, Any]:
    """A payload 2.0 response: API Gateway sends `body` as is (text, never base64) with `headers`."""
    return {"statusCode": status, "body": body, "isBase64Encoded": False, "headers": headers, "cookies": []}


def answered(answer: rules.Answer, cache_control: str) -> dict[str, Any]:
    """The list (200), or 304 when the client's copy still matches: with its ETag and Last-Modified either way."""
    headers = {"ETag": answer.etag, "Last-Modified": _http_date(answer.fetched_at_ms), "Cache-Control": cache_control}
    if answer.not_modified:
        return response(304, "", headers)
    return response(200, answer.body.decode(), {"Content-Type": JSON, **headers})


@lru_cache(maxsize=512)  # one per published version a container serves: formatting it per request costs more
def _http_date(epoch_ms: int) -> str:
    return formatdate(epoch_ms / 1000, usegmt=True)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = json.dumps({"error": code, "message": message})
    return response(status, body, {"Content-Type": JSON, "Cache-Control": "no-store", **(headers or {})})


def refusal(exc: rules.Refused) -> dict[str, Any]:
    headers = {}
    if isinstance(exc, rules.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="cappi"'
    elif isinstance(exc, rules.InsufficientScope):
        headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope" scope="{exc.scope}"'
    elif isinstance(exc, rules.NoSnapshotYet):
        headers["Retry-After"] = str(exc.retry_after_s)
    return error(STATUS[type(exc)], exc.code, exc.message, headers)


def claims_of(event: Mapping[str, Any], keep_null: str = "") -> dict[str, str] | None:
    """The verified token's claims as strings, or None when no JWT authorizer vouched for the request.

    `event` is the payload 2.0 event as Lambda received it (read directly: Powertools' views build objects).
    API Gateway leaves a null-valued claim out, so it looks absent; `keep_null` names a claim for which that
    difference matters (the club list: absent may be allowed, present but null must fail closed): when the bearer
    token itself holds it as null, it is returned as the text `null`."""
    request = event.get("requestContext")
    authorizer = request.get("authorizer") if isinstance(request, dict) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    if not isinstance(claims, dict):
        return None
    strings = {str(k): str(v) for k, v in claims.items()}
    if keep_null and keep_null not in strings and _null_in_token(event, keep_null):
        strings[keep_null] = "null"
    return strings


MAX_TOKEN_PAYLOAD = 16_384  # API Gateway refuses a request head over 10 KB: a verified token's payload is smaller
# A tester app sends one token for hours, so a warm container decodes each payload once, not on every request (the
# decode is about 6 us, a third of a warm answer). Bounded: cleared whole when it fills.
_NULL_CLAIMS: dict[tuple[str, str], bool] = {}
NULL_CLAIMS_CACHED = 1024


def _null_in_token(event: Mapping[str, Any], name: str) -> bool:
    """Whether the bearer token in the Authorization header holds claim `name` as JSON null.

    The token was verified by the JWT authorizer before the event was built, so its payload is read without a
    signature check; anything unreadable (a hand-made test event's placeholder token) says nothing."""
    value = header(event, "authorization") or ""
    key = (value, name)
    found = _NULL_CLAIMS.get(key)
    if found is None:
        found = any(_payload_holds_null(segment, name) for segment in _payload_segments(value))
        if len(_NULL_CLAIMS) >= NULL_CLAIMS_CACHED:
            _NULL_CLAIMS.clear()
        _NULL_CLAIMS[key] = found
    return found


def _payload_segments(value: str) -> list[str]:
    segments = []
    for token in value.split(","):  # repeated headers arrive joined with commas; a JWT holds none
        parts = token.strip().removeprefix("Bearer ").strip().split(".")
        if len(parts) == 3 and len(parts[1]) <= MAX_TOKEN_PAYLOAD:
            segments.append(parts[1])
    return segments


def _payload_holds_null(segment: str, name: str) -> bool:
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    return isinstance(payload, dict) and name in payload and payload[name] is None


def method(event: Mapping[str, Any]) -> str | None:
    request = event.get("requestContext")
    http_context = request.get("http") if isinstance(request, dict) else None
    return http_context.get("method") if isinstance(http_context, dict) else None


def request_id(event: Any) -> str | None:
    """API Gateway's ID of the request (the `apigw-requestid` response header), from any event."""
    request = event.get("requestContext") if isinstance(event, dict) else None
    return request.get("requestId") if isinstance(request, dict) else None


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header by its lower-case name, as payload 2.0 names them (repeats joined with commas); another
    casing (a hand-made test event) is found too."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    return value if isinstance(value, str) else None
