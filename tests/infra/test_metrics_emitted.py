"""The alarms and the dashboard read metrics the code really emits: every custom metric an alarm or a dashboard
graph of either stage uses is printed by the handlers (as EMF, the way CloudWatch receives it) under the same
namespace, name and dimensions, with the namespace the template gives the functions; and every field the
dashboard's Logs Insights widget reads is in those lines.

The handlers run for real (moto for DynamoDB, fakes for the club feed and Lambda's invoke), through each outcome
an alarm watches: a good poll, a held drop, a failed fetch, a rejected feed, a dispatch tick that finds a source
never published (its `stale sources` line too) and queries.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from moto import mock_aws
from support.alarm_metrics import (
    AlarmMetric,
    alarm_metrics,
    dashboard_log_fields,
    dashboard_metrics,
    function_namespaces,
)
from support.aws import SNAPSHOT_TABLE, snapshot_table
from support.query_support import query_api
from support.stores import stores
from support.synth import Synth, synth

from cappi import observability
from cappi.contracts.api import path_for
from cappi.contracts.metrics import ALL_FIGURES, ALL_METRICS, STALE_LINE, STALE_LINE_FIELDS
from cappi.domain.poll import FeedUnavailable
from cappi.domain.registry import ClubSource, parse_registry
from cappi.handlers import dispatch, ingest
from cappi.observability import logger
from local.http_api import LambdaContext

REGISTRY = parse_registry({"sources": [{"name": "alpha", "club_ids": [212], "base_url": "https://a.example"}]})
# Dispatch's registry: alpha, polled above, and bravo, never published (stale).
FLEET = parse_registry(
    {
        "sources": [
            {"name": "alpha", "club_ids": [212], "base_url": "https://a.example"},
            {"name": "bravo", "club_ids": [213], "base_url": "https://b.example"},
        ]
    }
)


def feed(calls: int, bad_rows: int = 0) -> bytes:
    rows = [{"CallId": 1_000_000 + n, "ClubId": 212, "TechId": f"T{n % 50}"} for n in range(calls)]
    rows += [{"CallId": 2_000_000 + n, "ClubId": 212, "TechId": "bad tech"} for n in range(bad_rows)]
    return json.dumps({"Result": {"Calls": rows}}).encode()


@dataclass
class Fetched:
    body: bytes
    attempts: int = 1


class ScriptedFeed:
    """Answers each fetch with the next body, or raises FeedUnavailable for None."""

    def __init__(self, *bodies: bytes | None) -> None:
        self.bodies = list(bodies)

    def fetch(self, source: ClubSource) -> Fetched:
        body = self.bodies.pop(0)
        if body is None:
            raise FeedUnavailable(f"{source.name} did not answer")
        return Fetched(body)


class NoInvoke:
    def invoke_async(self, payload: dict[str, Any]) -> None:
        raise RuntimeError("invoke refused")


@dataclass
class Emitted:
    metrics: set[AlarmMetric]  # (namespace, name, sorted dimension names) of every metric the EMF lines define
    fields: set[str]  # every top-level key of those lines
    stale_line: set[str]  # the declared fields of dispatch's `stale sources` line


def emitted(output: str) -> Emitted:
    found = Emitted(set(), set(), set())
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("message") == STALE_LINE:
            found.stale_line |= set(record) & set(STALE_LINE_FIELDS)
        directives = record.get("_aws", {}).get("CloudWatchMetrics", [])
        if directives:
            found.fields |= set(record) - {"_aws"}
        for directive in directives:
            for dimensions in directive["Dimensions"]:
                assert all(name in record for name in dimensions), "EMF: every dimension has its value at the root"
                for metric in directive["Metrics"]:
                    assert metric["Name"] in record, "EMF: every metric has its value at the root"
                    found.metrics.add((directive["Namespace"], metric["Name"], tuple(sorted(dimensions))))
    return found


def context(name: str) -> LambdaContext:
    return LambdaContext(function_name=f"cappi-test-{name}", aws_request_id=f"req-{name}")


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def run_handlers(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, namespace: str) -> Emitted:
    """Every handler through each outcome, emitting into `namespace` as a function given it would."""
    monkeypatch.setattr(observability, "NAMESPACE", namespace)
    capsys.readouterr()
    with mock_aws():
        store = stores(snapshot_table(), SNAPSHOT_TABLE)
        # publish, publish with a bad row, hold a drop, fail, reject
        bodies = (feed(500), feed(500, bad_rows=1), feed(20), None, b"<html>busy</html>")
        deps = ingest.IngestDependencies(REGISTRY, ScriptedFeed(*bodies), store.writer)
        poll = ingest.make_handler(lambda: deps)
        for _ in bodies:
            poll({"source": "alpha", "scheduled_time": "2026-12-01T10:00:00Z"}, context("ingest"))
        tick = dispatch.make_handler(lambda: dispatch.DispatchDependencies(FLEET, NoInvoke(), store.snapshots.heads))
        previous = logger.registered_handler.setStream(sys.stdout)  # the structured log's lines into capsys too
        try:
            tick({"scheduled_time": "2026-12-01T10:00:00Z"}, context("dispatch"))
        finally:
            logger.registered_handler.setStream(previous)
    with query_api() as api:
        for path in (path_for(212, "AB12"), path_for(999, "AB12")):
            api.get(path)
    return emitted(capsys.readouterr().out)


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_every_metric_alarms_and_the_dashboard_read_is_emitted_by_the_handlers(
    app: Synth, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    template = app.templates[stage]
    (namespace,) = function_namespaces(template)  # what the deployed functions would emit into
    output = run_handlers(capsys, monkeypatch, namespace)
    watched = alarm_metrics(template)
    graphed = dashboard_metrics(template)
    assert watched, "the template has alarms on custom metrics"
    assert graphed, "the dashboard graphs custom metrics"
    assert sorted(watched - output.metrics) == []
    assert sorted(graphed - output.metrics) == []
    assert sorted(dashboard_log_fields(template) - output.fields - output.stale_line) == []
    assert output.stale_line == set(STALE_LINE_FIELDS)


def test_the_handlers_emit_only_what_the_contract_declares(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = run_handlers(capsys, monkeypatch, "CAPPI/test")
    declared = {m.name: tuple(sorted(m.dimensions)) for m in ALL_METRICS}
    assert output.metrics
    assert {space for space, _, _ in output.metrics} == {"CAPPI/test"}
    assert sorted((name, dims) for _, name, dims in output.metrics if declared.get(name) != dims) == []
    # No `service` (or any other) dimension sneaks in, and every other key is a declared log field.
    assert sorted(output.fields - {m.name for m in ALL_FIGURES} - {"Source"}) == []
    assert "RejectedRowsByReason" in output.fields
