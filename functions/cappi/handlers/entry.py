"""What every Lambda entry point shares: dependencies built on first use (once per container) and the Lambda
context in the structured log. Metrics need no flush: `cappi.observability.emit` prints each EMF line at once."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from cappi.observability import logger

Deps = TypeVar("Deps")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(
    dependencies: Callable[[], Deps],
    serve: Callable[[dict[str, Any], Any, Deps], dict[str, Any]],
    *,
    correlation_id_path: str | None = None,
) -> Handler:
    """A Lambda handler that calls `serve(event, context, dependencies())`."""
    built = cache(dependencies)

    @logger.inject_lambda_context(correlation_id_path=correlation_id_path, clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return serve(event, context, built())

    return handler
