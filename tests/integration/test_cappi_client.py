"""cappi-client (clients/python) against small HTTP servers on loopback that play CAPPI and its token endpoint.

What a tester app relies on: one token request however many threads call, refresh before expiry and after a 401,
tokens shared across processes in an owner-only file, retries that honour Retry-After inside one deadline, no
request at all for an ID CAPPI would refuse, both body shapes, ETag reuse, typed errors, and the command's exit codes.
Time is injected (`FakeTime`), so no test sleeps for a backoff or waits for a token to expire.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import requests
from support.club_servers import Handler, LoopbackServer, in_turn, respond, serve

import cappi_client
from cappi_client import (
    ApiError,
    BadRequest,
    CappiClient,
    Clock,
    DeadlineExceeded,
    Environment,
    Forbidden,
    InvalidClubId,
    InvalidId,
    InvalidTechId,
    NotFound,
    ProtocolError,
    TokenError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from cappi_client.cli import main

TOKEN_PATH = "/oauth/token"
CALLS = "/api/CallData/OpenCalls/212/AB12/ids"
CLIENT_ID = "tester-app"
SECRET = "s3cret-never-stored-9f2c"
ROOT = Path(__file__).resolve().parents[2]


class FakeTime:
    """Both clocks run on real time plus whatever was "slept", and every sleep is recorded instead of taken."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.offset += seconds

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def clock(self) -> Clock:
        return Clock(time=self.time, monotonic=self.monotonic, sleep=self.sleep, random=lambda: 0.5)


class Issuer:
    """A token endpoint that hands out `tok-1`, `tok-2`, ... and remembers each request's form."""

    def __init__(self, expires_in: object = 86_400, delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.issued: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, h: Handler) -> None:
        if self.delay:
            time.sleep(self.delay)  # widens the window in which other threads would ask too
        with self._lock:
            token = f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in, "scope": "read:callids"}
        respond(200, json.dumps(body).encode(), headers={"Cache-Control": "no-store"})(h)


def api(calls: Any = ("8655R", "8679"), *, accept: Callable[[str], bool] = lambda _token: True) -> Callable:
    """CAPPI's query endpoint: 401 as API Gateway says it for a token `accept` refuses, else the calls."""

    def run(h: Handler) -> None:
        token = h.headers.get("Authorization", "").removeprefix("Bearer ")
        if not accept(token):
            body = b'{"message":"Unauthorized"}'
            respond(401, body, headers={"WWW-Authenticate": 'Bearer realm="cappi"'})(h)
            return
        respond(200, json.dumps(list(calls)).encode())(h)

    return run


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve() as s:
        yield s


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def environment(server: LoopbackServer, audience: str | None = None) -> Environment:
    return Environment.custom(server.base_url, server.url(TOKEN_PATH), audience)


def make_client(server: LoopbackServer, fake_time: FakeTime | None = None, **options: Any) -> CappiClient:
    audience = options.pop("audience", None)
    clock = fake_time.clock() if fake_time is not None else options.pop("clock", None)
    return CappiClient(environment(server, audience), client_id=CLIENT_ID, client_secret=SECRET, clock=clock, **options)


def token_requests(server: LoopbackServer) -> list:
    return server.requests_to(TOKEN_PATH, "POST")


def gets(server: LoopbackServer, path: str = CALLS) -> list:
    return server.requests_to(path)


# --- tokens ---


def test_one_token_request_for_1000_calls_across_8_threads(server: LoopbackServer) -> None:
    issuer = Issuer(delay=0.2)
    server.route(TOKEN_PATH, issuer, method="POST")
    server.route(CALLS, api())
    client = make_client(server)
    barrier = threading.Barrier(8)

    def call(i: int) -> list[str]:
        if i < 8:
            barrier.wait()  # the first eight calls start together, before any token exists
        return client.open_calls(212, "AB12")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(1000)))

    assert results == [["8655R", "8679"]] * 1000
    assert len(token_requests(server)) == 1
    assert client.tokens.requests_made == 1
    assert {s.headers["authorization"] for s in gets(server)} == {"Bearer tok-1"}
    assert len(gets(server)) == 1000
    form = json.loads(token_requests(server)[0].body)
    assert form == {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "audience": server.base_url,
        "grant_type": "client_credentials",
    }
    client.close()


