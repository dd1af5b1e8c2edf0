"""Every custom metric an alarm reads is one the metrics contract declares, under the same name and with exactly
its dimensions: an alarm on a metric nobody emits never fires, it only sits in INSUFFICIENT_DATA or OK."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

pytest.importorskip("aws_cdk")

from support.alarm_metrics import AlarmMetric, alarm_metrics
from support.synth import Synth, synth

from cappi.contracts import metrics
from cappi.contracts.metrics import ALL_METRICS, NAMESPACE

STAGES = ("stage", "prod")
DECLARED = {m.name: m for m in ALL_METRICS}


def undeclared(found: Iterable[AlarmMetric]) -> list[str]:
    """What in `found` the contract does not declare: an unknown name, or other dimensions than the contract's."""
    problems = []
    for namespace, name, dimensions in sorted(found):
        metric = DECLARED.get(name)
        if namespace != NAMESPACE:
            problems.append(f"{namespace}/{name}: not in the contract's namespace {NAMESPACE}")
        elif metric is None:
            problems.append(f"{name}: no such metric in cappi.contracts.metrics")
        elif dimensions != tuple(sorted(metric.dimensions)):
            problems.append(f"{name}: alarm uses dimensions {list(dimensions)}, contract has {list(metric.dimensions)}")
    return problems


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def test_contract_metric_names_are_unique() -> None:
    assert len(DECLARED) == len(ALL_METRICS)


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_reads_a_declared_metric_with_its_dimensions(app: Synth, stage: str) -> None:
    found = alarm_metrics(app.templates[stage])
    assert undeclared(found) == []
    # Not vacuous: the per-source alarms and the dispatch alarm read contract metrics.
    names = {name for _, name, _ in found}
    assert names >= {
        metrics.POLL_SUCCESS.name,
        metrics.SNAPSHOT_AGE.name,
        metrics.DROP_GUARD_HOLDS.name,
        metrics.REJECTED_ROW_RATIO.name,
        metrics.INGEST_DISPATCH_FAILURES.name,
    }


# -- the helper and the check themselves ----------------------------------------------------------------------

TEMPLATE = {
    "Resources": {
        "Single": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": NAMESPACE,
                "MetricName": "PollSuccess",
                "Dimensions": [{"Name": "Source", "Value": "north-club"}],
                "Statistic": "Sum",
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
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": "Requests",
                                "Dimensions": [{"Name": "Status", "Value": "200"}],
                            },
                            "Period": 300,
                            "Stat": "Sum",
                        },
                    },
                    {
                        "Id": "b",
                        "MetricStat": {
                            "Metric": {"Namespace": NAMESPACE, "MetricName": "IngestDispatchFailures"},
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
        "Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {"MetricName": "NotAnAlarm"}},
    }
}


def test_helper_reads_single_metric_and_metric_math_alarms() -> None:
    assert alarm_metrics(TEMPLATE) == {
        (NAMESPACE, "PollSuccess", ("Source",)),
        (NAMESPACE, "Requests", ("Status",)),
        (NAMESPACE, "IngestDispatchFailures", ()),
    }
    assert ("AWS/Lambda", "Errors", ("FunctionName",)) in alarm_metrics(TEMPLATE, namespace=None)
    assert undeclared(alarm_metrics(TEMPLATE)) == []


def test_check_refuses_unknown_names_and_other_dimensions() -> None:
    problems = undeclared(
        [
            (NAMESPACE, "PollSucess", ("Source",)),
            (NAMESPACE, "PollSuccess", ()),
            (NAMESPACE, "RejectedRowsByReason", ("Source",)),
            (NAMESPACE, "RejectedRowsByReason", ("Reason", "Source")),
            ("Other", "PollSuccess", ("Source",)),
        ]
    )
    assert set(problems) == {
        f"Other/PollSuccess: not in the contract's namespace {NAMESPACE}",
        "PollSucess: no such metric in cappi.contracts.metrics",
        "PollSuccess: alarm uses dimensions [], contract has ['Source']",
        "RejectedRowsByReason: alarm uses dimensions ['Source'], contract has ['Source', 'Reason']",
    }
