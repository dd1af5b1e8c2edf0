"""What every Lambda entry point shares: dependencies built on first use (once per container) and the request's
scope in the structured log. Metrics need no flush: `cappi.observability.emit` prints each EMF line at once."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from cappi.observability import current_request

Deps = TypeVar("Deps")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(
    dependencies: Callable[[], Deps],
    serve: Callable[[dict[str, Any], Any, Deps], dict[str, Any]],
    *,
    correlation_id: Callable[[Any], str | None] | None = None,
) -> Handler:
    """A Lambda handler that calls `serve(event, context, dependencies())` in the request's log scope.

    Every line logged meanwhile carries the keys Powertools' `inject_lambda_context` would add (`function_name`,
    `function_memory_size`, `function_arn`, `function_request_id`, `cold_start`), `correlation_id` when a
    `correlation_id(event)` is given, and what `serve` adds through `cappi.observability.request_keys()`; no line
    logged after the request carries any of them. The keys reach a line only when one is written: Powertools'
    decorator, which rebuilds the logger's keys on every request, cost more than the query's answer.
    """
    built = cache(dependencies)
    cold = [True]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        keys = {
            **_container_keys(context.function_name, context.memory_limit_in_mb, context.invoked_function_arn),
            "function_request_id": context.aws_request_id,
            "cold_start": cold[0],
        }
        if correlation_id is not None:
            keys["correlation_id"] = correlation_id(event)
        cold[0] = False
        token = current_request.set(keys)
        try:
            return serve(event, context, built())
        finally:
            current_request.reset(token)

    return handler


@cache  # the same three values for every request a container serves
def _container_keys(function_name: str, memory: Any, arn: str) -> dict[str, Any]:
    return {"function_name": function_name, "function_memory_size": memory, "function_arn": arn}