def test_each_thread_gets_its_own_session_and_close_closes_them_all(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    made: list[requests.Session] = []
    closed: list[requests.Session] = []

    class Tracked(requests.Session):
        def close(self) -> None:
            closed.append(self)
            super().close()

    def factory() -> requests.Session:
        session = Tracked()
        made.append(session)
        return session

    client = make_client(server, session_factory=factory)
    threads = [threading.Thread(target=lambda: [client.open_calls(212, "AB12") for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.open_calls(212, "AB12")
    assert len(made) == 4  # three threads and this one, each reusing its own
    assert len({s.client_port for s in gets(server)}) == 4  # and its own keep-alive connection
    client.close()
    assert {id(s) for s in closed} == {id(s) for s in made}  # `made` keeps them alive, so all four are known
    assert client.open_calls(212, "AB12") == ["8655R", "8679"]  # usable after close: a new session
    assert len(made) == 5


def test_token_is_refreshed_a_leeway_before_it_expires(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(expires_in=3600), method="POST")
    server.route(CALLS, api())
    client = make_client(server, fake_time)
    client.open_calls(212, "AB12")
    fake_time.advance(3600 - 61)  # leeway 60 s: still fresh
    client.open_calls(212, "AB12")
    assert len(token_requests(server)) == 1
    fake_time.advance(2)  # inside the last minute: refreshed
    client.open_calls(212, "AB12")
    assert len(token_requests(server)) == 2
    assert [s.headers["authorization"] for s in gets(server)] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@pytest.mark.parametrize(
    ("expires_in", "reused_until", "refreshed_at"),
    [
        (5, 4.4, 4.6),  # shorter than the 60 s leeway: 10% of its lifetime (0.5 s) instead, not refreshed every call
        ("600", 539, 541),  # a quoted number of seconds still counts
    ],
)
def test_short_lived_tokens_use_a_proportional_leeway(
    server: LoopbackServer, fake_time: FakeTime, expires_in: object, reused_until: float, refreshed_at: float
) -> None:
    server.route(TOKEN_PATH, Issuer(expires_in=expires_in), method="POST")
    server.route(CALLS, api())
    client = make_client(server, fake_time)
    client.open_calls(212, "AB12")
    fake_time.advance(reused_until)
    client.open_calls(212, "AB12")
    assert len(token_requests(server)) == 1
    fake_time.advance(refreshed_at - reused_until)
    client.open_calls(212, "AB12")
    assert len(token_requests(server)) == 2


def test_a_token_that_expires_at_once_serves_its_own_call(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(expires_in=0), method="POST")
    server.route(CALLS, api())
    client = make_client(server)
    assert client.open_calls(212, "AB12") == ["8655R", "8679"]
    assert client.open_calls(212, "AB12") == ["8655R", "8679"]
    assert len(token_requests(server)) == 2  # one per call, and each call succeeds with its own


def test_a_401_drops_the_token_and_retries_once_with_a_fresh_one(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api(accept=lambda token: token != "tok-1"))  # tok-1 was revoked, say
    client = make_client(server)
    assert client.open_calls(212, "AB12") == ["8655R", "8679"]
    assert [s.headers["authorization"] for s in gets(server)] == ["Bearer tok-1", "Bearer tok-2"]
    client.open_calls(212, "AB12")
    assert len(token_requests(server)) == 2  # tok-2 is kept


def test_a_second_401_gives_up_with_api_gateways_message(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api(accept=lambda _token: False))
    client = make_client(server)
    with pytest.raises(Unauthorized) as caught:
        client.open_calls(212, "AB12")
    assert (caught.value.status, caught.value.code, caught.value.message) == (401, None, "Unauthorized")
    assert len(token_requests(server)) == 2
    assert len(gets(server)) == 2


def test_threads_hit_by_the_same_401_cause_one_new_token(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(delay=0.05), method="POST")
    server.route(CALLS, api(accept=lambda token: token != "tok-1"))
    client = make_client(server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _i: client.open_calls(212, "AB12"), range(200)))
    assert results == [["8655R", "8679"]] * 200
    assert len(token_requests(server)) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "description"),
    [
        (401, {"error": "access_denied", "error_description": "Unauthorized"}, "access_denied", "Unauthorized"),
        (403, {"error": "access_denied", "error_description": "Client is not authorized"}, "access_denied", None),
        (400, {"error": "invalid_request", "error_description": "Missing client_id"}, "invalid_request", None),
    ],
)
def test_a_refused_token_request_is_a_token_error_with_the_oauth_fields(
    server: LoopbackServer, status: int, body: dict, error: str, description: str | None
) -> None:
    server.route(TOKEN_PATH, respond(status, json.dumps(body).encode()), method="POST")
    server.route(CALLS, api())
    with pytest.raises(TokenError) as caught:
        make_client(server).open_calls(212, "AB12")
    assert (caught.value.status, caught.value.error) == (status, error)
    assert caught.value.error_description == (description or body["error_description"])
    assert SECRET not in str(caught.value)
    assert len(token_requests(server)) == 1  # a refusal is not retried
    assert gets(server) == []


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b'{"token_type": "Bearer"}', b'{"access_token": "t", "token_type": "mac"}', b"[]"],
)
def test_a_malformed_token_response_is_a_token_error(server: LoopbackServer, body: bytes) -> None:
    server.route(TOKEN_PATH, respond(200, body), method="POST")
    with pytest.raises(TokenError):
        make_client(server).open_calls(212, "AB12")
    assert gets(server) == []


