"""Logger and metrics, created once and shared by every module of a function.

Tracer is left out on purpose: importing it costs ~0.4 s of cold start, and X-Ray adds little to a function that
makes one outbound call and a handful of DynamoDB requests.

Metrics are written as CloudWatch embedded metric format (EMF) lines by `emit` itself rather than through
Powertools' `Metrics`: one line per poll carries stage-wide metrics (no dimension) beside plain log fields keyed
by the source (which must not become a dimension: a series per source), and Powertools adds a `service` dimension
the alarms do not use. Writing the line here keeps every series exactly as the contract declares it.

The keys that say which request a line belongs to (the Lambda context, the correlation ID, what the handler learns
on the way) live in a request scope (`request_keys`, set for each invocation by `cappi.handlers.entry`) and are
added to a line only when one is written, so a request that logs nothing spends nothing on the logger.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

if TYPE_CHECKING:  # the metrics contract is loaded by the first `emit`: the query function never emits
    from cappi.contracts.metrics import Datapoint

# Read at import, as Powertools does (None: the contract's default namespace); `emit` looks it up on every call, so a
# test may point it elsewhere.
NAMESPACE: str | None = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "cappi"))

# The keys of the request being served (None between requests); `cappi.handlers.entry` sets and resets it.
current_request: ContextVar[dict[str, Any] | None] = ContextVar("cappi_request_keys", default=None)


def request_keys() -> dict[str, Any]:
    """The keys every line logged while this request is served carries; a handler adds its own to them
    (`request_keys().update(source=...)`). Outside a request, a dict nobody reads."""
    keys = current_request.get()
    return {} if keys is None else keys


class _RequestKeysFilter(logging.Filter):
    """Puts the request's keys on each record the logger's handler writes (the library loggers routed through it
    included); a line's own `extra` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        keys = current_request.get()
        if keys:
            fields = record.__dict__
            for key, value in keys.items():
                fields.setdefault(key, value)
        return True


logger.registered_handler.addFilter(_RequestKeysFilter())


def emit(points: Iterable[Datapoint]) -> None:
    """Print `points` as EMF lines (Lambda sends stdout to CloudWatch Logs, which extracts the metrics)."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        return
    from cappi.contracts.metrics import NAMESPACE as DEFAULT_NAMESPACE

    for document in emf_documents(points, NAMESPACE or DEFAULT_NAMESPACE):
        print(json.dumps(document, separators=(",", ":")))


def emf_documents(points: Iterable[Datapoint], namespace: str, timestamp_ms: int | None = None) -> list[dict[str, Any]]:
    """The EMF documents for `points`: one per distinct set of key dimension values.

    A stored metric's key dimensions are all of its dimensions; a log field's are its first (the source), and
    any further dimension nests its value (`RejectedRowsByReason: {reason: rows}`). Points without dimensions
    join the first document: the directive for them names no dimension, so the root's `Source` does not split
    them. A document holding no stored metric is a plain JSON log line without the `_aws` directive.
    """
    groups: dict[frozenset[tuple[str, str]], list[Datapoint]] = {}
    dimensionless: list[Datapoint] = []
    for point in points:
        kept = point.metric.dimensions if point.metric.stored else point.metric.dimensions[:1]
        key = frozenset((name, point.dimensions[name]) for name in kept if name in point.dimensions)
        if key:
            groups.setdefault(key, []).append(point)
        else:
            dimensionless.append(point)
    if dimensionless:
        first = next(iter(groups), frozenset())
        groups[first] = groups.get(first, []) + dimensionless
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return [_document(dict(key), group, namespace, stamp) for key, group in groups.items()]


def _document(keys: Mapping[str, str], points: list[Datapoint], namespace: str, stamp: int) -> dict[str, Any]:
    root: dict[str, Any] = dict(keys)
    directives: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for point in points:
        metric = point.metric
        if metric.stored:
            names = [m["Name"] for m in directives.get(metric.dimensions, [])]
            if metric.name not in names:
                directives.setdefault(metric.dimensions, []).append({"Name": metric.name, "Unit": metric.unit})
            _put(root, metric.name, point.value)
            continue
        nested = [point.dimensions[name] for name in metric.dimensions[1:] if name in point.dimensions]
        if nested:
            root.setdefault(metric.name, {})[nested[0]] = point.value
        else:
            _put(root, metric.name, point.value)
    if directives:
        root["_aws"] = {
            "Timestamp": stamp,
            "CloudWatchMetrics": [
                {"Namespace": namespace, "Dimensions": [list(names)], "Metrics": defined}
                for names, defined in directives.items()
            ],
        }
    return root


def _put(root: dict[str, Any], name: str, value: float) -> None:
    """A second value for the same name in one document becomes a list, as EMF allows (up to 100 values)."""
    if name not in root:
        root[name] = value
    elif isinstance(root[name], list):
        root[name].append(value)
    else:
        root[name] = [root[name], value]


def route_library_logs_through(powertools_logger: Logger, *names: str) -> None:
    """Give plain `logging` loggers (the adapters') the handler's structured format and the request's keys,
    so the club's name and IDs appear on their lines too.

    Done by hand: Powertools' copy_config_to_registered_loggers only configures top-level logger names.
    """
    for name in names:
        library_logger = logging.getLogger(name)
        library_logger.handlers = [powertools_logger.registered_handler]
        library_logger.setLevel(powertools_logger.log_level)
        library_logger.propagate = False  # no second copy through the root logger
