"""Query Lambda: GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids -> the call IDs open for that technician.

Behind API Gateway's HTTP API (payload 2.0) with a JWT authorizer. Thin: it checks the token's scope and club
claim (defence in depth: a route misconfigured without scopes still refuses), validates the path, and reads the
current snapshot through a cache that serves repeated queries without a DynamoDB request.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from cappi.adapters.snapshot_store import CachedSnapshotReader, DynamoSnapshotStore, SnapshotStoreError
from cappi.domain import query_rules as rules
from cappi.domain.query_rules import QueryError
from cappi.domain.registry import load_registry
from cappi.observability import logger, metrics
from cappi.settings import QuerySettings

ROUTE = "/api/CallData/OpenCalls/<ClubId>/<TechId>/ids"
# API Gateway hands the Lambda any single path segment for {ClubId} and {TechId}; Powertools' own route pattern
# is narrower (it refuses quotes, for one), so such requests are recognised here and get a 400, not a 404.
_ROUTE_SHAPE = re.compile(r"/api/CallData/OpenCalls/([^/]+)/([^/]+)/ids")
JSON = "application/json"


@dataclass(slots=True)
class _Wiring:
    settings: QuerySettings
    reader: CachedSnapshotReader
    served_clubs: frozenset[int]


_wiring: _Wiring | None = None
app = APIGatewayHttpResolver()


def _wire() -> _Wiring:
    global _wiring  # noqa: PLW0603 - built once per container, at first use
    if _wiring is None:
        settings = QuerySettings.from_env()
        registry = load_registry(settings.clubs_file)
        store = DynamoSnapshotStore(
            boto3.client("dynamodb"), settings.table_name, sources_by_club=registry.sources_by_club
        )
        _wiring = _Wiring(
            settings, CachedSnapshotReader(store, pointer_max_age=settings.pointer_max_age_s), registry.club_ids
        )
    return _wiring


def use(settings: QuerySettings, reader: CachedSnapshotReader, served_clubs: frozenset[int]) -> None:
    """Replace the wiring (local mode, tests, benchmarks)."""
    global _wiring  # noqa: PLW0603
    _wiring = _Wiring(settings, reader, served_clubs)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps({"error": code, "message": message}),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


@app.exception_handler(QueryError)
def _refused(exc: QueryError) -> Response:
    return _error(exc.status, exc.code, exc.message, exc.headers)


@app.exception_handler(SnapshotStoreError)
def _store_unavailable(exc: SnapshotStoreError) -> Response:
    logger.exception("snapshot store unavailable")
    return _error(503, "unavailable", "open calls are temporarily unavailable; retry shortly", {"Retry-After": "5"})


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    # A bug of ours: say so plainly (a JSON 500), log it with the request ID, and keep the container alive.
    logger.exception("unexpected error")
    return _error(500, "internal_error", "CAPPI could not answer this request; it has been logged")


@app.not_found
def _not_found(_exc: Exception) -> Response:
    segments = _route_segments()
    if segments is not None and app.current_event.http_method == "GET":
        return _open_call_ids(*segments)
    return _error(404, "not_found", "unknown endpoint; see GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids")


def _route_segments() -> tuple[str, str] | None:
    """ClubId and TechId as API Gateway captured them, else from a path of the route's shape.

    HTTP APIs decode the path before the Lambda sees it, so `ab%2F12` arrives as `ab/12`: the captured path
    parameters, not Powertools' re-match of the path, say what the client asked for.
    """
    params = app.current_event.raw_event.get("pathParameters") or {}
    club, tech = params.get("ClubId"), params.get("TechId")
    if isinstance(club, str) and isinstance(tech, str):
        return club, tech
    match = _ROUTE_SHAPE.fullmatch(app.current_event.path)
    return (match.group(1), match.group(2)) if match else None


@app.get(
    ROUTE,
    summary="Open call IDs for a technician",
    description=(
        "The IDs of the calls open for the technician `TechId` of club `ClubId`, from the club's latest snapshot "
        "(refreshed every 10 minutes). `ClubId` is 1-3 digits; `TechId` is 1-32 ASCII letters or digits, "
        "matched case-insensitively. Requires a bearer token with scope `read:callids`."
    ),
    responses={
        200: {
            "description": 'Call IDs as a JSON array of strings, e.g. `[]`, `["8679"]`, `["8655R", "8679"]`.',
            "content": {JSON: {"schema": {"type": "array", "items": {"type": "string"}}}},
        },
        304: {"description": "Not modified: the `If-None-Match` ETag still matches."},
        400: {"description": "Malformed ClubId or TechId."},
        401: {"description": "Missing, invalid or expired token."},
        403: {"description": "Token without scope `read:callids`, or for a club the client may not read."},
        404: {"description": "Unknown endpoint, or a club CAPPI does not serve."},
        503: {"description": "No snapshot for this club yet, or storage briefly unavailable."},
    },
    tags=["OpenCalls"],
    operation_id="getOpenCallIds",
)
def open_call_ids(ClubId: str, TechId: str) -> Response[list[str]]:  # the path's own names, for the OpenAPI document
    return _open_call_ids(*(_route_segments() or (ClubId, TechId)))


def _claims() -> dict[str, str]:
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    if not isinstance(jwt, dict) or not isinstance(jwt.get("claims"), dict):
        raise QueryError(
            401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": 'Bearer realm="cappi"'}
        )
    return {str(k): str(v) for k, v in jwt["claims"].items()}


def _open_call_ids(club_raw: str, tech_raw: str) -> Response:
    wiring = _wire()
    settings = wiring.settings
    claims = _claims()
    logger.append_keys(client=rules.client_of(claims))
    if not rules.has_scope(claims, settings.required_scope):
        raise QueryError(
            403,
            "insufficient_scope",
            f"the token lacks scope {settings.required_scope}",
            {"WWW-Authenticate": f'Bearer error="insufficient_scope" scope="{settings.required_scope}"'},
        )
    club_id, tech_id = rules.parse_path(club_raw, tech_raw)
    logger.append_keys(club_id=club_id)

    allowed = rules.allowed_clubs(claims, settings.club_claim)
    if allowed is None and settings.require_club_claim:
        raise QueryError(403, "forbidden_club", "the token does not say which clubs it may read")
    if allowed is not None and club_id not in allowed:
        raise QueryError(403, "forbidden_club", f"this client may not read club {club_id}")
    if club_id not in wiring.served_clubs:
        raise QueryError(404, "unknown_club", f"CAPPI does not serve club {club_id}")

    answer = wiring.reader.open_calls(club_id, tech_id)
    if answer is None:
        raise QueryError(
            503,
            "no_snapshot_yet",
            f"no open-call list has been received from club {club_id} yet",
            {"Retry-After": "60"},
        )
    if answer.checked_at_ms is not None:
        age_s = max(0.0, time.time() - answer.checked_at_ms / 1000)
        metrics.add_metric(name="SnapshotAgeServed", unit=MetricUnit.Seconds, value=round(age_s, 1))
    logger.append_keys(snapshot_version=answer.version)

    body = rules.response_body(answer.call_ids, nested_single=settings.nested_single_result)
    etag = rules.etag_for(body)
    headers = {
        "ETag": etag,
        "Last-Modified": rules.http_date(answer.fetched_at_ms / 1000),
        "Cache-Control": f"private, max-age={settings.cache_max_age_s}",
    }
    if rules.etag_matches(app.current_event.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers, body="")
    return Response(status_code=200, content_type=JSON, body=body.decode(), headers=headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = app.resolve(event, context)
    status = int(response.get("statusCode", 0))
    metrics.add_dimension(name="Status", value=str(status))
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    logger.info("request", extra={"status": status, "path": event.get("rawPath")})
    return response
