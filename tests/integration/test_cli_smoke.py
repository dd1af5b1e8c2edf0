"""`cappi smoke`: a loopback server plays both the stage's Auth0 tenant (`/oauth/token`) and its API; a stubbed
CloudFormation client gives the stack's outputs and deployed template. Answers are held to the API contract."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

from cappi.contracts.api import path_for
from cappi.domain.registry import load_registry
from cli import smoke
from cli.main import main
from cli.target import ROOT, TargetError

REGION = "us-east-1"
STACK = "Cappi-stage"
AUDIENCE = "https://stagecappi.clubassist.com"
TOKEN = "smoke-Access-Token-7c41"
CLIENT_SECRET = "smoke-Client-Secret-3b9e"
ENV = {"CAPPI_SMOKE_CLIENT_ID": "smoke-client", "CAPPI_SMOKE_CLIENT_SECRET": CLIENT_SECRET}
GOOD_HEADERS = {
    "Content-Type": "application/json",
    "ETag": '"abc"',
    "Last-Modified": "Sun, 06 Dec 2026 20:00:00 GMT",
    "Cache-Control": "private, max-age=30",
}
UNAUTHORIZED = (401, {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}, b'{"message":"Unauthorized"}')

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """Tenant and API in one: `token` answers POST /oauth/token, `authed` a GET with the smoke token, `anonymous`
    a GET without one. `requests` records (method, path, headers, body) of each request."""

    url: str = ""
    token: Answer = (200, {"Content-Type": "application/json"}, b"")
    authed: Answer = (200, GOOD_HEADERS, b'["8679"]')
    anonymous: Answer = UNAUTHORIZED
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    state.token = (
        200,
        {"Content-Type": "application/json"},
        json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 86400}).encode(),
    )

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, answer: Answer) -> None:
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(("POST", self.path, dict(self.headers), body))
            self._answer(state.token if self.path == "/oauth/token" else (404, {}, b""))

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, dict(self.headers), b""))
            authorization = self.headers.get("Authorization")
            if authorization is None:
                self._answer(state.anonymous)
            elif authorization == f"Bearer {TOKEN}":
                self._answer(state.authed)
            else:
                self._answer(UNAUTHORIZED)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def stack_template(issuer: str) -> dict[str, Any]:
    return {
        "Resources": {
            "Auth0": {
                "Type": "AWS::ApiGatewayV2::Authorizer",
                "Properties": {"AuthorizerType": "JWT", "JwtConfiguration": {"Issuer": issuer, "Audience": [AUDIENCE]}},
            },
            "Api5xx": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "cappi-stage-api-5xx-rate"}},
            "Stale": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "cappi-stage-a-stale"}},
        }
    }


def cloudformation(server: Server, status: str = "UPDATE_COMPLETE") -> Any:
    client = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(client)
    outputs = [
        {"OutputKey": "ApiUrl", "OutputValue": server.url},
        {"OutputKey": "TableName", "OutputValue": "cappi-stage-snapshots"},
    ]
    stack = {"StackName": STACK, "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z", "Outputs": outputs}
    stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})
    stubber.add_response(
        "get_template",
        {"TemplateBody": json.dumps(stack_template(server.url))},
        {"StackName": STACK, "TemplateStage": "Original"},
    )
    stubber.activate()
    return client


@dataclass
class Result:
    code: int
    document: dict[str, Any]

    def one(self, check: str) -> dict[str, Any]:
        (found,) = [f for f in self.document["findings"] if f["check"] == check]
        return found


def run(server: Server, capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None, **kw: Any) -> Result:
    client = cloudformation(server, **kw)
    args = argparse.Namespace(stage="stage", region=REGION, json=True)
    code = smoke.command(args, clients=lambda _: client, http=requests.Session(), env=ENV if env is None else env)
    return Result(code, json.loads(capsys.readouterr().out))


def smoke_path() -> str:
    registry = load_registry(ROOT / "clubs" / "stage.json")
    club = next(min(s.club_ids) for s in (*registry.enabled_sources, *registry.sources) if s.club_ids)
    return path_for(club, "SMOKETEST")


def test_a_good_answer_passes(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(server, capsys)
    assert result.code == 0, result.document
    assert result.one("route")["severity"] == "ok"
    assert result.one("query")["severity"] == "ok"
    assert result.document["url"] == server.url.rstrip("/") + smoke_path()
    (token_request,) = [r for r in server.requests if r[0] == "POST"]
    assert token_request[1] == "/oauth/token"
    assert json.loads(token_request[3]) == {
        "client_id": "smoke-client",
        "client_secret": CLIENT_SECRET,
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
    }
    gets = [r for r in server.requests if r[0] == "GET"]
    assert [r[1] for r in gets] == [smoke_path(), smoke_path()]
    assert gets[1][2]["Authorization"] == f"Bearer {TOKEN}"


def test_an_unknown_club_404_passes(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (404, {"Content-Type": "application/json"}, b'{"error":"unknown_club","message":"no"}')
    result = run(server, capsys)
    assert result.code == 0, result.document
    assert "unknown_club" in result.one("query")["message"]


def test_a_500_fails_with_what_to_do(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
    result = run(server, capsys)
    assert result.code == 1
    finding = result.one("query")
    assert finding["severity"] == "FAIL"
    assert "answered 500" in finding["message"] and "Internal Server Error" in finding["message"]
    assert "roll back by hand" in finding["fix"] and "docs/operations.md" in finding["fix"]
    assert "cappi-stage-api-5xx-rate" in finding["fix"] and "cappi-stage-a-stale" not in finding["fix"]


def test_an_html_body_fails(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (200, {**GOOD_HEADERS, "Content-Type": "text/html"}, b"<html><body>Welcome</body></html>")
    result = run(server, capsys)
    assert result.code == 1
    message = result.one("query")["message"]
    assert "Content-Type 'text/html', not application/json" in message
    assert "body is not JSON" in message and "Welcome" in message


@pytest.mark.parametrize("body", [b'{"calls": []}', b"[8679]", b'[["1","2"]]', b'"8679"'])
def test_a_body_of_the_wrong_shape_fails(server: Server, capsys: pytest.CaptureFixture[str], body: bytes) -> None:
    server.authed = (200, GOOD_HEADERS, body)
    result = run(server, capsys)
    assert result.code == 1
    assert "is not the documented shape (OpenCallIds)" in result.one("query")["message"]


@pytest.mark.parametrize("body", [b"[]", b'["8655R","8679"]', b'[["8679"]]'])
def test_every_documented_shape_passes(server: Server, capsys: pytest.CaptureFixture[str], body: bytes) -> None:
    server.authed = (200, GOOD_HEADERS, body)
    assert run(server, capsys).code == 0


def test_a_promised_header_missing_fails(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (200, {k: v for k, v in GOOD_HEADERS.items() if k != "ETag"}, b"[]")
    result = run(server, capsys)
    assert result.code == 1
    assert "header ETag missing" in result.one("query")["message"]


def test_no_snapshot_yet_warns(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    body = b'{"error":"no_snapshot_yet","message":"no list yet"}'
    server.authed = (503, {"Content-Type": "application/json", "Retry-After": "120"}, body)
    result = run(server, capsys)
    assert result.code == 0, result.document
    assert result.one("query")["severity"] == "WARN"


def test_api_gateways_own_404_means_no_route(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
    result = run(server, capsys)
    assert result.code == 1
    assert "route is not deployed" in result.one("query")["message"]


def test_without_credentials_a_401_proves_route_and_authorizer(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(server, capsys, env={})
    assert result.code == 0, result.document
    assert result.one("route")["severity"] == "ok"
    assert "401" in result.one("route")["message"]
    warning = result.one("query")
    assert warning["severity"] == "WARN"
    assert "CAPPI_SMOKE_CLIENT_ID" in warning["fix"] and "CAPPI_SMOKE_CLIENT_SECRET" in warning["fix"]
    assert [(r[0], "Authorization" in r[2]) for r in server.requests] == [("GET", False)]


@pytest.mark.parametrize(
    ("anonymous", "expected"),
    [
        ((200, GOOD_HEADERS, b"[]"), "answered 200"),
        ((401, {"Content-Type": "text/html", "WWW-Authenticate": "Bearer"}, b"<h1>no</h1>"), "breaks the contract"),
        ((401, {"Content-Type": "application/json"}, b'{"message":"Unauthorized"}'), "WWW-Authenticate missing"),
        ((404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'), "answered 404"),
    ],
)
def test_a_wrong_answer_without_a_token_fails(
    server: Server, capsys: pytest.CaptureFixture[str], anonymous: Answer, expected: str
) -> None:
    server.anonymous = anonymous
    result = run(server, capsys, env={})
    assert result.code == 1
    assert result.one("route")["severity"] == "FAIL"
    assert expected in result.one("route")["message"]


def test_refused_smoke_credentials_exit_2(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    body = b'{"error":"access_denied","error_description":"Unauthorized"}'
    server.token = (401, {"Content-Type": "application/json"}, body)
    result = run(server, capsys)
    assert result.code == 2
    finding = result.one("token")
    assert finding["severity"] == "ERROR"
    assert "CAPPI_SMOKE_CLIENT_ID" in finding["fix"]
    assert CLIENT_SECRET not in json.dumps(result.document)


def test_a_refused_token_fails_naming_the_challenge(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    challenge = 'Bearer error="invalid_token" error_description="the token has an invalid issuer"'
    server.authed = (401, {"Content-Type": "application/json", "WWW-Authenticate": challenge}, b'{"message":"x"}')
    result = run(server, capsys)
    assert result.code == 1
    assert "invalid issuer" in result.one("query")["message"]
    assert "cappi preflight" in result.one("query")["fix"]


def test_plain_lines_one_per_finding(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.authed = (500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
    client = cloudformation(server)
    args = argparse.Namespace(stage="stage", region=REGION, json=False)
    code = smoke.command(args, clients=lambda _: client, http=requests.Session(), env=ENV)
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.split(":")[0] for line in out] == ["ok    route", "FAIL  query"]


def test_a_missing_stack_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        assert main(["smoke", "--stage", "stage", "--region", REGION]) == 2
    assert "stack Cappi-stage does not exist" in capsys.readouterr().err


def test_a_stack_without_api_url_is_a_usage_error() -> None:
    client = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(client)
    stack = {"StackName": STACK, "StackStatus": "UPDATE_COMPLETE", "CreationTime": "2026-01-01T00:00:00Z"}
    stubber.add_response("describe_stacks", {"Stacks": [stack]})
    stubber.add_response("get_template", {"TemplateBody": json.dumps(stack_template("https://t.auth0.com/"))})
    stubber.activate()
    args = argparse.Namespace(stage="stage", region=REGION, json=False)
    with pytest.raises(TargetError, match="no output ApiUrl"):
        smoke.command(args, clients=lambda _: client, http=requests.Session(), env={})
