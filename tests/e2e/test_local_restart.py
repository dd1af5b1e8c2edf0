"""Local mode keeps its state across restarts: the issuer's signing key and the published snapshots."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.club_servers import LoopbackServer, respond, serve
from support.local_mode import LocalMode, Starter, bearer

pytestmark = pytest.mark.timeout(240)
FEED = "/feed/service/calls/status"


def feed(*rows: tuple[int, int, str]) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubID": k, "TechID": t} for c, k, t in rows]}}).encode()


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route(FEED, respond(body=feed((7654321, 42, "tech9"), (1234567, 42, "TECH9"))))
        yield server


def stop(local: LocalMode) -> None:
    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0, local.output()


def test_a_token_and_the_snapshots_survive_a_restart_and_fresh_forgets_both(
    start: Starter, club: LoopbackServer, tmp_path: Path
) -> None:
    registry = tmp_path / "clubs.json"
    source = {"name": "club-42", "club_ids": [42], "base_url": club.base_url + "/feed"}
    registry.write_text(json.dumps({"sources": [source]}))
    state = tmp_path / "state"
    env = {"CAPPI_CLUBS_FILE": str(registry)}

    first = start(state_dir=state, **env)
    first.wait_for(r"ingest club-42: club 42 published")
    token = first.token()
    status, headers, before = first.http("GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, bearer(token))
    assert (status, before) == (200, ["1234567", "7654321"])
    stop(first)
    for name in ("issuer-key.pem", "snapshots.json"):
        mode = stat.S_IMODE(os.stat(state / name).st_mode)
        assert mode == 0o600, (name, oct(mode))

    # The club is down now: whatever the next run answers comes from what the last one kept.
    club.route(FEED, respond(500, b"down for maintenance"))
    second = start(state_dir=state, port=first.port, **env)
    assert "Kept from the last run" in second.output()
    status, again, body = second.http("GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, bearer(token))
    assert (status, body) == (200, before), "a token from before the restart, answered from the kept snapshot"
    assert (again["etag"], again["last-modified"]) == (headers["etag"], headers["last-modified"])
    second.wait_for(r"ingest club-42: failed")
    assert second.calls(42, "TECH9", token) == (200, before)  # a failed poll never erases the kept calls
    stop(second)

    third = start(state_dir=state, port=first.port, CAPPI_FRESH="1", **env)
    assert "Kept from the last run" not in third.output()
    assert third.calls(42, "TECH9", token)[0] == 401  # a new signing key: the old token's kid is unknown
    status, body = third.calls(42, "TECH9", third.token())
    assert (status, body["error"]) == (503, "no_snapshot_yet")


def test_a_crash_right_after_a_publish_never_serves_an_older_list_after_restart(
    start: Starter, club: LoopbackServer, tmp_path: Path
) -> None:
    """kill -9 as soon as readers are served a new list: the next start, with the club down, serves that list."""
    registry = tmp_path / "clubs.json"
    source = {"name": "club-42", "club_ids": [42], "base_url": club.base_url + "/feed"}
    registry.write_text(json.dumps({"sources": [source]}))
    state = tmp_path / "state"
    env = {"CAPPI_CLUBS_FILE": str(registry), "CAPPI_INGEST_INTERVAL": "1", "CAPPI_POINTER_MAX_AGE_S": "0.1"}

    local = start(state_dir=state, **env)
    local.wait_for(r"ingest club-42: club 42 published")
    token = local.token()
    port = local.port
    for attempt, call_id in enumerate((2000001, 2000002, 2000003)):
        club.route(FEED, respond(body=feed((call_id, 42, "TECH9"))))
        deadline = time.monotonic() + 30
        while (served := local.calls(42, "TECH9", token)) != (200, [str(call_id)]):
            assert time.monotonic() < deadline, (served, local.output())
        local.process.kill()  # the moment a reader got the new list
        local.process.wait(timeout=10)

        club.route(FEED, respond(500, b"down for maintenance"))
        local = start(state_dir=state, port=port, **env)
        assert local.calls(42, "TECH9", token) == (200, [str(call_id)]), f"attempt {attempt}: an older list"
        local.wait_for(r"ingest club-42: failed")
        assert local.calls(42, "TECH9", token) == (200, [str(call_id)]), f"attempt {attempt}: an older list"
    stop(local)
