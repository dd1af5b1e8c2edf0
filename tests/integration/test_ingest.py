"""The ingest Lambda end to end: a real club feed on loopback, SSM Parameter Store and DynamoDB on moto."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.aws import SNAPSHOT_TABLE
from support.club_servers import Handler, LoopbackServer, in_turn, redirect, respond, serve
from support.stores import stores

from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.contracts.credentials import parameter_name
from cappi.handlers import ingest
from cappi.handlers.ingest import BadIngestEvent
from local.http_api import LambdaContext

TABLE = SNAPSHOT_TABLE
SECRET_NAME = "cappi/test/clubs/aaa-example"
SECRET_VALUE = "s3cr3t-Token-Value-4711"
FEED = "/service/calls/status"


def feed(*rows: tuple[int, int, str]) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubId": k, "TechId": t} for c, k, t in rows]}}).encode()


GOOD = feed((8679, 212, "ab12"), (9999, 212, "AB12"), (8655, 213, "cd34"))


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route(FEED, respond(body=GOOD))
        yield server


@pytest.fixture
def aws(
    tmp_path: Path, club: LoopbackServer, monkeypatch: pytest.MonkeyPatch, dynamodb: Any, ssm: Any
) -> SnapshotReader:
    registry = {
        "sources": [
            {
                "name": "aaa-example",
                "club_ids": [212, 213],
                "base_url": club.base_url,
                "auth": {"type": "bearer", "secret": SECRET_NAME},
                "headers": {"Ident": "ClubAssist", "User-Agent": "API Services B2B Partners"},
            },
            {
                "name": "no-secret",
                "club_ids": [300],
                "base_url": club.base_url,
                "auth": {"type": "bearer", "secret": "cappi/test/clubs/never-set"},
            },
        ]
    }
    clubs_file = tmp_path / "clubs.json"
    clubs_file.write_text(json.dumps(registry))
    monkeypatch.setenv("CAPPI_TABLE_NAME", TABLE)
    monkeypatch.setenv("CAPPI_CLUBS_FILE", str(clubs_file))
    monkeypatch.setenv("CAPPI_FETCH_DEADLINE_S", "5")
    ssm.put_parameter(Name=parameter_name(SECRET_NAME), Value=SECRET_VALUE, Type="SecureString")
    return SnapshotReader(stores(dynamodb, TABLE).snapshots, {212: "aaa-example", 213: "aaa-example"})


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the handler's structured logger writes (its handler keeps the stream it was created with)."""
    stream = io.StringIO()
    handler = ingest.logger.registered_handler
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.fixture
def run(lambda_context: LambdaContext) -> Callable[..., dict[str, Any]]:
    """Invoke a fresh ingest handler (as a new container would), wired from this test's environment."""
    handler = ingest.make_handler()

    def invoke(source: str = "aaa-example") -> dict[str, Any]:
        return handler({"source": source, "scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context)

    return invoke


def printed_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def metric_values(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Name -> value of every number in the EMF lines printed: the metrics and the poll's log fields beside them."""
    values: dict[str, Any] = {}
    for record in records:
        if "_aws" not in record:
            continue
        for name, value in record.items():
            if name != "_aws" and isinstance(value, (int, float, list)) and not isinstance(value, bool):
                values[name] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return values


def test_a_good_poll_publishes_with_auth_headers_and_metrics(
    aws: SnapshotReader,
    club: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    log_lines: io.StringIO,
    run: Callable[..., dict[str, Any]],
) -> None:
    result = run()

    assert result["status"] == "ok"
    assert result["scheduled_time"] == "2026-11-27T21:00:00Z"
    assert [c["outcome"] for c in result["clubs"]] == ["published", "published"]
    assert aws.open_calls(212, "AB12").call_ids == ("8679", "9999")
    assert aws.open_calls(213, "CD34").call_ids == ("8655",)
    (seen,) = club.requests_to(FEED)
    assert seen.headers["authorization"] == f"Bearer {SECRET_VALUE}"
    assert seen.headers["ident"] == "ClubAssist"
    assert seen.headers["user-agent"] == "API Services B2B Partners"

    records = printed_json(capsys)
    values = metric_values(records)
    assert values["FetchSuccess"] == 1.0
    assert values["FetchFailure"] == 0.0
    assert values["Calls"] == 3.0
    assert values["Techs"] == 2.0
    assert values["SnapshotChanged"] == 2.0
    assert values["SnapshotAge"] >= 0
    emf = next(r for r in records if "FetchSuccess" in r)
    assert emf["Source"] == "aaa-example"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]  # no series per source: Source is a field
    logs = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [r["message"] for r in logs if r["level"] == "INFO"][-1] == "poll done"
    assert any(r["message"].startswith("club feed aaa-example: GET") for r in logs)  # the client's own line
    assert all(r["source"] == "aaa-example" and r["club_ids"] == [212, 213] for r in logs)
    assert SECRET_VALUE not in log_lines.getvalue() + json.dumps(records) + json.dumps(result)


def test_an_unchanged_poll_reports_unchanged(aws: SnapshotReader, run: Callable[..., dict[str, Any]]) -> None:
    run()
    again = run()
    assert [c["outcome"] for c in again["clubs"]] == ["unchanged", "unchanged"]
    assert again["write_units"] == 1


@pytest.mark.parametrize(
    ("responder", "status", "code"),
    [
        (respond(500, b"<html><body>Internal error</body></html>", content_type="text/html"), "failed", "http_status"),
        (respond(401, b"{}"), "failed", "auth_failed"),
        (respond(404, b"not here"), "failed", "http_status"),
        (respond(200, b"<!DOCTYPE html><html>Maintenance</html>", content_type="text/html"), "rejected", "not_json"),
        (respond(200, b'{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "Tec'), "rejected", "not_json"),
        (respond(200, b'{"Result": {}}'), "rejected", "bad_shape"),
        (
            respond(200, feed(*[(n, 212, "bad/tech") for n in range(10)], (5, 212, "ok1"))),
            "rejected",
            "too_many_rejected",
        ),
        (respond(200, feed((1, 999, "x"), (2, 999, "y"))), "rejected", "too_many_rejected"),
    ],
)
def test_a_broken_feed_never_erases_open_calls(
    aws: SnapshotReader,
    club: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    responder: Any,
    status: str,
    code: str,
    run: Callable[..., dict[str, Any]],
) -> None:
    run()
    capsys.readouterr()
    club.route(FEED, in_turn(responder))

    result = run()

    assert (result["status"], result["error_code"]) == (status, code)
    assert aws.open_calls(212, "AB12").call_ids == ("8679", "9999")
    assert aws.open_calls(213, "CD34").call_ids == ("8655",)
    assert "212" in result["snapshot_age_s"]
    values = metric_values(printed_json(capsys))
    assert values["PollSuccess"] == 0.0
    assert values["FetchFailure"] == float(status == "failed")
    assert values["FeedRejected"] == float(status == "rejected")
    assert "SnapshotAge" in values


def test_rejected_rows_are_counted_by_reason(
    aws: SnapshotReader,
    club: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    run: Callable[..., dict[str, Any]],
) -> None:
    rows = [(n, 212, f"T{n}") for n in range(1, 100)] + [(0, 212, "bad tech")]
    club.route(FEED, respond(body=feed(*rows)))

    result = run()

    assert result["status"] == "ok"
    assert result["rejected"] == {"tech_id_invalid": 1}
    records = printed_json(capsys)
    (emf,) = [r for r in records if "RejectedRowsByReason" in r]
    assert emf["RejectedRowsByReason"] == {"tech_id_invalid": 1}  # a log field beside the metrics, by reason
    assert emf["Source"] == "aaa-example"
    assert metric_values(records)["RejectedRowRatio"] == 1.0


def test_a_missing_secret_is_a_failed_poll_not_a_crash(
    aws: SnapshotReader, club: LoopbackServer, run: Callable[..., dict[str, Any]]
) -> None:
    result = run("no-secret")
    assert (result["status"], result["error_code"]) == ("failed", "secret_missing")
    assert "SSM parameter /cappi/test/clubs/never-set" in result["error"]  # where ops must write it
    assert club.requests_to(FEED) == []


def test_our_own_faults_raise_for_lambda_retries(
    aws: SnapshotReader, run: Callable[..., dict[str, Any]], lambda_context: LambdaContext
) -> None:
    with pytest.raises(KeyError, match="no club source named 'nope'"):
        run("nope")
    with pytest.raises(BadIngestEvent):
        ingest.make_handler()({"scheduled_time": "x"}, lambda_context)


# --- each source's last poll --------------------------------------------------------------------------------------


def last_poll(dynamodb: Any, source: str = "aaa-example") -> Any:
    return stores(dynamodb, TABLE).polls.last_poll(source)


def test_every_poll_records_its_outcome_and_a_failure_keeps_the_last_success(
    aws: SnapshotReader, club: LoopbackServer, dynamodb: Any, run: Callable[..., dict[str, Any]]
) -> None:
    assert last_poll(dynamodb) is None
    good = run()
    recorded = last_poll(dynamodb)
    assert (recorded.status, recorded.rows, recorded.accepted) == ("ok", 3, 3)
    assert recorded.fetched_at_ms == recorded.last_success_ms == good["fetched_at_ms"]
    assert good["status_write_units"] == 1

    club.route(FEED, in_turn(respond(503, b"busy")))
    failed = run()
    recorded = last_poll(dynamodb)
    assert (recorded.status, recorded.error_code, recorded.http_status) == ("failed", "http_status", 503)
    assert recorded.fetched_at_ms == failed["fetched_at_ms"] > good["fetched_at_ms"]
    assert recorded.last_success_ms == good["fetched_at_ms"]
    assert SECRET_VALUE not in (recorded.error or "")
    assert aws.open_calls(212, "AB12").call_ids == ("8679", "9999")


def test_a_rejected_feed_records_its_rules_with_example_rows(
    aws: SnapshotReader, club: LoopbackServer, dynamodb: Any, run: Callable[..., dict[str, Any]]
) -> None:
    rows = [(n, 212, "bad/tech") for n in range(10)] + [(5, 212, "ok1"), (6, 999, "T1")]
    club.route(FEED, respond(body=feed(*rows)))
    run()
    recorded = last_poll(dynamodb)
    assert (recorded.status, recorded.error_code) == ("rejected", "too_many_rejected")
    assert recorded.rejected == {"tech_id_invalid": 10, "club_not_owned": 1}
    assert [(e.index, e.value) for e in recorded.examples["tech_id_invalid"]] == [
        (0, '"bad/tech"'),
        (1, '"bad/tech"'),
        (2, '"bad/tech"'),
    ]
    assert [(e.index, e.value) for e in recorded.examples["club_not_owned"]] == [(11, "999")]
    assert recorded.last_success_ms is None


def test_a_held_drop_is_recorded_as_held(
    aws: SnapshotReader, club: LoopbackServer, dynamodb: Any, run: Callable[..., dict[str, Any]]
) -> None:
    club.route(FEED, respond(body=feed(*[(n, 212, f"T{n % 7}") for n in range(1, 201)], (1, 213, "cd34"))))
    run()
    club.route(FEED, respond(body=feed((1, 212, "T1"), (1, 213, "cd34"))))
    held = run()
    recorded = last_poll(dynamodb)
    assert (recorded.status, recorded.held_clubs) == ("held", (212,))
    assert recorded.last_success_ms == held["fetched_at_ms"]


# --- overlapping polls: the one that asked later wins ----------------------------------------------------------


def test_of_two_overlapping_polls_the_later_sent_wins_though_the_earlier_answers_last(
    aws: SnapshotReader, club: LoopbackServer, dynamodb: Any, run: Callable[..., dict[str, Any]]
) -> None:
    """Poll 1 asks first and the club answers it slowly with list X; poll 2 asks later and gets list Y at once.
    Y is the newer list: readers must keep it when X finally arrives (stamped by arrival, X won the head)."""
    run()  # a first good poll: the container is warm and readers have a list
    old_x = feed((1111, 212, "ab12"), (8655, 213, "cd34"))
    new_y = feed((2222, 212, "ab12"), (8655, 213, "cd34"))

    def slow_x(h: Handler) -> None:
        h.wait(1.5)
        respond(body=old_x)(h)

    club.route(FEED, in_turn(slow_x, respond(body=new_y)))
    results: list[dict[str, Any]] = []
    first = threading.Thread(target=lambda: results.append(run()))
    first.start()
    while len(club.requests_to(FEED)) < 2:  # the warm-up's request, then poll 1's
        time.sleep(0.005)
    time.sleep(0.02)
    second = run()
    assert aws.open_calls(212, "AB12").call_ids == ("2222",)
    first.join(10)
    (earlier,) = results

    assert earlier["fetched_at_ms"] < second["fetched_at_ms"]
    assert [c["outcome"] for c in earlier["clubs"]] == ["superseded", "superseded"]
    assert aws.open_calls(212, "AB12").call_ids == ("2222",)
    assert last_poll(dynamodb).fetched_at_ms == second["fetched_at_ms"]  # the last poll is the later-sent one


def test_a_redirect_to_a_path_holding_the_secret_stays_out_of_logs_results_and_last_poll(
    aws: SnapshotReader,
    club: LoopbackServer,
    dynamodb: Any,
    capsys: pytest.CaptureFixture[str],
    log_lines: io.StringIO,
    run: Callable[..., dict[str, Any]],
) -> None:
    moved = f"/v2/{SECRET_VALUE}/status"
    club.route(FEED, redirect(moved))
    club.route(moved, respond(body=GOOD))

    good = run()
    club.route(moved, respond(500, f"<h1>error at {moved}</h1>".encode(), content_type="text/html"))
    failed = run()

    assert (good["status"], failed["status"], failed["error_code"]) == ("ok", "failed", "http_status")
    logs = log_lines.getvalue()
    assert "/v2/[redacted]/status" in logs
    recorded = last_poll(dynamodb)
    assert "[redacted]" in (recorded.error or "")
    everything = logs + capsys.readouterr().out + json.dumps(good) + json.dumps(failed) + repr(recorded)
    assert SECRET_VALUE not in everything
