"""Logger and Metrics, created once and shared by every module of a function.

Tracer is left out on purpose: importing it costs ~0.4 s of cold start, and X-Ray adds little to a function that
makes one outbound call and a handful of DynamoDB requests.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CAPPI")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "cappi"))
metrics = Metrics(namespace=NAMESPACE)


def route_library_logs_through(powertools_logger: Logger, *names: str) -> None:
    """Give plain `logging` loggers (the adapters') the handler's structured format and appended keys,
    so the club's name and IDs appear on their lines too."""
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    copy_config_to_registered_loggers(source_logger=powertools_logger, include=set(names))
