"""Dispatch Lambda: on each schedule tick, start one asynchronous ingest per enabled club source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cappi.contracts import metrics as m
from cappi.domain.dispatch import AsyncInvoker, dispatch, scheduled_time_of
from cappi.domain.registry import ClubRegistry, load_registry
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import emit, logger
from cappi.settings import DispatchSettings


@dataclass(frozen=True, slots=True)
class DispatchDependencies:
    registry: ClubRegistry
    invoker: AsyncInvoker

    @classmethod
    def from_env(cls, session: Any = None) -> DispatchDependencies:
        """`session`: a boto3 Session with other credentials than the environment's (local mode's role)."""
        from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, aws_client
        from cappi.adapters.lambda_invoker import LambdaInvoker

        settings = DispatchSettings.from_env()
        client = aws_client("lambda", BACKGROUND_TIMEOUTS, session=session)
        return cls(load_registry(settings.clubs_file), LambdaInvoker(settings.ingest_function, client))


def _log_failure(source: str, _error: Exception) -> None:
    logger.exception("could not start ingest", extra={"source": source})


def make_handler(dependencies: Callable[[], DispatchDependencies] = DispatchDependencies.from_env) -> Handler:
    """The Lambda handler; tests and local mode pass their own dependencies."""
    return lambda_handler(dependencies, _tick)


def _tick(event: dict[str, Any], _context: Any, deps: DispatchDependencies) -> dict[str, Any]:
    result = dispatch(deps.registry, deps.invoker, scheduled_time_of(event), on_failure=_log_failure)
    emit(
        [
            m.Datapoint(m.INGESTS_DISPATCHED, len(result.dispatched)),
            m.Datapoint(m.INGEST_DISPATCH_FAILURES, len(result.failed)),
        ]
    )
    summary = result.summary()
    logger.info("dispatched ingests", extra={k: summary[k] for k in ("dispatched", "failed", "skipped")})
    return summary


handler = make_handler()
