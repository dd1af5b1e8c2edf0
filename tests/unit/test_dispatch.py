"""Dispatch: one asynchronous ingest per enabled source; one failure never stops the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from cappi.adapters.lambda_invoker import LambdaInvoker
from cappi.domain.dispatch import dispatch, scheduled_time_of
from cappi.domain.registry import parse_registry
from cappi.handlers import dispatch as dispatch_handler
from local.http_api import LambdaContext

REGISTRY = parse_registry(
    {
        "sources": [
            {"name": "alpha", "club_ids": [1], "base_url": "https://a.example"},
            {"name": "bravo", "club_ids": [2], "base_url": "https://b.example"},
            {"name": "off", "club_ids": [3], "base_url": "https://c.example", "enabled": False},
            {"name": "charlie", "club_ids": [4, 5], "base_url": "https://c.example"},
        ]
    }
)


class RecordingInvoker:
    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.payloads: list[dict] = []
        self.failing = failing

    def invoke_async(self, payload: dict) -> None:
        if payload["source"] in self.failing:
            raise RuntimeError("TooManyRequestsException: Rate exceeded")
        self.payloads.append(payload)


def test_one_payload_per_enabled_source_naming_source_and_time() -> None:
    invoker = RecordingInvoker()
    result = dispatch(REGISTRY, invoker, "2026-11-27T21:00:00Z")
    assert invoker.payloads == [
        {"source": name, "scheduled_time": "2026-11-27T21:00:00Z"} for name in ("alpha", "bravo", "charlie")
    ]
    assert result.skipped == ["off"]
    assert result.failed == {}


def test_a_failing_invoke_does_not_stop_the_others() -> None:
    invoker = RecordingInvoker(failing={"alpha"})
    result = dispatch(REGISTRY, invoker, "t")
    assert [p["source"] for p in invoker.payloads] == ["bravo", "charlie"]
    assert list(result.failed) == ["alpha"]
    assert "Rate exceeded" in result.failed["alpha"]


def test_scheduled_time_from_scheduler_input_rule_event_or_clock() -> None:
    assert scheduled_time_of({"scheduled_time": "2026-11-27T21:10:00Z"}) == "2026-11-27T21:10:00Z"
    assert scheduled_time_of({"time": "2026-11-27T21:20:00Z", "detail-type": "Scheduled Event"}) == (
        "2026-11-27T21:20:00Z"
    )
    now = datetime(2026, 11, 27, 21, 30, 5, tzinfo=UTC)
    assert scheduled_time_of({}, now) == "2026-11-27T21:30:05Z"
    assert scheduled_time_of(None, now) == "2026-11-27T21:30:05Z"


def test_lambda_invoker_uses_event_invocation() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": "cappi-stage-ingest", "InvocationType": "Event", "Payload": b'{"source": "alpha"}'},
        )
        LambdaInvoker("cappi-stage-ingest", client).invoke_async({"source": "alpha"})
        stub.assert_no_pending_responses()


def test_handler_reads_registry_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    path = tmp_path / "clubs.json"
    path.write_text(json.dumps({"sources": [{"name": "alpha", "club_ids": [1], "base_url": "https://a.example"}]}))
    monkeypatch.setenv("CAPPI_CLUBS_FILE", str(path))
    monkeypatch.setenv("CAPPI_INGEST_FUNCTION", "cappi-stage-ingest")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sent: list[dict] = []
    monkeypatch.setattr(LambdaInvoker, "invoke_async", lambda self, payload: sent.append(payload))
    result = dispatch_handler.make_handler()({"scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context)
    assert result == {"scheduled_time": "2026-11-27T21:00:00Z", "dispatched": ["alpha"], "failed": {}, "skipped": []}
    assert sent == [{"source": "alpha", "scheduled_time": "2026-11-27T21:00:00Z"}]


def test_handler_fails_loudly_without_its_settings(
    monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    monkeypatch.delenv("CAPPI_INGEST_FUNCTION", raising=False)
    with pytest.raises(RuntimeError, match="CAPPI_INGEST_FUNCTION is required"):
        dispatch_handler.make_handler()({}, lambda_context)
