"""A slow key server must not freeze local mode's front door (issue 20, item 4).

A JWKS served one byte every half second: the fetch gives up at its deadline whatever the server does, and while it
runs the gateway's event loop goes on answering requests that need no key (no token, an unknown route, the issuer's
own endpoints) at once; the request whose key is being fetched gets the authorizer's 401 at the deadline."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support.jwt_keys as K
from support.club_servers import Handler, LoopbackServer, Responder, serve

from local.gateway import Gateway
from local.http_api import HttpApi, Route
from local.jwt_authorizer import UNAUTHORIZED_BODY, AuthorizerConfig, JwtAuthorizer
from local.jwt_authorizer.jwks import DEFAULT_FETCH_TIMEOUT_S, fetch_url

JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth/token"
ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
TARGET = "/api/CallData/OpenCalls/1/SEPT/ids"
DRIP_S = 0.5
GIVE_UP_S = 6.0
KEY = K.rsa_key("k1")


def trickle(data: bytes) -> Responder:
    """Send `data` one byte every `DRIP_S` seconds (status line and headers included), for at most `GIVE_UP_S`
    seconds (so a client without a deadline fails the test, rather than hanging it, when the server hangs up)."""

    def run(h: Handler) -> None:
        stop = time.monotonic() + GIVE_UP_S
        for i in range(len(data)):
            h.raw(data[i : i + 1])
            if time.monotonic() > stop or not h.wait(DRIP_S):
                break
        h.close_connection = True

    return run


def trickled_jwks() -> bytes:
    body = K.jwks(KEY)  # a valid document: only its pace is hostile
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def slow_jwks() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route(JWKS_PATH, trickle(trickled_jwks()))
        yield server


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float


def call(port: int, method: str, target: str, headers: Mapping[str, str] | None = None) -> Answer:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, headers=dict(headers or {}))
        response = conn.getresponse()
        return Answer(response.status, response.read(), time.monotonic() - started)
    finally:
        conn.close()


def _token_endpoint(_body: bytes, _headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"access_token":"x"}'


@pytest.fixture
def gateway(slow_jwks: LoopbackServer) -> Iterator[Gateway]:
    config = AuthorizerConfig(slow_jwks.base_url + "/", K.AUDIENCE, (K.SCOPE,))
    authorizer = JwtAuthorizer.from_config(config)
    api = HttpApi([Route("GET", ROUTE, lambda _event, _context: {"statusCode": 200, "body": "[]"}, authorizer)])
    gw = Gateway(api, {("POST", TOKEN_PATH): _token_endpoint}, "127.0.0.1", 0)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def wait_for_fetch(server: LoopbackServer) -> None:
    deadline = time.monotonic() + 5
    while not server.requests_to(JWKS_PATH):
        assert time.monotonic() < deadline, "the key fetch never started"
        time.sleep(0.01)


def test_requests_that_need_no_key_are_answered_while_a_slow_key_fetch_runs(
    gateway: Gateway, slow_jwks: LoopbackServer
) -> None:
    token = KEY.sign(K.claims(iss=slow_jwks.base_url + "/"), kid=uuid.uuid4().hex)
    keyed: list[Answer] = []
    waiting = threading.Thread(
        target=lambda: keyed.append(call(gateway.port, "GET", TARGET, {"Authorization": "Bearer " + token}))
    )
    waiting.start()
    try:
        wait_for_fetch(slow_jwks)
        no_token = call(gateway.port, "GET", TARGET)
        unknown_route = call(gateway.port, "GET", "/no/such/route")
        issuer = call(gateway.port, "POST", TOKEN_PATH)
    finally:
        waiting.join(30)
    assert (no_token.status, no_token.body) == (401, UNAUTHORIZED_BODY.encode())
    assert (unknown_route.status, unknown_route.body) == (404, b'{"message":"Not Found"}')
    assert issuer.status == 200
    # The bug: each of them waited for the whole fetch, on the event loop (4 s and more).
    assert max(no_token.seconds, unknown_route.seconds, issuer.seconds) < 1.0
    # The token's key is being fetched: it waits for the fetch, given up at its deadline, then the authorizer's 401.
    assert len(keyed) == 1
    assert (keyed[0].status, keyed[0].body) == (401, UNAUTHORIZED_BODY.encode())
    assert keyed[0].seconds < DEFAULT_FETCH_TIMEOUT_S + 1.5


@pytest.mark.parametrize("head_too", [False, True], ids=["body", "status-line-and-headers"])
def test_a_trickling_key_server_is_given_up_at_the_deadline(head_too: bool) -> None:
    document = trickled_jwks()
    with serve() as server:
        if head_too:
            server.route(JWKS_PATH, trickle(document))
        else:
            head, _, body = document.partition(b"\r\n\r\n")

            def run(h: Handler) -> None:
                h.raw(head + b"\r\n\r\n")
                trickle(body)(h)

            server.route(JWKS_PATH, run)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            fetch_url(server.url(JWKS_PATH), timeout_s=1.0)
        # The bug: the deadline was checked only between 16 KB reads, so the drip went on for the whole document.
        assert time.monotonic() - started < 2.0


# --- every AWS client waits less than the function that makes it may run ---


def attempt_bound_s(client: Any) -> float:
    """How long `client`'s call may wait in all: its attempts times (connect + read timeout)."""
    config = client.meta.config
    attempts = (config.retries or {}).get("total_max_attempts", 1)
    return float(attempts * (config.connect_timeout + config.read_timeout))


