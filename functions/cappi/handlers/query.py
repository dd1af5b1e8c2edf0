"""Query Lambda: GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids -> the call IDs open for that technician.

Behind API Gateway's HTTP API (payload 2.0) with a JWT authorizer. Wiring only: the rules are
`cappi.domain.query.open_call_ids`; this module reads the event, calls it, and writes the answer's headers;
`cappi.handlers.http` maps each refusal to its status.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate  # boto3 imports email.utils already: no extra cold start
from functools import cached_property, lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from cappi.adapters.dynamo.store import SnapshotStoreError
from cappi.contracts import api
from cappi.domain import query as rules
from cappi.handlers import http
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import logger
from cappi.settings import QuerySettings


@dataclass(frozen=True)
class QueryDependencies:
    settings: QuerySettings
    reader: rules.OpenCallsReader
    served_clubs: frozenset[int]

    @cached_property  # once per container, not per request
    def policy(self) -> rules.AccessPolicy:
        s = self.settings
        return rules.AccessPolicy(s.required_scope, s.club_claim, s.require_club_claim, self.served_clubs)

    @classmethod
    def from_env(cls) -> QueryDependencies:
        from cappi.adapters.dynamo.client import QUERY_ATTEMPTS, dynamodb_client
        from cappi.adapters.dynamo.store import DynamoSnapshotStore
        from cappi.adapters.snapshot_reader import CachedSnapshotReader
        from cappi.domain.registry import load_registry

        settings = QuerySettings.from_env()
        registry = load_registry(settings.clubs_file)
        store = DynamoSnapshotStore(dynamodb_client(QUERY_ATTEMPTS), settings.table_name)
        reader = CachedSnapshotReader(store, registry.sources_by_club, pointer_max_age=settings.pointer_max_age_s)
        return cls(settings, reader, registry.club_ids)


app = APIGatewayHttpResolver()
app.exception_handler(rules.Refused)(http.refusal)


@app.exception_handler(SnapshotStoreError)
def _store_unavailable(exc: SnapshotStoreError) -> Response:
    logger.exception("snapshot store unavailable")
    return http.error(503, "unavailable", "open calls are temporarily unavailable; retry shortly", {"Retry-After": "5"})


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    # A bug of ours: say so plainly (a JSON 500), log it with the request ID, and keep the container alive.
    logger.exception("unexpected error")
    return http.error(500, "internal_error", "CAPPI could not answer this request; it has been logged")


@app.not_found
def _not_found(_exc: Exception) -> Response:
    # Powertools' route pattern refuses some segments API Gateway accepts (quotes, for one): those get a 400 too.
    segments = _segments()
    if segments is not None and app.current_event.http_method == api.METHOD:
        return _serve(*segments)
    return http.error(404, "not_found", f"unknown endpoint; see {api.METHOD} {api.ROUTE}")


def _segments() -> tuple[str, str] | None:
    """ClubId and TechId as API Gateway captured them, else from a path of the route's shape.

    HTTP APIs decode the path before the Lambda sees it (`ab%2F12` arrives as `ab/12`): the captured parameters,
    not Powertools' re-match of the path, say what the client asked for.
    """
    params = app.current_event.path_parameters
    club, tech = params.get("ClubId"), params.get("TechId")
    if isinstance(club, str) and isinstance(tech, str):
        return club, tech
    match = api.ROUTE_SHAPE.fullmatch(app.current_event.path)
    return (match.group(1), match.group(2)) if match else None


@app.get(
    api.RESOLVER_ROUTE,
    summary=api.OPERATION_SUMMARY,
    description=api.OPERATION_DESCRIPTION,
    responses=api.RESPONSES,
    tags=[api.OPERATION_TAG],
    operation_id=api.OPERATION_ID,
)
def open_call_ids(ClubId: str, TechId: str) -> Response[list[str]]:  # the path's own names, for the OpenAPI document
    return _serve(*(_segments() or (ClubId, TechId)))


def _serve(club_raw: str, tech_raw: str) -> Response:
    deps: QueryDependencies = app.context["dependencies"]
    settings = deps.settings
    answer = rules.open_call_ids(
        http.claims_of(app.current_event),
        club_raw,
        tech_raw,
        policy=deps.policy,
        reader=deps.reader,
        nested_single=settings.nested_single_result,
        if_none_match=app.current_event.headers.get("if-none-match"),
        note=logger.append_keys,
        poll_interval_s=settings.poll_interval_s,
    )
    if answer.checked_at_ms is not None:
        # The age of the list this answer came from, on the request's line (no metric; the line is sampled).
        logger.append_keys(snapshot_age_s=round(max(0.0, time.time() - answer.checked_at_ms / 1000), 1))
    headers = {
        "ETag": answer.etag,
        "Last-Modified": _http_date(answer.fetched_at_ms),
        "Cache-Control": f"private, max-age={settings.cache_max_age_s}",
    }
    if answer.not_modified:
        return Response(status_code=304, headers=headers, body="")
    return Response(status_code=200, content_type=http.JSON, body=answer.body.decode(), headers=headers)


@lru_cache(maxsize=512)  # one per published version a container serves: formatting it per request costs more
def _http_date(epoch_ms: int) -> str:
    return formatdate(epoch_ms / 1000, usegmt=True)


def make_handler(dependencies: Callable[[], QueryDependencies] = QueryDependencies.from_env) -> Handler:
    """The Lambda handler; tests, local mode and benchmarks pass their own dependencies."""
    # The correlation ID is the API request ID, read in `_resolve` directly: Powertools' `correlation_id_path`
    # would run a JMESPath search on every request for the same one key.
    return lambda_handler(dependencies, _resolve)


def _resolve(event: dict[str, Any], context: Any, deps: QueryDependencies) -> dict[str, Any]:
    request = event.get("requestContext") if isinstance(event, dict) else None
    logger.set_correlation_id(request.get("requestId") if isinstance(request, dict) else None)
    app.append_context(dependencies=deps)
    response = app.resolve(event, context)
    status = int(response.get("statusCode", 0))
    # Sampled at INFO rather than with Powertools' DEBUG sampling: Lambda's log-level filtering (JSON log format,
    # infra/functions.py) drops DEBUG lines before they reach CloudWatch.
    if status >= 400 or random.random() < deps.settings.request_log_sample_rate:  # noqa: S311 (sampling, not secrecy)
        logger.info("request", extra={"status": status, "path": event.get("rawPath")})
    return response


handler = make_handler()
