"""cappi-client against real local mode (`python -m local`): its token issuer, JWT authorizer and query handler.

One local mode serves the whole module (a start costs several seconds): the `start` fixture's `Starter`, module
scoped. Requests are observed through the client's `session_factory`, so the counts are of real HTTP requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from support.local_mode import LocalMode, Starter

from cappi_client import CappiClient, NotFound, local

pytestmark = pytest.mark.timeout(240)

DEMO_ID, DEMO_SECRET = "cappi-demo-tester", "cappi-demo-secret"


@pytest.fixture(scope="module")
def local_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMode]:
    starter = Starter(tmp_path_factory.mktemp("cappi-client-local"))
    try:
        running = starter()
        running.wait_for(r"/api/CallData/OpenCalls/212/DEMO1/ids")  # the printed example: first polls are done
        yield running
    finally:
        starter.stop_all()


class Recorder:
    """Every request the client's sessions send: method, URL, headers sent, status received."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], int]] = []
        self._lock = threading.Lock()

    def session(self) -> requests.Session:
        recorder = self

        class Recording(requests.Session):
            def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
                response = super().send(request, **kwargs)
                with recorder._lock:
                    recorder.seen.append(
                        (request.method or "", request.url or "", dict(request.headers), response.status_code)
                    )
                return response

        return Recording()

    def to(self, method: str, url_end: str) -> list[tuple[str, str, dict[str, str], int]]:
        return [s for s in self.seen if s[0] == method and s[1].endswith(url_end)]


def expected_calls(local_mode: LocalMode, tech: str = "DEMO1") -> list[str]:
    status, calls = local_mode.calls(212, tech, local_mode.token())
    assert status == 200
    return calls


def client_for(local_mode: LocalMode, recorder: Recorder) -> CappiClient:
    return CappiClient(
        local(local_mode.port), client_id=DEMO_ID, client_secret=DEMO_SECRET, session_factory=recorder.session
    )


def run_cli(local_mode: LocalMode, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAPPI_PORT": str(local_mode.port),
        "CAPPI_CLIENT_ID": DEMO_ID,
        "CAPPI_CLIENT_SECRET": DEMO_SECRET,
    }
    command = [sys.executable, "-m", "cappi_client", "open-calls", *args, "--env", "local"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_cli_prints_a_demo_technicians_calls_from_local_mode(local_mode: LocalMode, tmp_path: Path) -> None:
    cache = tmp_path / "tokens" / "tokens.json"
    done = run_cli(local_mode, "212", "demo1", "--token-cache", str(cache))
    assert (done.returncode, done.stderr) == (0, "")
    calls = json.loads(done.stdout)
    assert calls  # DEMO1 always has open calls
    assert calls == expected_calls(local_mode)

    # The next run takes the token from the file instead of asking for one (asking would rewrite the file).
    inode = cache.stat().st_ino
    again = run_cli(local_mode, "212", "DEMO1", "--token-cache", str(cache))
    assert (again.returncode, json.loads(again.stdout)) == (0, calls)
    assert cache.stat().st_ino == inode

    refused = run_cli(local_mode, "999", "DEMO1", "--no-token-cache")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "404 unknown_club: CAPPI does not serve club 999" in refused.stderr

    bad = run_cli(local_mode, "212", "DEMO-1", "--no-token-cache")
    assert bad.returncode == 2
    assert "invalid_tech_id" in bad.stderr


def test_the_consoles_cappi_client_command_finds_local_mode_without_cappi_port(
    local_mode: LocalMode, tmp_path: Path
) -> None:
    # Printed at start with a placeholder technician, then again with a real one once a poll published it.
    placeholder = local_mode.wait_for(r"cappi-client open-calls 212 '<TechId>' --env local")
    real = local_mode.wait_for(
        r"^  (CAPPI_STATE_DIR=\S+ CAPPI_CLIENT_ID=\S+ CAPPI_CLIENT_SECRET=\S+ cappi-client "
        r"open-calls (\d+) (\w+) --env local)$"
    )
    assert placeholder.string != real.string
    command, club, tech = real.groups()
    # As someone would paste it: in another directory, in a shell whose environment says nothing of local mode;
    # the command finds the instance by the endpoints file local mode wrote under its CAPPI_STATE_DIR.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPPI_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    calls = json.loads(done.stdout)
    assert calls
    assert calls == expected_calls(local_mode, tech) and club == "212"


def test_one_token_request_for_1000_calls_across_8_threads(local_mode: LocalMode) -> None:
    expected = expected_calls(local_mode)
    recorder = Recorder()
    client = client_for(local_mode, recorder)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _i: client.open_calls(212, "DEMO1"), range(1000)))
    client.close()
    assert results == [expected] * 1000
    assert [s[3] for s in recorder.to("POST", "/oauth/token")] == [200]
    queries = recorder.to("GET", "/api/CallData/OpenCalls/212/DEMO1/ids")
    assert len(queries) == 1000
    assert len({s[2]["Authorization"] for s in queries}) == 1
    assert {s[3] for s in queries} <= {200, 304}


