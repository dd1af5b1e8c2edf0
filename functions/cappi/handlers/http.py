"""The query API's HTTP side of the domain's answers: one table from refusal to status and headers, JSON error
bodies, and the token claims API Gateway's JWT authorizer put in the event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response

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


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": code, "message": message})
    return Response(status, JSON, body, headers={"Cache-Control": "no-store", **(headers or {})})


def refusal(exc: rules.Refused) -> Response:
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
