"""Query Lambda: GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids -> the call IDs open for that technician.

Behind API Gateway's HTTP API (payload 2.0) with a JWT authorizer. Wiring only: the rules are
`cappi.domain.query.open_call_ids`; this module routes the event, calls them, and turns our own failures into
answers; `cappi.handlers.http` reads the event's parts, maps each refusal to its status and writes the payload 2.0
response with its headers. There is no Powertools event handler: API Gateway matched the one route already, and
importing it cost a third of the cold start.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.contracts import api
from cappi.domain import query as rules
from cappi.handlers import http
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import logger, request_keys
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

    @cached_property
    def cache_control(self) -> str:
        return f"private, max-age={self.settings.cache_max_age_s}"

    @classmethod
    def from_env(cls, session: Any = None) -> QueryDependencies:
        """`session`: a boto3 Session with other credentials than the environment's (local mode's role)."""
        from cappi.adapters.dynamo.client import QUERY_ATTEMPTS, dynamodb_client
        from cappi.adapters.dynamo.poll_log import DynamoPollLog
        from cappi.adapters.dynamo.shard_source import DynamoShardSource
        from cappi.adapters.dynamo.table import SnapshotTable
        from cappi.adapters.indexed_reader import IndexedSnapshotReader
        from cappi.domain.registry import load_registry

        settings = QuerySettings.from_env()
        registry = load_registry(settings.clubs_file)
        table = SnapshotTable(dynamodb_client(QUERY_ATTEMPTS, session=session), settings.table_name)
        reader = IndexedSnapshotReader(
            DynamoShardSource(table),
            registry.sources_by_club,
            polls=DynamoPollLog(table),
            pointer_max_age=settings.pointer_max_age_s,
        )
        return cls(settings, reader, registry.club_ids)


def _route(event: dict[str, Any], deps: QueryDependencies) -> dict[str, Any]:
    """The one route: API Gateway sends this function only GET on it, anything else is a 404 of ours."""
    segments = _segments(event)
    if segments is None or http.method(event) != api.METHOD:
        return http.error(404, "not_found", f"unknown endpoint; see {api.METHOD} {api.ROUTE}")
    return _serve(event, deps, *segments)


def _segments(event: dict[str, Any]) -> tuple[str, str] | None:
    """ClubId and TechId as API Gateway captured them, else from a path of the route's shape.

    HTTP APIs decode the path before the Lambda sees it (`ab%2F12` arrives as `ab/12`): the captured parameters,
    not a re-match of the path, say what the client asked for.
    """
    params = event.get("pathParameters")
    if isinstance(params, dict):
        club, tech = params.get("ClubId"), params.get("TechId")
        if isinstance(club, str) and isinstance(tech, str):
            return club, tech
    path = event.get("rawPath")
    match = api.ROUTE_SHAPE.fullmatch(path) if isinstance(path, str) else None
    return (match.group(1), match.group(2)) if match else None


def _serve(event: dict[str, Any], deps: QueryDependencies, club_raw: str, tech_raw: str) -> dict[str, Any]:
    """The answer; what the rules learn on the way (client, club, version, the list's age) goes into the request's
    log keys."""
    settings, notes = deps.settings, request_keys()
    answer = rules.open_call_ids(
        http.claims_of(event, keep_null=deps.policy.club_claim),
        club_raw,
        tech_raw,
        policy=deps.policy,
        reader=deps.reader,
        nested_single=settings.nested_single_result,
        if_none_match=http.header(event, "if-none-match"),
        note=notes.update,
        poll_interval_s=settings.poll_interval_s,
    )
    if answer.checked_at_ms is not None:
        # The age of the list this answer came from, on the request's line (no metric; the line is sampled).
        notes["snapshot_age_s"] = round(max(0.0, time.time() - answer.checked_at_ms / 1000), 1)
    return http.answered(answer, deps.cache_control)


def make_handler(dependencies: Callable[[], QueryDependencies] = QueryDependencies.from_env) -> Handler:
    """The Lambda handler; tests, local mode and benchmarks pass their own dependencies. Its log lines carry the
    Lambda context and `correlation_id`, the API's request ID (`cappi.handlers.entry`)."""
    return lambda_handler(dependencies, _resolve, correlation_id=http.request_id)


def _resolve(event: dict[str, Any], _context: Any, deps: QueryDependencies) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {}  # not an API Gateway event: a 404 like any other request this function does not serve
    try:
        response = _route(event, deps)
    except rules.Refused as exc:
        response = http.refusal(exc)
    except SnapshotStoreError:
        logger.exception("snapshot store unavailable")
        response = http.error(
            503, "unavailable", "open calls are temporarily unavailable; retry shortly", {"Retry-After": "5"}
        )
    except Exception:
        # A bug of ours: say so plainly (a JSON 500), log it with the request ID, and keep the container alive.
        logger.exception("unexpected error")
        response = http.error(500, "internal_error", "CAPPI could not answer this request; it has been logged")
    status = response["statusCode"]
    # Sampled at INFO rather than with Powertools' DEBUG sampling: Lambda's log-level filtering (JSON log format,
    # infra/functions.py) drops DEBUG lines before they reach CloudWatch.
    if status >= 400 or random.random() < deps.settings.request_log_sample_rate:  # noqa: S311 (sampling, not secrecy)
        logger.info("request", extra={"status": status, "path": event.get("rawPath")})
    return response


handler = make_handler()
