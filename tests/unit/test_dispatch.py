"""Dispatch: one asynchronous ingest per enabled source of the tick's slot, each source once per interval; one failure
never stops the others; and on every tick the stage's staleness over every enabled source's head, with the stale
ones named in one log line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from cappi.adapters.dynamo.shard_source import DynamoShardSource
from cappi.adapters.lambda_invoker import LambdaInvoker
from cappi.domain.dispatch import dispatch, scheduled_time_of, source_slot, tick_slot
from cappi.domain.heads import Head, Pointer
from cappi.domain.registry import parse_registry
from cappi.handlers import dispatch as dispatch_handler
from cappi.observability import logger
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
    monkeypatch.setenv("CAPPI_TABLE_NAME", "cappi-stage-snapshots")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sent: list[dict] = []
    read: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(LambdaInvoker, "invoke_async", lambda self, payload: sent.append(payload))

    def heads(self: DynamoShardSource, sources: Iterable[str]) -> dict:
        read.append((self.table_name, list(sources)))
        return {}

    monkeypatch.setattr(DynamoShardSource, "heads", heads)
    result = dispatch_handler.make_handler()({"scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context)
    assert result == {
        "scheduled_time": "2026-11-27T21:00:00Z",
        "dispatched": ["alpha"],
        "failed": {},
        "skipped": [],
        "slot": "0/1",  # CAPPI_POLL_SLOTS unset: one slot, every tick starts every source
        "other_slots": 0,
        "stale": {"alpha": None},  # never published
    }
    assert sent == [{"source": "alpha", "scheduled_time": "2026-11-27T21:00:00Z"}]
    assert read == [("cappi-stage-snapshots", ["alpha"])]


def test_handler_fails_loudly_without_its_settings(
    monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    monkeypatch.delenv("CAPPI_INGEST_FUNCTION", raising=False)
    with pytest.raises(RuntimeError, match="CAPPI_INGEST_FUNCTION is required"):
        dispatch_handler.make_handler()({}, lambda_context)


# -- poll slots -----------------------------------------------------------------------------------------------------

FLEET = parse_registry(
    {
        "sources": [
            {"name": f"club-{n:04d}", "club_ids": [n], "base_url": "https://x.example", "enabled": n % 7 != 0}
            for n in range(1000)
        ]
    }
)


def _minutes(start: str, count: int) -> list[str]:
    first = datetime.fromisoformat(start)
    return [(first + timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(count)]


@pytest.mark.parametrize("start", ["2026-12-06T10:00:00Z", "2026-12-06T10:03:37Z", "2026-12-31T23:55:00Z"])
def test_over_one_interval_of_ticks_every_enabled_source_is_started_exactly_once(start: str) -> None:
    started: list[str] = []
    for tick in _minutes(start, 10):
        invoker = RecordingInvoker()
        result = dispatch(FLEET, invoker, tick, slots=10)
        started += [p["source"] for p in invoker.payloads]
        assert len(result.dispatched) + result.other_slots == len(FLEET.enabled_sources)
        assert len(result.skipped) == len(FLEET.sources) - len(FLEET.enabled_sources)
    assert sorted(started) == sorted(s.name for s in FLEET.enabled_sources)


def test_slots_share_the_sources_about_evenly() -> None:
    per_slot = [0] * 10
    for source in FLEET.sources:
        per_slot[source_slot(source.name, 10)] += 1
    assert min(per_slot) >= 70 and max(per_slot) <= 130, per_slot  # 100 each on average


def test_a_retried_tick_starts_the_same_sources_and_the_next_tick_others() -> None:
    first, retry, following = RecordingInvoker(), RecordingInvoker(), RecordingInvoker()
    dispatch(FLEET, first, "2026-12-06T10:04:00Z", slots=10)
    dispatch(FLEET, retry, "2026-12-06T10:04:00Z", slots=10)  # Scheduler's or Lambda's retry: same input
    dispatch(FLEET, following, "2026-12-06T10:05:00Z", slots=10)
    assert first.payloads == retry.payloads and first.payloads
    assert not {p["source"] for p in first.payloads} & {p["source"] for p in following.payloads}


def test_a_source_keeps_its_slot_when_others_join_or_leave() -> None:
    names = [s.name for s in FLEET.sources]
    fewer = parse_registry(
        {"sources": [{"name": n, "club_ids": [k], "base_url": "https://x.example"} for k, n in enumerate(names[::-3])]}
    )
    # A slot depends on the name alone: not on the registry around it or its order.
    enabled = {s.name for s in FLEET.enabled_sources}
    for tick in _minutes("2026-12-06T10:00:00Z", 10):
        started = {p["source"] for p in _started(fewer, tick)}
        assert started & enabled == {p["source"] for p in _started(FLEET, tick)} & set(names[::-3])
        assert started


def test_a_slot_is_the_same_in_every_process_whatever_its_hash_seed() -> None:
    names = [s.name for s in FLEET.sources][:50]
    script = f"from cappi.domain.dispatch import source_slot; print([source_slot(n, 10) for n in {names!r}])"
    seen = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert seen == {str([source_slot(n, 10) for n in names])}


def _started(registry: object, tick: str) -> list[dict]:
    invoker = RecordingInvoker()
    dispatch(registry, invoker, tick, slots=10)  # type: ignore[arg-type]
    return invoker.payloads


def test_the_tick_slot_is_its_minute_and_an_unreadable_time_counts_as_now() -> None:
    assert [tick_slot(t, 10) for t in _minutes("2026-12-06T10:00:00Z", 12)] == [*range(10), 0, 1]
    assert tick_slot("2026-12-06T10:07:59Z", 10) == tick_slot("2026-12-06T10:07:00+00:00", 10) == 7
    now = datetime(2026, 12, 6, 10, 3, 30, tzinfo=UTC)
    assert tick_slot("not a time", 10, now) == 3
    assert tick_slot("2026-12-06T10:07:00Z", 1) == 0


# -- staleness ------------------------------------------------------------------------------------------------------

NOW_MS = 1_800_000_000_000
STALE_AFTER_S = 1800.0


def _head(source: str, ages_s: dict[int, float]) -> Head:
    def pointer(club: int, age: float) -> Pointer:
        checked = NOW_MS - int(age * 1000)
        return Pointer(club, "v", "h", checked, checked, 1, 1, 1, source, 1, 0)

    return Head(source, NOW_MS, {club: pointer(club, age) for club, age in ages_s.items()})


HEADS = {
    "alpha": _head("alpha", {1: 60.0}),  # fresh
    "bravo": _head("bravo", {2: 2460.0}),  # 41 min: stale
    "charlie": _head("charlie", {4: 30.0}),  # club 5 has no list: stale
    "off": _head("off", {3: 99_999.0}),  # disabled: never counted
}


def _tick(capsys: pytest.CaptureFixture[str], ctx: LambdaContext, heads: object, **deps: object) -> tuple[dict, list]:
    handler = dispatch_handler.make_handler(
        lambda: dispatch_handler.DispatchDependencies(
            REGISTRY,
            RecordingInvoker(),
            heads,
            clock_ms=lambda: NOW_MS,
            **deps,  # type: ignore[arg-type]
        )
    )
    capsys.readouterr()
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # the structured log's lines, beside the EMF prints
    try:
        result = handler({"scheduled_time": "2026-11-27T21:00:00Z"}, ctx)
    finally:
        logger.registered_handler.setStream(previous)
    output = capsys.readouterr().out + stream.getvalue()
    return result, [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _metrics(lines: list[dict]) -> dict[str, float]:
    found = {}
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Dimensions"] == [[]]
            found |= {metric["Name"]: line[metric["Name"]] for metric in directive["Metrics"]}
    return found


def test_a_tick_counts_the_stale_enabled_sources_and_names_them_with_their_ages(
    capsys: pytest.CaptureFixture[str], lambda_context: LambdaContext
) -> None:
    asked: list[list[str]] = []

    def heads(sources: Iterable[str]) -> dict:
        asked.append(list(sources))
        return {name: HEADS[name] for name in asked[-1]}

    result, lines = _tick(capsys, lambda_context, heads, stale_after_s=STALE_AFTER_S)
    assert asked == [["alpha", "bravo", "charlie"]]  # every enabled source, one read, whatever the slot
    assert result["stale"] == {"charlie": None, "bravo": 2460.0}  # no list first, then the oldest
    assert _metrics(lines) == {
        "IngestsDispatched": 3,
        "IngestDispatchFailures": 0,
        "StaleSources": 2,
        "OldestSnapshotAge": 2460.0,
    }
    (line,) = [line for line in lines if line.get("message") == "stale sources"]
    assert line["level"] == "WARNING"
    assert line["stale"] == "charlie no list, bravo 41m"
    assert (line["stale_sources"], line["enabled_sources"], line["oldest_snapshot_age_s"]) == (2, 3, 2460.0)


def test_a_tick_with_every_source_fresh_says_zero_and_names_nobody(
    capsys: pytest.CaptureFixture[str], lambda_context: LambdaContext
) -> None:
    fresh = {name: _head(name, dict.fromkeys(REGISTRY.source(name).club_ids, 5.0)) for name in HEADS}
    result, lines = _tick(capsys, lambda_context, lambda sources: fresh, stale_after_s=STALE_AFTER_S)
    assert result["stale"] == {}
    assert _metrics(lines)["StaleSources"] == 0
    assert _metrics(lines)["OldestSnapshotAge"] == 5.0
    assert not [line for line in lines if line.get("message") == "stale sources"]


def test_before_any_poll_every_enabled_source_is_stale_and_there_is_no_oldest_age(
    capsys: pytest.CaptureFixture[str], lambda_context: LambdaContext
) -> None:
    result, lines = _tick(capsys, lambda_context, dict.fromkeys)
    assert result["stale"] == {"alpha": None, "bravo": None, "charlie": None}
    assert _metrics(lines)["StaleSources"] == 3
    assert "OldestSnapshotAge" not in _metrics(lines)


def test_heads_that_cannot_be_read_leave_the_polls_started_and_the_staleness_unreported(
    capsys: pytest.CaptureFixture[str], lambda_context: LambdaContext
) -> None:
    def refused(sources: Iterable[str]) -> dict:
        raise RuntimeError("AccessDeniedException: dynamodb:BatchGetItem")

    result, lines = _tick(capsys, lambda_context, refused)
    assert result["dispatched"] == ["alpha", "bravo", "charlie"]
    assert "stale" not in result
    assert "StaleSources" not in _metrics(lines)  # missing data: the stale alarm counts it as stale
    assert any(line.get("message") == "could not read the heads to count stale sources" for line in lines)