# --- the token file ---


def run_second_process(server: LoopbackServer, cache: Path, audience: str | None = None) -> list[str]:
    code = (
        "import json, sys\n"
        "from cappi_client import CappiClient, Environment\n"
        "env = Environment.custom(sys.argv[1], sys.argv[2], sys.argv[3] or None)\n"
        "client = CappiClient(env, client_id=sys.argv[4], client_secret=sys.argv[5], token_cache=sys.argv[6])\n"
        "print(json.dumps(client.open_calls(212, 'AB12')))\n"
    )
    args = [server.base_url, server.url(TOKEN_PATH), audience or "", CLIENT_ID, SECRET, str(cache)]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_token_file_is_reused_by_another_process_and_ignored_for_another_audience(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    cache = tmp_path / "state" / "cappi" / "tokens.json"
    make_client(server, token_cache=cache).open_calls(212, "AB12")
    assert len(token_requests(server)) == 1

    assert run_second_process(server, cache) == ["8655R", "8679"]
    assert len(token_requests(server)) == 1  # the second process found tok-1 in the file
    assert gets(server)[-1].headers["authorization"] == "Bearer tok-1"

    other = "https://another-audience.example"
    assert run_second_process(server, cache, audience=other) == ["8655R", "8679"]
    assert len(token_requests(server)) == 2  # an entry for another audience is never sent
    assert json.loads(token_requests(server)[-1].body)["audience"] == other
    assert gets(server)[-1].headers["authorization"] == "Bearer tok-2"

    # Both entries live side by side: the first audience still finds its own token.
    assert run_second_process(server, cache) == ["8655R", "8679"]
    assert len(token_requests(server)) == 2
    assert gets(server)[-1].headers["authorization"] == "Bearer tok-1"


def test_the_token_file_is_owner_only_and_never_holds_the_secret(server: LoopbackServer, tmp_path: Path) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    cache = tmp_path / "new-dir" / "tokens.json"
    old_umask = os.umask(0o022)  # a common umask, which would make files 0644 if the cache did not take care
    try:
        make_client(server, token_cache=cache).open_calls(212, "AB12")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    text = cache.read_text()
    assert "tok-1" in text
    assert SECRET not in text
    assert [p.name for p in cache.parent.iterdir()] == ["tokens.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("content", "mode"),
    [
        (b"{not json", 0o600),
        (b'{"format": 1, "tokens": {"x": 5}}', 0o600),
        (b"\xff\xfe binary", 0o600),
        (None, 0o644),  # a valid file others may read: ignored as tampered with or leaked
    ],
)
def test_a_corrupt_or_unsafe_token_file_is_ignored_not_fatal(
    server: LoopbackServer, tmp_path: Path, content: bytes | None, mode: int
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    cache = tmp_path / "tokens.json"
    if content is None:
        make_client(server, token_cache=cache).open_calls(212, "AB12")  # a valid file holding tok-1
    else:
        cache.write_bytes(content)
    cache.chmod(mode)
    before = len(token_requests(server))
    assert make_client(server, token_cache=cache).open_calls(212, "AB12") == ["8655R", "8679"]
    assert len(token_requests(server)) == before + 1
    assert json.loads(cache.read_text())["format"] == 1  # rewritten, valid
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_a_401_also_drops_the_token_from_the_file(server: LoopbackServer, tmp_path: Path) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api(accept=lambda token: token != "tok-1"))
    cache = tmp_path / "tokens.json"
    make_client(server, token_cache=cache).open_calls(212, "AB12")
    text = cache.read_text()
    assert "tok-2" in text
    assert "tok-1" not in text


class CheckingIssuer(Issuer):
    """An Issuer that, as Auth0 does, refuses a client secret other than SECRET with 401 access_denied (one request
    at a time: it reads the request the server saw last)."""

    def __init__(self, server: LoopbackServer) -> None:
        super().__init__()
        self.server = server

    def __call__(self, h: Handler) -> None:
        form = json.loads(token_requests(self.server)[-1].body)
        if form.get("client_secret") != SECRET:
            respond(401, b'{"error":"access_denied","error_description":"Unauthorized"}')(h)
            return
        super().__call__(h)


def test_the_token_file_is_keyed_by_the_secret_so_a_wrong_one_fails_at_once(
    server: LoopbackServer, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(TOKEN_PATH, CheckingIssuer(server), method="POST")
    server.route(CALLS, api())
    assert main(cli_args(server, "212", "AB12")) == 0
    capsys.readouterr()
    cache = cli_env / "xdg" / "cappi-client" / "tokens.json"
    assert "tok-1" in cache.read_text()

    wrong = "wrong-secret-5e1a"
    monkeypatch.setenv("CAPPI_CLIENT_SECRET", wrong)
    assert main(cli_args(server, "212", "AB12")) == 1  # not answered from tok-1: the issuer refused the secret
    out, err = capsys.readouterr()
    assert out == ""
    assert "401 access_denied: Unauthorized" in err
    assert wrong not in err
    assert SECRET not in err
    assert len(token_requests(server)) == 2
    assert [g.headers["authorization"] for g in gets(server)] == ["Bearer tok-1"]  # no query with a cached token

    monkeypatch.setenv("CAPPI_CLIENT_SECRET", SECRET)
    assert main(cli_args(server, "212", "AB12")) == 0  # the right secret still finds its token
    assert len(token_requests(server)) == 2
    text = cache.read_text()
    assert SECRET not in text
    assert wrong not in text


def test_verbose_says_whether_the_token_came_from_the_issuer_or_the_cache(
    server: LoopbackServer, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    assert main([*cli_args(server, "212", "AB12"), "-v"]) == 0
    first = capsys.readouterr().err
    assert f"token: from the issuer {server.url(TOKEN_PATH)}" in first
    assert "from the cache" not in first
    assert main([*cli_args(server, "212", "AB12"), "-v"]) == 0
    second = capsys.readouterr().err
    cache = cli_env / "xdg" / "cappi-client" / "tokens.json"
    assert f"token: from the cache {cache}" in second
    assert "from the issuer" not in second
    assert SECRET not in first + second


def test_two_processes_starting_together_make_one_token_request(server: LoopbackServer, tmp_path: Path) -> None:
    # The issuer takes 0.5 s per token: without a lock across processes, both would find the file empty and ask.
    server.route(TOKEN_PATH, Issuer(delay=0.5), method="POST")
    server.route(CALLS, api())
    cache = tmp_path / "tokens" / "tokens.json"
    start_at = time.time() + 1.5  # after both interpreters have imported cappi_client
    code = (
        "import json, sys, time\n"
        "from cappi_client import CappiClient, Environment\n"
        "env = Environment.custom(sys.argv[1], sys.argv[2])\n"
        "client = CappiClient(env, client_id=sys.argv[3], client_secret=sys.argv[4], token_cache=sys.argv[5])\n"
        "time.sleep(max(0.0, float(sys.argv[6]) - time.time()))\n"
        "print(json.dumps(client.open_calls(212, 'AB12')))\n"
    )
    args = [server.base_url, server.url(TOKEN_PATH), CLIENT_ID, SECRET, str(cache), repr(start_at)]
    processes = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _out, err in results]
    assert [json.loads(out) for out, _err in results] == [["8655R", "8679"]] * 2
    assert len(token_requests(server)) == 1
    assert [g.headers["authorization"] for g in gets(server)] == ["Bearer tok-1"] * 2
    assert [p.name for p in cache.parent.iterdir()] == ["tokens.json"]  # the lock leaves no file behind


def test_a_process_holding_the_token_lock_past_the_deadline_is_waited_for_only_until_the_deadline(
    server: LoopbackServer, tmp_path: Path
) -> None:
    import fcntl

    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    cache = tmp_path / "tokens" / "tokens.json"
    cache.parent.mkdir(mode=0o700)
    held = os.open(cache.parent, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process fetching a token, as far as the client can tell
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="another process was fetching a token"):
            make_client(server, token_cache=cache, deadline_s=0.5).open_calls(212, "AB12")
        assert 0.4 < time.monotonic() - started < 5
        assert token_requests(server) == []
    finally:
        os.close(held)
    assert make_client(server, token_cache=cache).open_calls(212, "AB12") == ["8655R", "8679"]  # released: works


# --- retries and the deadline ---


def test_429_and_503_are_retried_after_their_retry_after(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(
        CALLS,
        in_turn(
            respond(429, b'{"message":"Too Many Requests"}', headers={"Retry-After": "2"}),
            respond(503, b'{"error":"unavailable","message":"retry shortly"}', headers={"Retry-After": "5"}),
            respond(200, b'["8679"]'),
        ),
    )
    assert make_client(server, fake_time).open_calls(212, "AB12") == ["8679"]
    assert fake_time.sleeps == [2.0, 5.0]
    assert len(gets(server)) == 3


def test_retry_after_as_an_http_date(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    when = formatdate(fake_time.time() + 7, usegmt=True)
    server.route(CALLS, in_turn(respond(503, b"{}", headers={"Retry-After": when}), respond(200, b"[]")))
    assert make_client(server, fake_time).open_calls(212, "AB12") == []
    [slept] = fake_time.sleeps
    assert 5.5 <= slept <= 7.0  # the date has one-second resolution


def test_without_retry_after_the_waits_grow_exponentially_with_jitter(
    server: LoopbackServer, fake_time: FakeTime
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    failing = respond(502, b"<html>Bad Gateway</html>", content_type="text/html")
    server.route(CALLS, in_turn(failing, failing, failing, respond(200, b'["1"]')))
    assert make_client(server, fake_time).open_calls(212, "AB12") == ["1"]
    # base 0.25 s doubling, jitter at its midpoint (0.5 -> 75% of each step)
    assert fake_time.sleeps == [0.1875, 0.375, 0.75]


def test_real_jitter_stays_between_half_and_all_of_each_step(server: LoopbackServer) -> None:
    sleeps: list[float] = []
    server.route(TOKEN_PATH, Issuer(), method="POST")
    failing = respond(500, b"{}")
    server.route(CALLS, in_turn(failing, failing, failing, failing, respond(200, b"[]")))
    client = make_client(server, clock=Clock(sleep=sleeps.append))
    client.open_calls(212, "AB12")
    for slept, step in zip(sleeps, [0.25, 0.5, 1.0, 2.0], strict=True):
        assert step / 2 <= slept <= step


def test_the_token_endpoint_gets_the_same_retries(server: LoopbackServer, fake_time: FakeTime) -> None:
    issuer = Issuer()
    server.route(
        TOKEN_PATH,
        in_turn(respond(429, b'{"error":"too_many_requests"}', headers={"Retry-After": "3"}), respond(503), issuer),
        method="POST",
    )
    server.route(CALLS, api())
    assert make_client(server, fake_time).open_calls(212, "AB12") == ["8655R", "8679"]
    assert fake_time.sleeps == [3.0, 0.375]
    assert len(token_requests(server)) == 3


def test_retries_never_sleep_past_the_deadline(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(503, b'{"error":"unavailable","message":"busy"}', headers={"Retry-After": "1"}))
    client = make_client(server, fake_time, deadline_s=3.5)
    with pytest.raises(Unavailable) as caught:
        client.open_calls(212, "AB12")
    assert fake_time.sleeps == [1.0, 1.0, 1.0]  # a fourth wait would end past 3.5 s
    assert sum(fake_time.sleeps) <= 3.5
    assert len(gets(server)) == 4
    assert (caught.value.code, caught.value.retry_after) == ("unavailable", 1.0)


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    body = b'{"error":"no_snapshot_yet","message":"no open-call list has been received from club 212 yet"}'
    server.route(CALLS, respond(503, body, headers={"Retry-After": "60"}))
    with pytest.raises(Unavailable) as caught:
        make_client(server, fake_time).open_calls(212, "AB12")
    assert fake_time.sleeps == []
    assert len(gets(server)) == 1
    assert (caught.value.code, caught.value.retry_after) == ("no_snapshot_yet", 60.0)


def test_a_server_that_never_answers_is_cut_off_at_the_deadline(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")

    def stall(h: Handler) -> None:
        h.wait(10)
        h.close_connection = True

    server.route(CALLS, stall)
    client = make_client(server, deadline_s=0.6)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        client.open_calls(212, "AB12")
    assert time.monotonic() - started < 1.5
    assert caught.value.last_error is not None
    assert isinstance(caught.value, TimeoutError)


def test_too_many_429s_raise_too_many_requests(server: LoopbackServer, fake_time: FakeTime) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(429, b'{"message":"Too Many Requests"}'))
    with pytest.raises(TooManyRequests):
        make_client(server, fake_time, max_attempts=3).open_calls(212, "AB12")
    assert len(gets(server)) == 3
    assert len(fake_time.sleeps) == 2


# --- IDs ---


@pytest.mark.parametrize(
    ("club", "tech", "error"),
    [
        ("", "AB12", InvalidClubId),
        ("1234", "AB12", InvalidClubId),
        ("a1", "AB12", InvalidClubId),
        ("١٢", "AB12", InvalidClubId),  # Arabic-Indic digits are digits to Python, not to CAPPI
        (" 12", "AB12", InvalidClubId),
        ("-1", "AB12", InvalidClubId),
        (1000, "AB12", InvalidClubId),
        (-1, "AB12", InvalidClubId),
        (True, "AB12", InvalidClubId),
        (12.0, "AB12", InvalidClubId),
        (212, "", InvalidTechId),
        (212, "AB 12", InvalidTechId),
        (212, "A" * 33, InvalidTechId),
        (212, "١٢", InvalidTechId),
        (212, "AB-12", InvalidTechId),
        (212, "ÅB12", InvalidTechId),
        (212, "\x1fAB12", InvalidTechId),  # only spaces and tabs are trimmed, as CAPPI trims
        (212, "AB12\n", InvalidTechId),  # a control character other than tab
        (212, "AB12\xa0", InvalidTechId),
        (212, "AB12/..", InvalidTechId),
        (212, 1234, InvalidTechId),
    ],
)
def test_an_id_cappi_would_refuse_makes_no_request_at_all(
    server: LoopbackServer, club: Any, tech: Any, error: type[InvalidId]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    with pytest.raises(error) as caught:
        make_client(server).open_calls(club, tech)
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == ("invalid_club_id" if error is InvalidClubId else "invalid_tech_id")
    assert server.seen == []  # not even a token request


@pytest.mark.parametrize(
    ("club", "tech", "path"),
    [
        (212, "AB12", CALLS),
        ("212", "ab12", CALLS),  # canonical upper case
        (212, " ab12\t", CALLS),  # surrounding spaces and tabs trimmed, as CAPPI trims them
        ("004", "A" * 32, "/api/CallData/OpenCalls/4/" + "A" * 32 + "/ids"),
        (0, "7", "/api/CallData/OpenCalls/0/7/ids"),
    ],
)
def test_valid_ids_are_sent_in_canonical_form(server: LoopbackServer, club: Any, tech: str, path: str) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(path, api())
    assert make_client(server).open_calls(club, tech) == ["8655R", "8679"]
    assert len(gets(server, path)) == 1


# --- bodies and ETags ---


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'["8655R","8679"]', ["8655R", "8679"]),
        (b"[]", []),
        (b'[["8679"]]', ["8679"]),  # the integration document's one-result form
    ],
)
def test_both_body_shapes_give_a_list_of_strings(server: LoopbackServer, body: bytes, expected: list[str]) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(200, body))
    assert make_client(server).open_calls(212, "AB12") == expected


@pytest.mark.parametrize(
    "body",
    [b'{"calls": []}', b"[8679]", b'["1", ["2"]]', b'[["1"], ["2"]]', b'"8679"', b"null", b"<html>", b""],
)
def test_any_other_body_is_a_protocol_error(server: LoopbackServer, body: bytes) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(200, body))
    with pytest.raises(ProtocolError):
        make_client(server).open_calls(212, "AB12")


def test_a_304_returns_the_answer_cached_with_its_etag(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    etag = '"3b1f0c9a"'

    def conditional(h: Handler) -> None:
        if h.headers.get("If-None-Match") == etag:
            respond(304, b"", headers={"ETag": etag}, content_type=None)(h)
        else:
            respond(200, b'["8655R","8679"]', headers={"ETag": etag})(h)

    other = "/api/CallData/OpenCalls/212/CD34/ids"
    server.route(CALLS, conditional)
    server.route(other, conditional)
    client = make_client(server)
    first = client.open_calls(212, "AB12")
    first.append("mutated by the app")  # must not leak into the cache
    assert client.open_calls(212, "ab12") == ["8655R", "8679"]
    assert client.open_calls(212, "CD34") == ["8655R", "8679"]
    sent = [s.headers.get("if-none-match") for s in gets(server)]
    assert sent == [None, etag]
    assert [s.headers.get("if-none-match") for s in gets(server, other)] == [None]  # per (club, tech)


def test_a_304_nothing_was_asked_for_is_a_protocol_error(server: LoopbackServer) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(304, b"", content_type=None))
    with pytest.raises(ProtocolError):
        make_client(server).open_calls(212, "AB12")


# --- typed errors ---


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (400, {"error": "invalid_tech_id", "message": "TechId must be 1 to 32 letters"}, {}, BadRequest),
        (401, {"message": "Unauthorized"}, {"WWW-Authenticate": 'Bearer realm="cappi"'}, Unauthorized),
        (403, {"message": "Forbidden"}, {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}, Forbidden),
        (403, {"error": "forbidden_club", "message": "this client may not read club 212"}, {}, Forbidden),
        (404, {"message": "Not Found"}, {}, NotFound),
        (404, {"error": "unknown_club", "message": "CAPPI does not serve club 212"}, {}, NotFound),
        (503, {"error": "no_snapshot_yet", "message": "no list from club 212 yet"}, {"Retry-After": "60"}, Unavailable),
    ],
)
def test_each_error_status_is_its_own_type_with_the_servers_code(
    server: LoopbackServer, status: int, body: dict, headers: dict[str, str], error: type[ApiError]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(status, json.dumps(body).encode(), headers=headers))
    with pytest.raises(error) as caught:
        make_client(server).open_calls(212, "AB12")
    assert isinstance(caught.value, ApiError)
    assert isinstance(caught.value, cappi_client.CappiError)
    assert caught.value.status == status
    assert caught.value.code == body.get("error")  # None for API Gateway's own {"message"} bodies
    assert caught.value.message == body["message"]
    assert caught.value.retry_after == (float(headers["Retry-After"]) if "Retry-After" in headers else None)
    for other in (BadRequest, Unauthorized, Forbidden, NotFound, Unavailable):
        assert isinstance(caught.value, other) == (other is error)


