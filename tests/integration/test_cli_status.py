"""`cappi status` against local mode's AWS stand-in (moto's server on loopback), found through the endpoints file
a running local mode writes: one row per source, the state that stands out, JSON for scripts, exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from support.stores import stores

from cappi.contracts import stack
from cappi.contracts.local_state import ENDPOINTS_FILE
from cappi.domain.last_poll import LastPoll
from cappi.domain.publish import publish_source
from cappi.domain.snapshot import build_club_snapshot
from cli.main import main
from cli.target import ROOT, TargetError, stage_target
from local.aws import TABLE_NAME, LocalAws

STALE_AFTER_S = 1800
SOURCES = {
    "fresh": (1, True),
    "stale": (2, True),
    "failing": (3, True),
    "held": (4, True),
    "rejected": (5, True),
    "never": (6, True),
    "off": (7, False),
}


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    local = LocalAws()
    local.start()
    local.create_table()
    yield local
    local.stop()


def dynamodb(aws: LocalAws) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture
def state_dir(tmp_path: Path, aws: LocalAws) -> Path:
    """A local-mode state dir with a registry of one source per state, its table filled to match."""
    registry = {
        "sources": [
            {"name": name, "club_ids": [club], "base_url": "http://127.0.0.1:9", "enabled": enabled}
            for name, (club, enabled) in SOURCES.items()
        ]
    }
    clubs_file = tmp_path / "clubs.json"
    clubs_file.write_text(json.dumps(registry))
    client = dynamodb(aws)
    for page in client.get_paginator("scan").paginate(TableName=TABLE_NAME):
        for item in page["Items"]:
            client.delete_item(TableName=TABLE_NAME, Key={"pk": item["pk"], "sk": item["sk"]})
    store = stores(client, TABLE_NAME)
    now = int(time.time() * 1000)
    fetched = {"fresh": now - 60_000, "stale": now - 3 * 3600_000, "failing": now - 60_000, "held": now - 60_000}
    fetched["rejected"] = now - 60_000
    for name, at in fetched.items():
        club = SOURCES[name][0]
        publish_source(store.writer, name, [build_club_snapshot(club, {"AB12": [1, 2], "CD34": [3]})], at)
    for name, status, extra in [
        ("fresh", "ok", {}),
        ("stale", "ok", {}),
        ("failing", "failed", {"error_code": "timeout", "error": "no answer in 10 s"}),
        ("held", "held", {"held_clubs": (4,)}),
        ("rejected", "rejected", {"error_code": "not_json", "rejected": {"tech_id_invalid": 9}}),
    ]:
        success = fetched[name] if status in ("ok", "held") else None
        store.polls.record_poll(LastPoll(name, status, fetched[name], 0.5, last_success_ms=success, **extra))
    (tmp_path / ENDPOINTS_FILE).write_text(
        json.dumps(
            {
                "api": "http://127.0.0.1:3000",
                "dynamodb": aws.endpoint_url,
                "region": "us-east-1",
                "table": TABLE_NAME,
                "clubs_file": str(clubs_file),
                "stale_after_s": STALE_AFTER_S,
            }
        )
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_json_gives_each_source_its_state_and_exit_1(state_dir: Path, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "status", "--json", "--state-dir", str(state_dir))
    document = json.loads(out)
    by_name = {s["name"]: s for s in document["sources"]}
    assert {n: s["state"] for n, s in by_name.items()} == {
        "fresh": "ok",
        "stale": "stale",
        "failing": "failing",
        "held": "held",
        "rejected": "rejected",
        "never": "never_polled",
        "off": "disabled",
    }
    assert code == 1
    assert document["problems"] == 5
    assert (by_name["fresh"]["calls"], by_name["fresh"]["techs"], by_name["fresh"]["club_ids"]) == (3, 2, [1])
    assert 55 <= by_name["fresh"]["snapshot_age_s"] < 120
    assert by_name["stale"]["snapshot_age_s"] > STALE_AFTER_S
    assert by_name["failing"]["last_error"] == "timeout: no answer in 10 s"
    assert by_name["failing"]["last_success_at_ms"] is None
    assert by_name["rejected"]["rejected_rows"] == 9
    assert by_name["never"]["last_poll_status"] is None
    for source in by_name.values():
        assert {"name", "club_ids", "state", "snapshot_age_s", "calls", "last_error"} <= set(source)


def test_status_table_for_people_names_every_source(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--state-dir", str(state_dir))
    assert code == 1
    for name in SOURCES:
        assert name in out
    assert "never_polled" in out
    assert "5 sources need a look" in out


def test_all_fresh_exits_0(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clubs_file = state_dir / "clubs.json"
    registry = json.loads(clubs_file.read_text())
    registry["sources"] = [s for s in registry["sources"] if s["name"] in ("fresh", "off")]
    clubs_file.write_text(json.dumps(registry))
    code, out, _ = run(capsys, "status", "--json", "--state-dir", str(state_dir))
    assert code == 0
    assert json.loads(out)["problems"] == 0


def test_no_local_mode_running_is_an_access_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--state-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert "local mode is not running" in err


def test_usage_errors_exit_2_and_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            capsys,
        )[0]
        == 2
    )
    with pytest.raises(SystemExit) as bad:
        main(["status", "--stage", "nowhere"])
    assert bad.value.code == 2
    for argv in (["--help"], ["status", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        assert "exit codes" in capsys.readouterr().out


def test_a_stage_is_found_through_its_stack_outputs(aws: LocalAws) -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    outputs = [
        {"OutputKey": stack.TABLE_OUTPUT, "OutputValue": "cappi-stage-snapshots"},
        {"OutputKey": stack.STALE_AFTER_OUTPUT, "OutputValue": "1800"},
    ]
    stack_entry = {"StackName": "Cappi-stage", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "UPDATE_COMPLETE"}
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stacks", {"Stacks": [{**stack_entry, "Outputs": outputs}]}, {"StackName": "Cappi-stage"}
        )
        stub.add_response("describe_stacks", {"Stacks": [stack_entry]}, {"StackName": "Cappi-stage"})
        target = stage_target("stage", cloudformation=cloudformation, dynamodb=dynamodb(aws))
        assert (target.table.table_name, target.stale_after_s) == ("cappi-stage-snapshots", 1800.0)
        assert {s.name for s in target.registry.sources} == {
            s["name"] for s in json.loads((ROOT / "clubs" / "stage.json").read_text())["sources"]
        }
        with pytest.raises(TargetError, match="no output TableName"):
            stage_target("stage", cloudformation=cloudformation, dynamodb=dynamodb(aws))


def test_calls_now_and_at_an_earlier_moment(state_dir: Path, aws: LocalAws, capsys: pytest.CaptureFixture[str]):
    store = stores(dynamodb(aws), TABLE_NAME)
    before = int(time.time() * 1000) - 30_000
    publish_source(store.writer, "fresh", [build_club_snapshot(1, {"AB12": [7, 8, 9]})], before + 20_000)

    code, out, _ = run(capsys, "calls", "001", "ab12", "--json", "--state-dir", str(state_dir))
    now = json.loads(out)
    assert (code, now["club_id"], now["tech_id"], now["call_ids"]) == (0, 1, "AB12", ["7", "8", "9"])

    earlier = datetime.fromtimestamp((before + 5_000) / 1000, UTC).isoformat()
    code, out, _ = run(capsys, "calls", "1", "AB12", "--at", earlier, "--json", "--state-dir", str(state_dir))
    then = json.loads(out)
    assert (code, then["call_ids"]) == (0, ["1", "2"])
    assert then["version"] != now["version"]
    assert then["fetched_at"] < now["fetched_at"]

    code, out, _ = run(capsys, "calls", "1", "AB12", "--at", "2001-01-01T00:00Z", "--state-dir", str(state_dir))
    assert code == 1
    assert "no list is kept" in out
    code, _, err = run(capsys, "calls", "1", "a/b", "--state-dir", str(state_dir))
    assert code == 2
    assert "TechId" in err
    code, out, _ = run(capsys, "calls", "1", "ZZ99", "--state-dir", str(state_dir))
    assert (code, out.strip()) == (0, "(no open calls)")


def test_stale_sources_come_first_named_as_the_stale_alarm_counts_them(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The staleness alarm's description sends ops here: its sources top the list, the never-published first."""
    _, out, _ = run(capsys, "status", "--json", "--state-dir", str(state_dir))
    document = json.loads(out)
    assert document["stale"] == ["never", "stale"]
    assert [s["name"] for s in document["sources"]] == ["never", "stale", "fresh", "failing", "held", "rejected", "off"]
    assert {s["name"] for s in document["sources"] if s["stale"]} == {"never", "stale"}
    _, table, _ = run(capsys, "status", "--state-dir", str(state_dir))
    assert table.index("never") < table.index("stale  ") < table.index("fresh")
    assert "2 stale (the stage's stale alarm counts them): never, stale" in table


