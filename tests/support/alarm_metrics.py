"""The custom metrics a synthesized template's CloudWatch alarms and dashboards read, for tests that hold them to
the metrics contract (`cappi.contracts.metrics`): that each is declared there, and that the handlers really emit it
under the same namespace, name and dimensions.

Reads plain CloudFormation JSON (`Synth.templates[stage]`), so it needs no CDK library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

ALARM = "AWS::CloudWatch::Alarm"
DASHBOARD = "AWS::CloudWatch::Dashboard"
AWS_NAMESPACE = "AWS/"  # AWS's own metrics (Lambda, API Gateway, SQS): not ours to emit
TOKEN = "<token>"  # what a Ref or GetAtt inside a dashboard body reads as

AlarmMetric = tuple[str, str, tuple[str, ...]]  # (namespace, metric name, sorted dimension names)


def alarm_metrics(template: Mapping[str, Any], *, aws: bool = False) -> set[AlarmMetric]:
    """Every metric an alarm of `template` reads, as (namespace, metric name, sorted dimension names).

    Covers single-metric alarms (`Namespace`, `MetricName`, `Dimensions` on the alarm) and metric-math alarms
    (each `Metrics` entry's `MetricStat.Metric`; entries that are only an expression read no metric themselves).
    Only custom namespaces count unless `aws` (then AWS/Lambda, AWS/SQS, ... as well).
    """
    found = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != ALARM:
            continue
        for metric in _metrics_of(resource.get("Properties", {})):
            found.add((metric["Namespace"], metric["MetricName"], _dimension_names(metric)))
    return {m for m in found if aws or not m[0].startswith(AWS_NAMESPACE)}


def dashboard_metrics(template: Mapping[str, Any], *, aws: bool = False) -> set[AlarmMetric]:
    """Every metric a dashboard widget of `template` graphs, in the same form as `alarm_metrics`.

    A widget's `metrics` entry is `[namespace, name, dim1, value1, ..., {options}]`; an entry holding only an
    options object is an expression and reads no metric itself.
    """
    found = set()
    for widget in dashboard_widgets(template):
        for entry in widget.get("properties", {}).get("metrics", ()):
            fields = [f for f in entry if not isinstance(f, dict)]
            if len(fields) < 2:
                continue
            namespace, name, *pairs = fields
            found.add((namespace, name, tuple(sorted(pairs[0::2]))))
    return {m for m in found if aws or not m[0].startswith(AWS_NAMESPACE)}


def dashboard_log_fields(template: Mapping[str, Any]) -> set[str]:
    """The fields the dashboard's Logs Insights widgets read: what `ispresent`, `latest`, `max`, ... name, and
    the `fields` and `by` lists, leaving out Logs Insights' own `@` fields."""
    names: set[str] = set()
    for widget in dashboard_widgets(template):
        query = widget.get("properties", {}).get("query")
        if not query:
            continue
        names |= set(re.findall(r"\b(?:ispresent|latest|earliest|max|min|sum|avg|count)\((\w+)\)", query))
        for clause in re.findall(r"(?:\bfields|\bby)\s+([^|\n]+)", query):
            names |= {n.strip() for n in clause.split(",") if n.strip() and not n.strip().startswith("@")}
    return names


def dashboard_widgets(template: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != DASHBOARD:
            continue
        body = resource["Properties"]["DashboardBody"]
        if isinstance(body, dict) and "Fn::Join" in body:
            separator, parts = body["Fn::Join"]
            body = separator.join(p if isinstance(p, str) else TOKEN for p in parts)
        yield from json.loads(body)["widgets"]


def function_namespaces(template: Mapping[str, Any]) -> set[str]:
    """The metric namespaces the template's functions are given (POWERTOOLS_METRICS_NAMESPACE)."""
    found = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Lambda::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            if "POWERTOOLS_METRICS_NAMESPACE" in variables:
                found.add(variables["POWERTOOLS_METRICS_NAMESPACE"])
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
