"""Query Lambda: GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids -> the call IDs open for that technician.

Behind API Gateway's HTTP API (payload 2.0) with a JWT authorizer. Wiring only: the rules are
`cappi.domain.query.open_call_ids`; this module reads the event, calls it, and writes the answer's headers;
`cappi.handlers.http` maps each refusal to its status and writes the payload 2.0 response. There is no
Powertools event handler: API Gateway matched the one route already, and importing it cost a third of the cold start.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import formatdate  # boto3 imports email.utils already: no extra cold start
from functools import cache, cached_property, lru_cache
from typing import Any

from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.contracts import api
from cappi.domain import query as rules
from cappi.handlers import http
from cappi.handlers.entry import Handler
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
        from cappi.adapters.snapshot_reader import CachedSnapshotReader
        from cappi.domain.registry import load_registry

        settings = QuerySettings.from_env()
        registry = load_registry(settings.clubs_file)
        table = SnapshotTable(dynamodb_client(QUERY_ATTEMPTS, session=session), settings.table_name)
        reader = CachedSnapshotReader(
            DynamoShardSource(table),
            registry.sources_by_club,
            polls=DynamoPollLog(table),
            pointer_max_age=settings.pointer_max_age_s,
        )
        return cls(settings, reader, registry.club_ids)


def _route(event: dict[str, Any], deps: QueryDependencies, notes: dict[str, Any]) -> dict[str, Any]:
    """The one route: API Gateway sends this function only GET on it, anything else is a 404 of ours."""
    request = event.get("requestContext")
    http_context = request.get("http") if isinstance(request, dict) else None
    method = http_context.get("method") if isinstance(http_context, dict) else None
    segments = _segments(event)
    if segments is None or method != api.METHOD:
        return http.error(404, "not_found", f"unknown endpoint; see {api.METHOD} {api.ROUTE}")
    return _serve(event, deps, notes, *segments)


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


def _serve(
    event: dict[str, Any], deps: QueryDependencies, notes: dict[str, Any], club_raw: str, tech_raw: str
) -> dict[str, Any]:
    """The answer; what the rules learn on the way goes into `notes`, the request's log keys."""
    settings = deps.settings
    answer = rules.open_call_ids(
        http.claims_of(event),
        club_raw,
        tech_raw,
        policy=deps.policy,
        reader=deps.reader,
        nested_single=settings.nested_single_result,
        if_none_match=_header(event, "if-none-match"),
        note=notes.update,
        poll_interval_s=settings.poll_interval_s,
    )
    if answer.checked_at_ms is not None:
        # The age of the list this answer came from, on the request's line (no metric; the line is sampled).
        notes["snapshot_age_s"] = round(max(0.0, time.time() - answer.checked_at_ms / 1000), 1)
    headers = {
        "ETag": answer.etag,
        "Last-Modified": _http_date(answer.fetched_at_ms),
        "Cache-Control": deps.cache_control,
    }
    if answer.not_modified:
        return http.response(304, "", headers)
    return http.response(200, answer.body.decode(), {"Content-Type": http.JSON, **headers})


@lru_cache(maxsize=512)  # one per published version a container serves: formatting it per request costs more
def _http_date(epoch_ms: int) -> str:
    return formatdate(epoch_ms / 1000, usegmt=True)


def _header(event: dict[str, Any], name: str) -> str | None:
    """A request header by its lower-case name, as payload 2.0 names them (repeats joined with commas); another
    casing (a hand-made test event) is found too."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    return value if isinstance(value, str) else None


# What the lines logged while a request is served say about it: the Lambda context, the correlation ID and what the
# rules learnt on the way (client, club, version). Kept here and added to a line only when one is written, so a
# request that logs nothing (most of them: the request line is sampled) spends nothing on the logger.
_request_keys: ContextVar[dict[str, Any] | None] = ContextVar("cappi_request_keys", default=None)


class _RequestKeysFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for key, value in (_request_keys.get() or {}).items():
            fields.setdefault(key, value)  # a line's own `extra` wins
        return True


logger.registered_handler.addFilter(_RequestKeysFilter())


@cache
def _container_keys(function_name: str, memory: Any, arn: str) -> dict[str, Any]:
    return {"function_name": function_name, "function_memory_size": memory, "function_arn": arn}


def make_handler(dependencies: Callable[[], QueryDependencies] = QueryDependencies.from_env) -> Handler:
    """The Lambda handler; tests, local mode and benchmarks pass their own dependencies.

    Powertools' `inject_lambda_context` is left out on this path: it rebuilds the logger's keys on every request
    (and `correlation_id_path` runs a JMESPath search), which cost more than the answer. The same keys (the
    Lambda context, `cold_start`, `correlation_id` = the API request ID) reach every line through
    `_RequestKeysFilter`.
    """
    built = cache(dependencies)
    cold = [True]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not isinstance(event, dict):
            event = {}  # not an API Gateway event: a 404 like any other request this function does not serve
        request = event.get("requestContext")
        keys = {
            **_container_keys(context.function_name, context.memory_limit_in_mb, context.invoked_function_arn),
            "function_request_id": context.aws_request_id,
            "cold_start": cold[0],
            "correlation_id": request.get("requestId") if isinstance(request, dict) else None,
        }
        cold[0] = False
        token = _request_keys.set(keys)
        try:
            return _resolve(event, built(), keys)
        finally:
            _request_keys.reset(token)

    return handler


def _resolve(event: dict[str, Any], deps: QueryDependencies, keys: dict[str, Any]) -> dict[str, Any]:
    try:
        response = _route(event, deps, keys)
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
