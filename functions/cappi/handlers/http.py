"""The query API's HTTP side of the domain's answers: one table from refusal to status and headers, JSON error
bodies, the token claims API Gateway's JWT authorizer put in the event, and the payload 2.0 response itself.

No Powertools event handler: the function serves one route that API Gateway has already matched, and importing
`aws_lambda_powertools.event_handler` (every resolver it has, asyncio included) cost about a third of the cold
start. The response is the shape API Gateway reads from a payload 2.0 function."""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def claims_of(event: Mapping[str, Any]) -> dict[str, str] | None:
    """The verified token's claims as strings, or None when no JWT authorizer vouched for the request.

    `event` is the payload 2.0 event as Lambda received it (read directly: Powertools' views build objects)."""
    request = event.get("requestContext")
    authorizer = request.get("authorizer") if isinstance(request, dict) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    return {str(k): str(v) for k, v in claims.items()} if isinstance(claims, dict) else None