# --- the command ---


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CAPPI_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("CAPPI_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def cli_args(server: LoopbackServer, *rest: str) -> list[str]:
    return ["open-calls", *rest, "--base-url", server.base_url, "--token-url", server.url(TOKEN_PATH)]


def test_cli_prints_the_calls_as_a_json_array_and_exits_0(
    server: LoopbackServer, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, respond(200, b'[["8679"]]'))
    assert main(cli_args(server, "212", "ab12")) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == ["8679"]
    assert err == ""
    # the default token cache: under XDG_CACHE_HOME, owner-only, reused by the next run
    cache = cli_env / "xdg" / "cappi-client" / "tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert main(cli_args(server, "212", "AB12")) == 0
    assert len(token_requests(server)) == 1


def test_cli_api_error_prints_the_servers_code_and_message_and_exits_1(
    server: LoopbackServer, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    body = b'{"error":"unknown_club","message":"CAPPI does not serve club 999"}'
    server.route("/api/CallData/OpenCalls/999/AB12/ids", respond(404, body))
    assert main([*cli_args(server, "999", "AB12"), "--no-token-cache"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "404 unknown_club: CAPPI does not serve club 999" in err
    assert not (cli_env / "xdg").exists()  # --no-token-cache writes nothing


def test_cli_token_refusal_exits_1_without_the_secret(
    server: LoopbackServer, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'{"error":"access_denied","error_description":"Unauthorized"}'
    server.route(TOKEN_PATH, respond(401, body), method="POST")
    assert main(cli_args(server, "212", "AB12")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "access_denied" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("club", "tech", "code"), [("1234", "AB12", "invalid_club_id"), ("212", "AB 12", "invalid_tech_id")]
)
def test_cli_refused_ids_exit_2_without_a_request(
    server: LoopbackServer, cli_env: Path, capsys: pytest.CaptureFixture[str], club: str, tech: str, code: str
) -> None:
    assert main(cli_args(server, club, tech)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert code in err
    assert server.seen == []


@pytest.mark.parametrize(
    "extra",
    [
        ["--base-url", "http://127.0.0.1:1"],  # no --token-url
        ["--env", "stage", "--base-url", "http://127.0.0.1:1", "--token-url", "http://127.0.0.1:1/t"],
        ["--env", "qa"],
        ["--token-url", "http://127.0.0.1:1/t"],  # without --base-url
        ["--timeout", "0"],
        ["--token-cache", "x.json", "--no-token-cache"],
        ["--client-secret", "on-the-command-line"],  # not an option: it would show in ps
    ],
)
def test_cli_usage_errors_exit_2(cli_env: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["open-calls", "212", "AB12", *extra])
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_cli_without_a_secret_exits_2(
    server: LoopbackServer, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CAPPI_CLIENT_SECRET")
    assert main(cli_args(server, "212", "AB12")) == 2
    assert "CAPPI_CLIENT_SECRET" in capsys.readouterr().err
    assert server.seen == []


def test_cli_reads_the_secret_from_a_file_and_the_id_from_an_option(
    server: LoopbackServer, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CAPPI_CLIENT_SECRET")
    monkeypatch.delenv("CAPPI_CLIENT_ID")
    secret_file = cli_env / "secret"
    secret_file.write_text("file-secret\n")
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    args = [*cli_args(server, "212", "AB12"), "--client-id", "other-app", "--client-secret-file", str(secret_file)]
    assert main(args) == 0
    form = json.loads(token_requests(server)[0].body)
    assert (form["client_id"], form["client_secret"]) == ("other-app", "file-secret")
    assert json.loads(capsys.readouterr().out) == ["8655R", "8679"]


def test_python_dash_m_runs_the_same_command(server: LoopbackServer, tmp_path: Path) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    env = {**os.environ, "CAPPI_CLIENT_ID": CLIENT_ID, "CAPPI_CLIENT_SECRET": SECRET, "XDG_CACHE_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "cappi_client", *cli_args(server, "212", "AB12")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, ["8655R", "8679"], "")
    bad = subprocess.run([*command[:4], "1234", "AB12"], capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2
    assert "invalid_club_id" in bad.stderr


def test_cli_env_local_reads_the_state_file_and_says_when_local_mode_is_gone(
    server: LoopbackServer, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(TOKEN_PATH, Issuer(), method="POST")
    server.route(CALLS, api())
    state = cli_env / "state"
    state.mkdir()
    endpoints = {"api": server.base_url, "token_url": server.url(TOKEN_PATH), "audience": "http://aud.example"}
    (state / "endpoints.json").write_text(json.dumps(endpoints))
    monkeypatch.delenv("CAPPI_PORT", raising=False)
    monkeypatch.setenv("CAPPI_STATE_DIR", str(state))
    assert main(["open-calls", "212", "AB12", "--env", "local"]) == 0
    assert json.loads(capsys.readouterr().out) == ["8655R", "8679"]
    assert json.loads(token_requests(server)[0].body)["audience"] == "http://aud.example"

    # A file left behind by a local mode that was killed: a clear line, not a bare ConnectionError.
    with serve() as gone:
        closed = gone.base_url
    (state / "endpoints.json").write_text(json.dumps({"api": closed}))
    assert main(["open-calls", "212", "AB12", "--env", "local", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"is local mode still running at {closed}? (`make run`)" in err