def test_an_unchanged_answer_comes_back_as_304_and_from_the_cache(local_mode: LocalMode) -> None:
    expected = expected_calls(local_mode)
    recorder = Recorder()
    with client_for(local_mode, recorder) as client:
        assert client.open_calls(212, "DEMO1") == expected
        assert client.open_calls("212", "demo1") == expected
        with pytest.raises(NotFound) as refused:
            client.open_calls(999, "DEMO1")
    assert refused.value.code == "unknown_club"
    first, second = recorder.to("GET", "/api/CallData/OpenCalls/212/DEMO1/ids")
    assert (first[3], second[3]) == (200, 304)
    assert "If-None-Match" not in first[2]
    assert second[2]["If-None-Match"].startswith('"')


def test_503_backoff_nested_shape_and_a_401_after_a_fresh_restart(tmp_path: Path) -> None:
    """Against a local mode with a club of its own: the client waits out `no_snapshot_yet` as its Retry-After
    says, reads the document's nested one-result form, and survives the issuer's key changing under its cache."""
    from support.club_servers import respond, serve

    from cappi_client import Unavailable

    feed = "/feed/service/calls/status"
    good = json.dumps({"Result": {"Calls": [{"CallId": 1234567, "ClubID": 42, "TechID": "TECH9"}]}}).encode()
    starter = Starter(tmp_path)
    with serve() as club:
        club.route(feed, respond(503, b"warming up"))
        registry = tmp_path / "clubs.json"
        source = {"name": "club-42", "club_ids": [42], "base_url": club.base_url + "/feed"}
        registry.write_text(json.dumps({"sources": [source]}))
        env = {"CAPPI_CLUBS_FILE": str(registry), "CAPPI_INGEST_INTERVAL": "4", "CAPPI_NESTED_SINGLE_RESULT": "true"}
        try:
            first = starter(state_dir=tmp_path / "state", **env)
            first.wait_for(r"ingest club-42: failed")
            recorder = Recorder()

            def cached_client(port: int) -> CappiClient:  # both share one token file
                return CappiClient(
                    local(port),
                    client_id=DEMO_ID,
                    client_secret=DEMO_SECRET,
                    token_cache=tmp_path / "tokens.json",
                    session_factory=recorder.session,
                )

            client = cached_client(first.port)
            with pytest.raises(Unavailable) as pending:
                client.open_calls(42, "TECH9", deadline_s=1.0)
            assert pending.value.code == "no_snapshot_yet"
            assert pending.value.retry_after is not None
            assert 0 < pending.value.retry_after <= 6  # the next poll of a 4 s schedule, not a fixed minute

            club.route(feed, respond(body=good))
            assert client.open_calls(42, "TECH9", deadline_s=30.0) == ["1234567"]  # served as [["1234567"]]
            statuses = [s[3] for s in recorder.to("GET", "/api/CallData/OpenCalls/42/TECH9/ids")]
            assert statuses[-1] == 200
            assert set(statuses[:-1]) == {503}
            body = first.http(
                "GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, {"Authorization": f"Bearer {first.token()}"}
            )[2]
            assert body == [["1234567"]]
            first.process.send_signal(2)
            assert first.process.wait(timeout=60) == 0

            # A fresh start makes a new signing key: the cached token now gets a 401, and the client fetches
            # one new token and carries on.
            second = starter(state_dir=tmp_path / "state", port=first.port, CAPPI_FRESH="1", **env)
            second.wait_for(r"ingest club-42: club 42 published")
            again = cached_client(second.port)
            before = len(recorder.to("POST", "/oauth/token"))
            assert again.open_calls(42, "TECH9") == ["1234567"]
            assert len(recorder.to("POST", "/oauth/token")) == before + 1
            assert [s[3] for s in recorder.to("GET", "/api/CallData/OpenCalls/42/TECH9/ids")][-2:] == [401, 200]
        finally:
            starter.stop_all()
