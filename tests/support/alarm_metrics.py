"""The custom metrics a synthesized template's CloudWatch alarms read, for tests that hold them to the metrics
contract (`cappi.contracts.metrics`): that each is declared there, and that the handlers really emit it.

Reads plain CloudFormation JSON (`Synth.templates[stage]`), so it needs no CDK library.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cappi.contracts.metrics import NAMESPACE

ALARM = "AWS::CloudWatch::Alarm"

AlarmMetric = tuple[str, str, tuple[str, ...]]  # (namespace, metric name, sorted dimension names)


def alarm_metrics(template: Mapping[str, Any], namespace: str | None = NAMESPACE) -> set[AlarmMetric]:
    """Every metric an alarm of `template` reads, as (namespace, metric name, sorted dimension names).

    Covers single-metric alarms (`Namespace`, `MetricName`, `Dimensions` on the alarm) and metric-math alarms
    (each `Metrics` entry's `MetricStat.Metric`; entries that are only an expression read no metric themselves).
    Only metrics in `namespace` count, by default the contract's `NAMESPACE`; `namespace=None` returns every
    namespace's (AWS/Lambda, AWS/SQS, ...) as well.
    """
    found = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != ALARM:
            continue
        for metric in _metrics_of(resource.get("Properties", {})):
            entry = (metric["Namespace"], metric["MetricName"], _dimension_names(metric))
            if namespace is None or entry[0] == namespace:
                found.add(entry)
    return found


def _metrics_of(alarm: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if "MetricName" in alarm:
        yield alarm
    for query in alarm.get("Metrics") or ():
        stat = query.get("MetricStat")
        if stat:
            yield stat["Metric"]


def _dimension_names(metric: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(d["Name"] for d in metric.get("Dimensions") or ()))
