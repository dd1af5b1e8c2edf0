"""Every custom metric an alarm or the dashboard reads is one the metrics contract declares as a stored series,
in the stage's own namespace, under the same name and with exactly its dimensions: an alarm on a metric nobody
emits never fires, it only sits in INSUFFICIENT_DATA or OK, and a graph of one stays empty. The dashboard's Logs
Insights widgets read only fields the contract declares."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

pytest.importorskip("aws_cdk")

from support.alarm_metrics import (
    AlarmMetric,
    alarm_metrics,
    dashboard_log_fields,
    dashboard_metrics,
    function_namespaces,
)
from support.synth import Synth, synth

from cappi.contracts import metrics
from cappi.contracts.metrics import ALL_FIGURES, ALL_METRICS, namespace_for

STAGES = ("stage", "prod")
DECLARED = {m.name: m for m in ALL_METRICS}


def undeclared(found: Iterable[AlarmMetric], namespace: str) -> list[str]:
    """What in `found` the contract does not declare: another namespace, an unknown name, a log field, or other
    dimensions than the contract's."""
    problems = []
    log_fields = {m.name for m in ALL_FIGURES if not m.stored}
    for space, name, dimensions in sorted(found):
        metric = DECLARED.get(name)
        if space != namespace:
            problems.append(f"{space}/{name}: not in the stage's namespace {namespace}")
        elif name in log_fields:
            problems.append(f"{name}: a log field, not a metric series")
        elif metric is None:
            problems.append(f"{name}: no such metric in cappi.contracts.metrics")
        elif dimensions != tuple(sorted(metric.dimensions)):
            problems.append(f"{name}: reads dimensions {list(dimensions)}, contract has {list(metric.dimensions)}")
    return problems


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def test_contract_names_are_unique() -> None:
    assert len({m.name for m in ALL_FIGURES}) == len(ALL_FIGURES)


def test_stages_have_namespaces_of_their_own() -> None:
    assert namespace_for("stage") != namespace_for("prod")
    assert namespace_for("prod").startswith(metrics.NAMESPACE + "/")


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_reads_a_declared_metric_with_its_dimensions(app: Synth, stage: str) -> None:
    found = alarm_metrics(app.templates[stage])
    assert undeclared(found, namespace_for(stage)) == []
    # Not vacuous: the staleness alarm and the stage-wide ingest and dispatch alarms read contract metrics.
    assert {name for _, name, _ in found} >= {
        metrics.STALE_SOURCES.name,
        metrics.DROP_GUARD_HOLDS.name,
        metrics.REJECTED_ROW_RATIO.name,
        metrics.INGEST_DISPATCH_FAILURES.name,
    }


@pytest.mark.parametrize("stage", STAGES)
def test_every_dashboard_graph_reads_a_declared_metric_with_its_dimensions(app: Synth, stage: str) -> None:
    found = dashboard_metrics(app.templates[stage])
    assert undeclared(found, namespace_for(stage)) == []
    assert (namespace_for(stage), metrics.STALE_SOURCES.name, ()) in found
    assert (namespace_for(stage), metrics.OLDEST_SNAPSHOT_AGE.name, ()) in found
    assert not [m for m in found if m[2]]  # no graph per source
    assert any(space == "AWS/ApiGateway" for space, _, _ in dashboard_metrics(app.templates[stage], aws=True))


@pytest.mark.parametrize("stage", STAGES)
def test_the_dashboard_log_queries_read_declared_fields(app: Synth, stage: str) -> None:
    fields = dashboard_log_fields(app.templates[stage])
    assert {metrics.CALLS.name, "stale"} <= fields
    # Ingest's EMF figures and the fields of dispatch's `stale sources` line.
    assert sorted(fields - {m.name for m in ALL_FIGURES} - {metrics.SOURCE} - set(metrics.STALE_LINE_FIELDS)) == []


@pytest.mark.parametrize("stage", STAGES)
def test_functions_emit_into_the_namespace_alarms_read(app: Synth, stage: str) -> None:
    assert function_namespaces(app.templates[stage]) == {namespace_for(stage)}


# -- the helpers and the check themselves ---------------------------------------------------------------------

NS = namespace_for("stage")
TEMPLATE = {
    "Resources": {
        "Single": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": NS,
                "MetricName": "StaleSources",
                "Statistic": "Maximum",
            },
        },
        "Math": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Metrics": [
                    {"Id": "expr_1", "Expression": "100 * b / a"},
                    {
                        "Id": "a",
                        "MetricStat": {
                            "Metric": {"Namespace": NS, "MetricName": "FetchFailure"},
                            "Period": 300,
                            "Stat": "Sum",
                        },
                    },
                    {
                        "Id": "b",
                        "MetricStat": {
                            "Metric": {"Namespace": NS, "MetricName": "IngestDispatchFailures"},
                            "Period": 300,
                            "Stat": "Sum",
                        },
                    },
                ]
            },
        },
        "Lambda": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Fn"}}],
            },
        },
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardBody": {
                    "Fn::Join": [
                        "",
                        [
                            '{"widgets":[{"type":"metric","properties":{"region":"',
                            {"Ref": "AWS::Region"},
                            f'","metrics":[["{NS}","OldestSnapshotAge",{{"stat":"Maximum"}}],'
                            f'["{NS}","FetchLatency",{{"stat":"p50"}}],[{{"expression":"m1*2"}}],'
                            '["AWS/Lambda","Errors","FunctionName","',
                            {"Ref": "Fn"},
                            '"]]}},{"type":"log","properties":{"query":"SOURCE \'x\' | fields @timestamp, Calls'
                            '\\n| filter ispresent(FetchSuccess) | stats latest(Techs) as t by Source"}}]}',
                        ],
                    ]
                }
            },
        },
    }
}


def test_helpers_read_alarms_dashboards_and_log_queries() -> None:
    assert alarm_metrics(TEMPLATE) == {
        (NS, "StaleSources", ()),
        (NS, "FetchFailure", ()),
        (NS, "IngestDispatchFailures", ()),
    }
    assert ("AWS/Lambda", "Errors", ("FunctionName",)) in alarm_metrics(TEMPLATE, aws=True)
    assert dashboard_metrics(TEMPLATE) == {(NS, "OldestSnapshotAge", ()), (NS, "FetchLatency", ())}
    assert ("AWS/Lambda", "Errors", ("FunctionName",)) in dashboard_metrics(TEMPLATE, aws=True)
    assert dashboard_log_fields(TEMPLATE) == {"Calls", "FetchSuccess", "Techs", "Source"}
    assert undeclared(alarm_metrics(TEMPLATE) | dashboard_metrics(TEMPLATE), NS) == []


def test_check_refuses_other_namespaces_unknown_names_log_fields_and_other_dimensions() -> None:
    problems = undeclared(
        [
            (NS, "StaleSource", ()),
            (NS, "SnapshotAge", ("Source",)),
            (NS, "Calls", ("Source",)),
            (NS, "StaleSources", ("Source",)),
            (metrics.NAMESPACE, "StaleSources", ()),
            (namespace_for("prod"), "StaleSources", ()),
        ],
        NS,
    )
    assert set(problems) == {
        f"CAPPI/StaleSources: not in the stage's namespace {NS}",
        f"CAPPI/prod/StaleSources: not in the stage's namespace {NS}",
        "StaleSource: no such metric in cappi.contracts.metrics",
        "SnapshotAge: a log field, not a metric series",  # a series per source no more
        "Calls: a log field, not a metric series",
        "StaleSources: reads dimensions ['Source'], contract has []",
    }