def test_every_handler_client_has_timeouts_within_its_function() -> None:
    from cappi.adapters.codedeploy import LifecycleHookReporter
    from cappi.adapters.dynamo.client import QUERY_ATTEMPTS, dynamodb_client
    from cappi.adapters.lambda_invoker import LambdaInvoker, sync_lambda_client
    from infra.functions import DISPATCH, INGEST, QUERY, RELEASE_CHECK

    # botocore's defaults are 60 s to connect and 60 s per read, per attempt: past every one of these.
    assert attempt_bound_s(dynamodb_client(QUERY_ATTEMPTS)) <= 0.8 * QUERY.timeout_s  # well under: a tester waits
    assert attempt_bound_s(dynamodb_client()) < INGEST.timeout_s / 2  # beside the club fetch's 120 s
    assert attempt_bound_s(sync_lambda_client()) < RELEASE_CHECK.timeout_s
    clients = [
        (LambdaInvoker("f")._client, DISPATCH.timeout_s),
        (LifecycleHookReporter()._client, RELEASE_CHECK.timeout_s),
    ]
    for client, function_timeout_s in clients:
        config = client.meta.config
        assert config.connect_timeout + config.read_timeout < function_timeout_s / 4


def test_the_handlers_build_their_clients_with_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built from local mode's role session too (dispatch's Lambda, ingest's SSM Parameter Store)."""
    import boto3

    from cappi.handlers.dispatch import DispatchDependencies
    from cappi.handlers.ingest import IngestDependencies

    made: dict[str, Any] = {}
    session = boto3.Session(region_name="us-east-1")
    real = session.client

    def client(service: str, **kwargs: Any) -> Any:
        made[service] = real(service, **kwargs)  # type: ignore[call-overload]
        return made[service]

    monkeypatch.setattr(session, "client", client)
    monkeypatch.setenv("CAPPI_CLUBS_FILE", str(Path(__file__).resolve().parents[2] / "clubs" / "stage.json"))
    monkeypatch.setenv("CAPPI_TABLE_NAME", "t")
    monkeypatch.setenv("CAPPI_INGEST_FUNCTION", "ingest")
    DispatchDependencies.from_env(session=session)
    IngestDependencies.from_env(session=session)
    assert set(made) >= {"lambda", "ssm", "dynamodb"}
    for service, made_client in made.items():
        config = made_client.meta.config
        assert config.connect_timeout + config.read_timeout <= 10, service


def test_local_modes_clients_have_timeouts() -> None:
    from local.aws import LocalAws
    from local.iam import Principals

    local_aws = LocalAws()
    local_aws.endpoint_url = "http://127.0.0.1:1"  # not started: the client is only looked at
    clients = [local_aws.client("dynamodb"), Principals("http://127.0.0.1:1", "us-east-1")._client("iam")]
    for client in clients:
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) != (60, 60)
        assert config.connect_timeout <= 5 and config.read_timeout <= 30