def test_a_failing_source_whose_list_aged_past_the_bound_says_both() -> None:
    from cappi.domain.heads import Head, Pointer
    from cappi.domain.registry import parse_registry
    from cli.status import registry_status

    now = 10_000_000_000
    old = now - (STALE_AFTER_S + 60) * 1000
    registry = parse_registry(
        {
            "sources": [
                {"name": "ok", "club_ids": [1], "base_url": "https://a.example"},
                {"name": "down", "club_ids": [2], "base_url": "https://b.example"},
            ]
        }
    )
    heads = {
        "ok": Head("ok", now, {1: Pointer(1, "v", "h", now, now, 1, 1, 1, "ok", 1, 0)}),
        "down": Head("down", old, {2: Pointer(2, "v", "h", old, old, 1, 1, 1, "down", 1, 0)}),
    }
    polls = {"down": LastPoll("down", "failed", now, 0.5, error_code="timeout")}

    class Reads:
        def head(self, source: str, *, consistent: bool = True) -> Any:
            return heads.get(source)

        def last_poll(self, source: str) -> Any:
            return polls.get(source)

    rows = registry_status(registry, Reads(), Reads(), now_ms=now, stale_after_s=STALE_AFTER_S)
    assert [(r.name, r.state, r.stale, r.state_words) for r in rows] == [
        ("down", "failing", True, "failing, stale"),
        ("ok", "ok", False, "ok"),
    ]
