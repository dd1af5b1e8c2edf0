"""The alarms read metrics the code really emits: every custom metric an alarm of either stage uses is printed by
the handlers (as EMF, the way CloudWatch receives it) under the same namespace, name and dimensions.

The handlers run for real (moto for DynamoDB, fakes for the club feed and Lambda's invoke), through each outcome
an alarm watches: a good poll, a held drop, a failed fetch, a rejected feed, a dispatch tick and queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from moto import mock_aws
from support.alarm_metrics import AlarmMetric, alarm_metrics
from support.aws import SNAPSHOT_TABLE, snapshot_table
from support.query_support import query_api
from support.synth import Synth, synth

from cappi.adapters.dynamo.store import DynamoSnapshotStore
from cappi.contracts.api import path_for
from cappi.contracts.metrics import ALL_METRICS
from cappi.domain.poll import FeedUnavailable
from cappi.domain.registry import ClubSource, parse_registry
from cappi.handlers import dispatch, ingest
from local.http_api import LambdaContext

REGISTRY = parse_registry({"sources": [{"name": "alpha", "club_ids": [212], "base_url": "https://a.example"}]})


def feed(calls: int) -> bytes:
    rows = [{"CallId": 1_000_000 + n, "ClubId": 212, "TechId": f"T{n % 50}"} for n in range(calls)]
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


def emitted(output: str) -> set[AlarmMetric]:
    """(namespace, name, sorted dimension names) of every metric in the EMF blobs of `output`."""
    found = set()
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], tuple(sorted(dimensions))))
    return found


def context(name: str) -> LambdaContext:
    return LambdaContext(function_name=f"cappi-test-{name}", aws_request_id=f"req-{name}")


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


@pytest.fixture
def handler_output(capsys: pytest.CaptureFixture[str]) -> set[AlarmMetric]:
    found: set[AlarmMetric] = set()
    with mock_aws():
        store = DynamoSnapshotStore(snapshot_table(), SNAPSHOT_TABLE)
        bodies = (feed(500), feed(20), None, b"<html>busy</html>")  # publish, hold a drop, fail, reject
        deps = ingest.IngestDependencies(REGISTRY, ScriptedFeed(*bodies), store)
        poll = ingest.make_handler(lambda: deps)
        for _ in bodies:
            poll({"source": "alpha", "scheduled_time": "2026-12-01T10:00:00Z"}, context("ingest"))
        tick = dispatch.make_handler(lambda: dispatch.DispatchDependencies(REGISTRY, NoInvoke()))
        tick({"scheduled_time": "2026-12-01T10:00:00Z"}, context("dispatch"))
    with query_api() as api:
        for path in (path_for(212, "AB12"), path_for(999, "AB12")):
            api.get(path)
    found |= emitted(capsys.readouterr().out)
    return found


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_every_alarm_metric_is_emitted_by_the_handlers(app: Synth, handler_output: set[AlarmMetric], stage: str):
    watched = alarm_metrics(app.templates[stage])
    assert watched, "the template has alarms on custom metrics"
    assert sorted(watched - handler_output) == []


def test_the_handlers_emit_only_what_the_contract_declares(handler_output: set[AlarmMetric]) -> None:
    declared = {m.name: tuple(sorted(m.dimensions)) for m in ALL_METRICS}
    assert handler_output
    assert sorted((name, dims) for _, name, dims in handler_output if declared.get(name) != dims) == []
