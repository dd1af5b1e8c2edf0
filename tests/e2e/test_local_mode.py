"""Local mode end to end: started as `make run` starts it (`python -m local`), on free ports, driven over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support.jwt_keys as keys
from support.club_servers import LoopbackServer, respond, serve
from support.local_mode import ROOT, alive, bearer, control, eventually, free_port, next_poll

pytestmark = pytest.mark.timeout(240)


def test_demo_from_token_to_calls_and_through_club_changes_and_outages(start: Any) -> None:
    clients = {
        "clients": [
            {"client_id": "cappi-demo-tester", "client_secret": "cappi-demo-secret", "scopes": ["read:callids"]},
            {"client_id": "club-213-app", "client_secret": "s3cret-213", "scopes": ["read:callids"], "clubs": [213]},
        ]
    }
    clients_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"cappi-clients-{os.getpid()}.json"
    clients_file.write_text(json.dumps(clients))
    local = start(CAPPI_INGEST_INTERVAL="2", CAPPI_CLIENTS_FILE=str(clients_file), CAPPI_POINTER_MAX_AGE_S="1")
    local.wait_for(r"/api/CallData/OpenCalls/212/DEMO1/ids")  # the printed example: first polls are done
    output = local.output()
    assert "client_id cappi-demo-tester" in output
    assert "curl -s -X POST" in output

    token = local.token()
    status, calls = local.calls(212, "DEMO1", token)
    assert status == 200
    assert calls  # the demo tech always has open calls
    assert all(re.fullmatch(r"\d{7}", c) for c in calls)

    # The club changes its feed: the next poll publishes it.
    control(local, "demo-small", calls=[[1111111, 212, "PINNED1"], [2222222, 212, "pinned1"]])
    next_poll(local, "demo-small")
    eventually(lambda: local.calls(212, "PINNED1", token), (200, ["1111111", "2222222"]))
    assert local.calls(212, "DEMO1", token) == (200, [])

    # The club goes down, then serves garbage, then an HTML page: the last good snapshot stays.
    for mode in ("down", "garbage", "html"):
        control(local, "demo-small", mode=mode)
        mark = len(local.lines)
        local.wait_for(r"ingest demo-small: (failed|rejected)", after=mark)
        local.wait_for(r"ingest demo-small: (failed|rejected)", after=len(local.lines))
        time.sleep(1.5)  # past the pointer cache age: what readers see now is what the store holds
        assert local.calls(212, "PINNED1", token) == (200, ["1111111", "2222222"])
    control(local, "demo-small", mode="normal")

    # A club-scoped client reads its club and is refused another.
    scoped = local.token("club-213-app", "s3cret-213")
    assert local.calls(213, "DEMO1", scoped)[0] == 200
    status, body = local.calls(212, "DEMO1", scoped)
    assert (status, body["error"]) == (403, "forbidden_club")

    # The form-encoded token request Auth0 also accepts.
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=10)
    form = f"grant_type=client_credentials&client_id=cappi-demo-tester&client_secret=cappi-demo-secret&audience=http://127.0.0.1:{local.port}"
    conn.request("POST", "/oauth/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 200

    # Ctrl-C stops everything and leaves no process behind.
    children = local.children()
    assert children  # the ingest workers
    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(children) == {}
    assert "cappi local: stopped." in local.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", local.port), timeout=2)
    clients_file.unlink()


@pytest.fixture
def club_feed() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route("/feed/service/calls/status", respond(body=feed((7654321, 42, "tech9"), (1234567, 42, "TECH9"))))
        yield server


def feed(*rows: tuple[int, int, str]) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubID": k, "TechID": t} for c, k, t in rows]}}).encode()


@pytest.fixture
def issuer() -> Iterator[tuple[LoopbackServer, keys.RsaKey]]:
    key = keys.rsa_key("test-issuer-key")
    with serve() as server:
        server.route("/.well-known/jwks.json", respond(body=keys.jwks(key)))
        yield server, key


def test_every_contract_variable_with_a_real_club_server_and_another_issuer(
    start: Any, club_feed: LoopbackServer, issuer: tuple[LoopbackServer, keys.RsaKey], tmp_path: Path
) -> None:
    jwks_server, key = issuer
    issuer_url = jwks_server.base_url + "/"
    audience = "https://cappi.test.example"
    registry = tmp_path / "clubs.json"
    registry.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "name": "my-club",
                        "club_ids": [42],
                        "base_url": club_feed.base_url + "/feed",
                        "auth": {"type": "bearer", "secret": "my/club/token"},
                    }
                ]
            }
        )
    )
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"my/club/token": "tok-123"}))
    local = start(
        CAPPI_CLUBS_FILE=str(registry),
        CAPPI_SECRETS_FILE=str(secrets),
        CAPPI_INGEST_INTERVAL="30",
        CAPPI_ISSUER=issuer_url,
        CAPPI_AUDIENCE=audience,
    )
    local.wait_for(r"ingest my-club: club 42 published \(2 calls, 1 techs\)")
    assert club_feed.requests_to("/feed/service/calls/status")[0].headers["authorization"] == "Bearer tok-123"
    assert f"trusted issuer       {issuer_url}" in local.output()

    def sign(**claims: Any) -> str:
        return key.sign(keys.claims(iss=issuer_url, aud=audience, **claims))

    assert local.calls(42, "tech9", sign()) == (200, ["1234567", "7654321"])
    now = int(time.time())
    refused = {
        "expired": sign(iat=now - 7200, exp=now - 3600),
        "not yet valid": sign(nbf=now + 3600),
        "wrong issuer": key.sign(keys.claims(iss="https://stage-clubassist.auth0.com/", aud=audience)),
        "wrong audience": key.sign(keys.claims(iss=issuer_url, aud=f"http://127.0.0.1:{local.port}")),
        "unknown key": keys.rsa_key("other").sign(keys.claims(iss=issuer_url, aud=audience)),
        "forged": keys.rsa_key("test-issuer-key").sign(keys.claims(iss=issuer_url, aud=audience)),
        "alg none": keys.unsigned({"alg": "none", "kid": "test-issuer-key"}, keys.claims(iss=issuer_url, aud=audience)),
        "HS256 with public key": keys.hs256_with_secret(
            {"alg": "HS256", "kid": "test-issuer-key"}, keys.claims(iss=issuer_url, aud=audience), key.public_pem()
        ),
        "garbage": "garbage",
    }
    for label, token in refused.items():
        status, headers, body = local.http("GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, bearer(token))
        assert (status, body) == (401, {"message": "Unauthorized"}), label
        assert headers["www-authenticate"].startswith("Bearer"), label
    for header in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        status, _, body = local.http("GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, header)
        assert (status, body) == (401, {"message": "Unauthorized"}), header
    status, _, body = local.http("GET", "/api/CallData/OpenCalls/42/TECH9/ids", None, bearer(sign(scope="openid")))
    assert (status, body) == (403, {"message": "Forbidden"})
    status, _, body = local.http("GET", "/nope")
    assert (status, body) == (404, {"message": "Not Found"})
    # With another issuer trusted, the local issuer is not served.
    assert local.http("POST", "/oauth/token", {"grant_type": "client_credentials"})[0] == 404

    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0


def test_port_zero_serves_on_the_port_the_system_picked(start: Any) -> None:
    local = start(CAPPI_PORT="0")
    local.port = int(local.wait_for(r"API \+ token issuer   http://127\.0\.0\.1:(\d+)").group(1))
    assert local.port != 0
    local.wait_for(rf"curl .* http://127\.0\.0\.1:{local.port}/api/CallData/OpenCalls/212/DEMO1/ids")
    status, calls = local.calls(212, "DEMO1", local.token())
    assert status == 200
    assert calls
    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0


def test_a_required_scope_override_holds_at_the_authorizer_and_in_the_handler(start: Any, tmp_path: Path) -> None:
    clients = {
        "clients": [
            {"client_id": "cappi-demo-tester", "client_secret": "cappi-demo-secret", "scopes": ["read:callids"]},
            {"client_id": "custom-app", "client_secret": "s3cret-custom", "scopes": ["read:custom"]},
        ]
    }
    clients_file = tmp_path / "clients.json"
    clients_file.write_text(json.dumps(clients))
    local = start(CAPPI_REQUIRED_SCOPE="read:custom", CAPPI_CLIENTS_FILE=str(clients_file))
    local.wait_for(r"/api/CallData/OpenCalls/212/DEMO1/ids")  # first polls are done
    status, calls = local.calls(212, "DEMO1", local.token("custom-app", "s3cret-custom"))
    assert status == 200
    assert calls
    status, _, body = local.http("GET", "/api/CallData/OpenCalls/212/DEMO1/ids", None, bearer(local.token()))
    assert (status, body) == (403, {"message": "Forbidden"})  # the authorizer's refusal, before the handler
    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0


def test_bad_settings_fail_fast_with_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "CAPPI_PORT": str(free_port()), "CAPPI_STATE_DIR": str(tmp_path)}
    for extra, message in [
        ({"CAPPI_CLUBS_FILE": str(tmp_path / "missing.json")}, "no such file"),
        ({"CAPPI_INGEST_INTERVAL": "soon"}, "CAPPI_INGEST_INTERVAL"),
        ({"CAPPI_ISSUER": "https://no-slash.example"}, "must end with '/'"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert message in done.stdout + done.stderr
    bad_registry = tmp_path / "bad.json"
    bad_registry.write_text(json.dumps({"sources": [{"name": "x", "club_ids": [1], "base_url": "http://example.org"}]}))
    done = subprocess.run(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env={**env, "CAPPI_CLUBS_FILE": str(bad_registry)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "field 'base_url'" in done.stdout


def test_cappi_status_finds_the_running_local_mode_and_every_demo_club_fresh(start: Any) -> None:
    local = start()
    local.wait_for(r"curl .*/api/CallData/OpenCalls/\d+/\w+/ids")  # a real technician: every demo club was polled
    cappi = Path(sys.executable).parent / "cappi"
    env = {**os.environ, "CAPPI_STATE_DIR": str(local.state_dir)}
    done = subprocess.run([cappi, "status", "--json"], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sources = json.loads(done.stdout)["sources"]
    assert {s["name"]: s["state"] for s in sources} == {"demo-small": "ok", "demo-medium": "ok", "demo-large": "ok"}
    assert all(s["calls"] > 0 and s["last_poll_status"] == "ok" for s in sources)

    def cappi_run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [cappi, *args]
        return subprocess.run(command, check=False, env=env, input=stdin, capture_output=True, text=True, timeout=90)

    checked = cappi_run("check-feed", "--source", "demo-medium", "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert (report["would"], report["http"]["status"]) == ("publish", 200)
    assert report["accepted"] > 1000
    planned = cappi_run("check-feed", "--source", "demo-medium", "--plan", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)["plan"]
    assert plan["clubs"] and all(c["calls_now"] is not None and "drop_guard" in c for c in plan["clubs"])
    assert plan["would"] in ("publish", "hold")

    polled = cappi_run("poll", "demo-small", "--json")
    assert polled.returncode == 0, polled.stderr
    assert json.loads(polled.stdout)["status"] == "ok"
    stored = cappi_run("secrets", "set", "demo-small", stdin="not-the-club-token\n")
    assert stored.returncode == 0, stored.stderr
    assert "not-the-club-token" not in stored.stdout + stored.stderr
    refused = cappi_run("poll", "demo-small")
    assert refused.returncode == 1
    assert "auth_failed" in refused.stdout
    assert "not-the-club-token" not in refused.stdout + refused.stderr
    failing = cappi_run("status", "--json")
    assert failing.returncode == 1
    states = {s["name"]: s["state"] for s in json.loads(failing.stdout)["sources"]}
    assert states["demo-small"] == "failing"
    assert "not-the-club-token" not in failing.stdout + failing.stderr

    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0
    gone = subprocess.run([cappi, "status"], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2
    assert "local mode is not running" in gone.stderr


def test_a_custom_clubs_file_gets_examples_from_its_first_poll_and_a_missing_secret_is_named(
    start: Any, club_feed: LoopbackServer, tmp_path: Path
) -> None:
    registry = tmp_path / "clubs.json"
    sources = [
        {"name": "open-club", "club_ids": [42], "base_url": club_feed.base_url + "/feed"},
        {
            "name": "locked-club",
            "club_ids": [43],
            "base_url": club_feed.base_url + "/locked",
            "auth": {"type": "bearer", "secret": "locked/club/token"},
        },
    ]
    registry.write_text(json.dumps({"sources": sources}))
    local = start(CAPPI_CLUBS_FILE=str(registry))
    assert "no value for secret locked/club/token (source locked-club)" in local.output()
    local.wait_for(r"curl -s -H \"Authorization: Bearer \$TOKEN\" .*/api/CallData/OpenCalls/42/TECH9/ids")
    assert local.calls(42, "TECH9", local.token())[0] == 200
