"""`cappi check-feed --source S --plan` against local mode's AWS stand-in (moto's server on loopback) holding a
published snapshot, the source's feed served by a loopback club: the calls the feed would open and close per
technician, counts first, and whether the drop guard would hold it (new, held, confirming, unchanged, rejected)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.club_servers import LoopbackServer, respond, serve
from support.stores import stores

from cappi.contracts.local_state import ENDPOINTS_FILE
from cappi.domain.publish import Outcome, publish_source
from cappi.domain.snapshot import build_club_snapshot
from cli.main import main
from local.aws import TABLE_NAME, LocalAws

FEED = "/service/calls/status"
SOURCE = "plan-club"
CLUB = 212


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    local = LocalAws()
    local.start()
    local.create_table()
    yield local
    local.stop()


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        yield server


@pytest.fixture
def state_dir(tmp_path: Path, aws: LocalAws, club: LoopbackServer) -> Path:
    clubs_file = tmp_path / "clubs.json"
    source = {"name": SOURCE, "club_ids": [CLUB, 213], "base_url": club.base_url, "enabled": True}
    clubs_file.write_text(json.dumps({"sources": [source]}))
    client = table_client(aws)
    for page in client.get_paginator("scan").paginate(TableName=TABLE_NAME):
        for item in page["Items"]:
            client.delete_item(TableName=TABLE_NAME, Key={"pk": item["pk"], "sk": item["sk"]})
    endpoints = {
        "api": "http://127.0.0.1:3000",
        "dynamodb": aws.endpoint_url,
        "region": "us-east-1",
        "table": TABLE_NAME,
        "clubs_file": str(clubs_file),
        "stale_after_s": 1800,
    }
    (tmp_path / ENDPOINTS_FILE).write_text(json.dumps(endpoints))
    return tmp_path


def table_client(aws: LocalAws) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def publish(aws: LocalAws, techs: dict[str, list[int]], *, ago_ms: int = 60_000) -> list[Outcome]:
    store = stores(table_client(aws), TABLE_NAME)
    at = int(time.time() * 1000) - ago_ms
    snapshots = [build_club_snapshot(CLUB, techs), build_club_snapshot(213, {})]  # the source's other club: empty
    results = publish_source(store.writer, SOURCE, snapshots, at)
    return [r.outcome for r in results]


def serve_feed(club: LoopbackServer, techs: dict[str, list[int]]) -> None:
    rows = [{"CallId": c, "ClubId": CLUB, "TechId": t} for t, calls in techs.items() for c in calls]
    club.route(FEED, respond(body=json.dumps({"Result": {"Calls": rows}}).encode()))


def check(capsys: pytest.CaptureFixture[str], state_dir: Path, *more: str) -> tuple[int, str, str]:
    code = main(["check-feed", "--source", SOURCE, "--plan", "--state-dir", str(state_dir), *more])
    out, err = capsys.readouterr()
    return code, out, err


def plan_of(capsys: pytest.CaptureFixture[str], state_dir: Path) -> tuple[int, dict[str, Any]]:
    code, out, _ = check(capsys, state_dir, "--json")
    return code, json.loads(out)


def test_calls_opened_and_closed_per_technician_counts_first(
    aws: LocalAws, club: LoopbackServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(aws, {"AB12": [1, 2, 3], "CD34": [4], "GH78": [7]})
    serve_feed(club, {"AB12": [1, 2, 5], "EF56": [6], "GH78": [7]})
    code, report = plan_of(capsys, state_dir)
    assert (code, report["verdict"], report["plan"]["would"]) == (0, "pass", "publish")
    by_club = {c["club_id"]: c for c in report["plan"]["clubs"]}
    club_212 = by_club[CLUB]
    assert club_212["outcome"] == "published"
    assert (club_212["calls_now"], club_212["calls_after"]) == (5, 5)
    assert (club_212["opened"], club_212["closed"], club_212["techs_changed"]) == (2, 2, 3)
    assert (club_212["techs_new"], club_212["techs_gone"]) == (1, 1)
    changes = {t["tech_id"]: (t["opened"], t["closed"]) for t in club_212["technicians"]}
    assert changes == {"AB12": (["5"], ["3"]), "CD34": ([], ["4"]), "EF56": (["6"], [])}
    assert club_212["drop_guard"].startswith("does not apply")
    # Club 213 is the source's too, empty as published and in this feed: nothing changes for it.
    assert (by_club[213]["outcome"], by_club[213]["calls_now"], by_club[213]["opened"]) == ("unchanged", 0, 0)

    code, out, _ = check(capsys, state_dir)
    assert code == 0
    plan = out[out.index("Plan, against what testers see now:") :]
    counts = "club 212: published: 2 calls opened, 2 closed, for 3 technicians (1 new, 1 left with none); 5 calls now"
    assert counts in plan
    lines = plan.splitlines()
    first_example = next(i for i, line in enumerate(lines) if line.strip().startswith("AB12:"))
    assert lines.index(next(line for line in lines if counts in line)) < first_example  # counts first
    assert "    AB12: opened 5; closed 3" in lines
    assert "    CD34: closed 4" in lines
    assert "    EF56: opened 6" in lines


def test_a_sudden_drop_would_be_held_and_a_second_one_confirmed(
    aws: LocalAws, club: LoopbackServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(aws, {"AB12": list(range(1, 201))}, ago_ms=120_000)
    serve_feed(club, {"AB12": [1, 2, 3]})
    code, report = plan_of(capsys, state_dir)
    assert (code, report["would"], report["plan"]["would"]) == (0, "hold", "hold")
    (club_212,) = [c for c in report["plan"]["clubs"] if c["club_id"] == CLUB]
    assert (club_212["outcome"], club_212["closed"], club_212["opened"]) == ("held", 197, 0)
    assert club_212["drop_guard"].startswith("holds it: 3 calls where 200 are published")
    (tech,) = club_212["technicians"]
    assert (tech["closed"], tech["closed_count"]) == (["4", "5", "6", "7", "8"], 197)  # examples capped, count whole

    _, out, _ = check(capsys, state_dir)
    assert "drop guard: holds it: 3 calls where 200 are published" in out
    assert "AB12: closed 4, 5, 6, 7, 8 (+192 more)" in out

    # The drop seen once by ingest (held): the same feed now confirms it, as publish_source would.
    assert publish(aws, {"AB12": [1, 2, 3]}) == [Outcome.HELD, Outcome.UNCHANGED]
    _, report = plan_of(capsys, state_dir)
    (club_212,) = [c for c in report["plan"]["clubs"] if c["club_id"] == CLUB]
    assert club_212["outcome"] == "published"
    assert club_212["drop_guard"].startswith("confirms the drop held at the previous poll")
    assert (report["would"], report["verdict"]) == ("publish", "pass")
    # Without --plan too: the head's entry says the drop was held once.
    code = main(["check-feed", "--source", SOURCE, "--state-dir", str(state_dir), "--json"])
    out = capsys.readouterr().out
    assert (code, json.loads(out)["would"]) == (0, "publish")


def test_the_same_lists_change_nothing(
    aws: LocalAws, club: LoopbackServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(aws, {"AB12": [1, 2]})
    serve_feed(club, {"AB12": [2, 1]})
    code, report = plan_of(capsys, state_dir)
    assert (code, report["plan"]["summary"]) == (0, "nothing would change: testers already see these lists")
    assert {c["outcome"] for c in report["plan"]["clubs"]} == {"unchanged"}


def test_a_club_never_published_gets_its_first_list(
    aws: LocalAws, club: LoopbackServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_feed(club, {"AB12": [1, 2]})
    code, report = plan_of(capsys, state_dir)
    assert (
        report["plan"]["summary"] == "testers would see new lists for clubs 212 (its first list), 213 (its first list)"
    )
    (club_212,) = [c for c in report["plan"]["clubs"] if c["club_id"] == CLUB]
    assert (code, club_212["calls_now"], club_212["opened"], club_212["techs_new"]) == (0, None, 2, 1)


def test_a_rejected_feed_changes_nothing_and_keeps_its_exit_code(
    aws: LocalAws, club: LoopbackServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(aws, {"AB12": [1, 2]})
    club.route(FEED, respond(body=b"<!DOCTYPE html><html><body>Maintenance</body></html>"))
    code, report = plan_of(capsys, state_dir)
    assert (code, report["verdict"], report["plan"]["would"]) == (1, "fail", "reject")
    assert report["plan"]["summary"].startswith("nothing would change: the feed would be rejected (not_json)")
    (club_212,) = [c for c in report["plan"]["clubs"] if c["club_id"] == CLUB]
    assert (club_212["calls_now"], club_212["calls_after"], club_212["closed"]) == (2, 2, 0)


def test_plan_needs_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "feed.json"
    path.write_bytes(b'{"Result": {"Calls": []}}')
    assert main(["check-feed", "--file", str(path), "--plan"]) == 2
    assert "--plan needs --source" in capsys.readouterr().err
