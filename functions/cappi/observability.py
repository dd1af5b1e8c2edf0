"""Logger and Metrics, created once and shared by every module of a function.

Tracer is left out on purpose: importing it costs ~0.4 s of cold start, and X-Ray adds little to a function that
makes one outbound call and a handful of DynamoDB requests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cappi.contracts.metrics import NAMESPACE as DEFAULT_NAMESPACE
from cappi.contracts.metrics import Datapoint

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "cappi"))
# service="" keeps Powertools from adding a `service` dimension to every metric: alarms and the dashboard key on
# `Source` (ingest) alone, and a dimension that differs per function would split every series in two.
metrics = Metrics(namespace=NAMESPACE, service="")


def emit(points: Iterable[Datapoint]) -> None:
    """Emit datapoints of the metrics contract.

    An invocation's metrics share one blob and so one dimension set: a datapoint with at most one dimension adds
    it to that set (Source for ingest, Status for queries); one with more goes out as a blob of its own.
    """
    for point in points:
        unit = point.metric.unit  # CloudWatch's unit names, which Powertools accepts as they are
        if len(point.dimensions) <= 1:
            for name, value in point.dimensions.items():
                metrics.add_dimension(name=name, value=value)
            metrics.add_metric(name=point.metric.name, unit=unit, value=point.value)
            continue
        with single_metric(
            name=point.metric.name, unit=MetricUnit(unit), value=point.value, namespace=NAMESPACE
        ) as metric:
            for name, value in point.dimensions.items():
                metric.add_dimension(name=name, value=value)


def route_library_logs_through(powertools_logger: Logger, *names: str) -> None:
    """Give plain `logging` loggers (the adapters') the handler's structured format and appended keys,
    so the club's name and IDs appear on their lines too.

    Done by hand: Powertools' copy_config_to_registered_loggers only configures top-level logger names.
    """
    import logging

    for name in names:
        library_logger = logging.getLogger(name)
        library_logger.handlers = [powertools_logger.registered_handler]
        library_logger.setLevel(powertools_logger.log_level)
        library_logger.propagate = False  # no second copy through the root logger
