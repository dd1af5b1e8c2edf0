"""`cappi preflight`: the account checks before a deploy, against moto (plus botocore's Stubber for what moto lacks
or cannot stage) and a loopback OpenID issuer. Templates are small dicts built here, and one test reads the stage's
real synthesized template."""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

import app as cdk_app
from cappi.contracts.credentials import CREDENTIALS_METADATA, parameter_name
from cappi.domain.registry import load_registry
from cli import preflight
from cli.main import main
from cli.target import TargetError

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
STAGE = "stage"
STACK = "Cappi-stage"
QUERY, INGEST, DISPATCH = "cappi-stage-query", "cappi-stage-ingest", "cappi-stage-dispatch"


# --- a loopback OpenID issuer ---------------------------------------------------------------------------------


@dataclass
class Issuer:
    """Serves `routes` (path -> (status, content type, body)); `url` is its issuer URL, trailing slash included."""

    url: str = ""
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)

    def serve_discovery(self, *, issuer: str | None = None, jwks_uri: str | None = None, keys: Any = None) -> None:
        document = {"issuer": issuer or self.url, "jwks_uri": jwks_uri or f"{self.url}.well-known/jwks.json"}
        self.routes["/.well-known/openid-configuration"] = (200, "application/json", json.dumps(document).encode())
        key_set = {"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]} if keys is None else keys
        self.routes["/.well-known/jwks.json"] = (200, "application/json", json.dumps(key_set).encode())


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = state.routes.get(self.path, (404, "text/html", b"<h1>Not Found</h1>"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    state.serve_discovery()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- templates ------------------------------------------------------------------------------------------------


def function(name: str, reserved: int | None) -> dict[str, Any]:
    props: dict[str, Any] = {"FunctionName": name, "Runtime": "python3.13", "Handler": "h.handler", "Role": "r"}
    if reserved is not None:
        props["ReservedConcurrentExecutions"] = reserved
    return {"Type": "AWS::Lambda::Function", "Properties": props}


def template(
    issuer: str,
    *,
    reservations: dict[str, int | None] | None = None,
    email: str | None = "ops@example.org",
    certificate_arn: str | None = None,
    retain: bool = True,
) -> dict[str, Any]:
    """A stage template in miniature: what preflight reads, with the stage's names."""
    policy = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"} if retain else {}
    resources: dict[str, Any] = {
        "Table": {
            "Type": "AWS::DynamoDB::GlobalTable",
            **policy,
            "Properties": {"TableName": "cappi-stage-snapshots", "BillingMode": "PAY_PER_REQUEST"},
        },
        "Secret": {"Type": "AWS::SecretsManager::Secret", **policy, "Properties": {"Name": "cappi/stage/clubs/a"}},
        "Logs": {
            "Type": "AWS::Logs::LogGroup",
            **policy,
            "Properties": {"LogGroupName": f"/aws/lambda/{QUERY}", "RetentionInDays": 30},
        },
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "cappi-stage-ingest-dlq"}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "cappi-stage-alarms"}},
        "Authorizer": {
            "Type": "AWS::ApiGatewayV2::Authorizer",
            "Properties": {
                "AuthorizerType": "JWT",
                "JwtConfiguration": {"Issuer": issuer, "Audience": ["https://stagecappi.clubassist.com"]},
            },
        },
        "Unnamed": {"Type": "AWS::SQS::Queue", "Properties": {}},
    }
    for name, reserved in (reservations or {QUERY: 100, INGEST: 4, DISPATCH: None}).items():
        resources[f"Fn{len(resources)}"] = function(name, reserved)
    if email:
        resources["Subscription"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"Protocol": "email", "Endpoint": email, "TopicArn": {"Ref": "Topic"}},
        }
    if certificate_arn:
        resources["Domain"] = {
            "Type": "AWS::ApiGatewayV2::DomainName",
            "Properties": {
                "DomainName": "stagecappi.clubassist.com",
                "DomainNameConfigurations": [{"CertificateArn": certificate_arn, "EndpointType": "REGIONAL"}],
            },
        }
    return {"Resources": resources}


# --- AWS ------------------------------------------------------------------------------------------------------


class LambdaWithLimits:
    """moto's Lambda client plus GetAccountSettings, which moto 5.2.5 does not implement (its 404 says so)."""

    def __init__(self, client: Any, quota: int, unreserved: int) -> None:
        self._client, self._limits = (
            client,
            {"ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved},
        )

    def get_account_settings(self) -> dict[str, Any]:
        return {"AccountLimit": dict(self._limits)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class Aws:
    quota: int = 1000
    unreserved: int = 1000
    overrides: dict[str, Any] = field(default_factory=dict)  # service -> a stubbed client

    def client(self, service: str) -> Any:
        if service in self.overrides:
            return self.overrides[service]
        made = boto3.client(service, region_name=REGION)
        return LambdaWithLimits(made, self.quota, self.unreserved) if service == "lambda" else made

    def stub(self, service: str) -> Stubber:
        """Replace `service` with a Stubber'd client (activated); add its responses before running."""
        client = boto3.client(service, region_name=REGION)
        self.overrides[service] = client
        stubber = Stubber(client)
        stubber.activate()
        return stubber


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


def create_function(name: str, reserved: int | None = None) -> None:
    iam = boto3.client("iam", region_name=REGION)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")
    client = boto3.client("lambda", region_name=REGION)
    client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=f"arn:aws:iam::{ACCOUNT}:role/fn",
        Handler="h.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip
    )
    if reserved is not None:
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)


def healthy_stack(
    aws: Aws, tpl: dict[str, Any], status: str = "UPDATE_COMPLETE", *, skip: tuple[str, ...] = ()
) -> None:
    """Stub CloudFormation: stack Cappi-stage is `status` and holds every resource of `tpl` but `skip`."""
    stubber = aws.stub("cloudformation")
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": STACK, "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z"}]},
        {"StackName": STACK},
    )
    summaries = [
        {
            "LogicalResourceId": lid,
            "PhysicalResourceId": str(r["Properties"].get("FunctionName") or r["Properties"].get("TableName") or lid),
            "ResourceType": r["Type"],
            "ResourceStatus": "UPDATE_COMPLETE",
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
        }
        for lid, r in tpl["Resources"].items()
        if lid not in skip
    ]
    stubber.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": STACK})


def leave_behind() -> None:
    """What a retaining stack leaves in the account after its deletion: table, secret, log group."""
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="cappi-stage-snapshots",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name="cappi/stage/clubs/a")
    secrets.delete_secret(SecretId="cappi/stage/clubs/a", RecoveryWindowInDays=7)
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=f"/aws/lambda/{QUERY}")


# --- running it -----------------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    document: dict[str, Any]

    def findings(self, check: str) -> list[dict[str, Any]]:
        return [f for f in self.document["findings"] if f["check"] == check]

    def one(self, check: str) -> dict[str, Any]:
        (found,) = self.findings(check)
        return found

    def severities(self, check: str) -> list[str]:
        return [f["severity"] for f in self.findings(check)]


def run(tpl: dict[str, Any], tmp_path: Path, aws: Aws, capsys: pytest.CaptureFixture[str], http: Any = None) -> Result:
    path = tmp_path / "Cappi-stage.template.json"
    path.write_text(json.dumps(tpl))
    args = argparse.Namespace(stage=STAGE, template=str(path), region=REGION, json=True)
    code = preflight.command(args, clients=aws.client, http=http or requests.Session())
    return Result(code, json.loads(capsys.readouterr().out))


def lines(tpl: dict[str, Any], tmp_path: Path, aws: Aws, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "Cappi-stage.template.json"
    path.write_text(json.dumps(tpl))
    args = argparse.Namespace(stage=STAGE, template=str(path), region=REGION, json=False)
    code = preflight.command(args, clients=aws.client, http=requests.Session())
    return code, capsys.readouterr().out


# --- Lambda concurrency ---------------------------------------------------------------------------------------


def test_a_quota_too_low_fails_naming_the_figures_and_the_settings(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.quota, aws.unreserved = 150, 150  # a new account's quota may be far below the default 1,000
    code, out = lines(template(issuer.url), tmp_path, aws, capsys)
    assert code == 1
    (line,) = [x for x in out.splitlines() if x.startswith("FAIL  concurrency:")]
    for figure in (
        "quota 150",
        "150 unreserved now",
        "reserves 104",
        f"{QUERY} 100",
        f"{INGEST} 4",
        "-> 46 unreserved",
    ):
        assert figure in line, figure
    assert "'Concurrent executions' quota" in line
    assert "query_reserved_concurrency" in line and "throttle_rate" in line
    assert "account_concurrency" in line
    assert "ingest_reserved_concurrency" in line  # a setting: ingest no longer reserves per club source


def test_an_ample_quota_passes(tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.code == 0, result.document
    assert result.one("concurrency")["severity"] == "ok"
    assert "-> 896 unreserved after the deploy" in result.one("concurrency")["message"]
    assert result.document["verdict"] == "ok"


def test_existing_functions_give_back_their_reservations(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack's functions hold 100 + 4 now: a deploy with the same reservations takes nothing more."""
    tpl = template(issuer.url)
    create_function(QUERY, 100)
    create_function(INGEST, 4)
    create_function(DISPATCH)
    healthy_stack(aws, tpl)
    aws.quota, aws.unreserved = 250, 146  # 104 of 250 held by this stack already
    result = run(tpl, tmp_path, aws, capsys)
    finding = result.one("concurrency")
    assert "104 of it held already" in finding["message"]
    assert "-> 146 unreserved after the deploy" in finding["message"]
    assert finding["severity"] == "WARN"  # above Lambda's 100, but with little room for the account's other functions
    assert result.code == 0, result.document

    # The query function growing by 100 takes 100 more: 46 left, a FAIL.
    aws.overrides.clear()
    healthy_stack(aws, tpl)
    (query,) = [r for r in tpl["Resources"].values() if r["Properties"].get("FunctionName") == QUERY]
    query["Properties"]["ReservedConcurrentExecutions"] = 200
    result = run(tpl, tmp_path, aws, capsys)
    assert result.one("concurrency")["severity"] == "FAIL"
    assert "reserves 204" in result.one("concurrency")["message"]
    assert result.code == 1


# --- the issuer -----------------------------------------------------------------------------------------------


def test_an_issuer_that_names_itself_otherwise_fails_naming_both(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tenant whose domain has a region part: tokens carry `iss` https://tenant.us.auth0.com/, which API Gateway
    compares byte for byte with the configured https://tenant.auth0.com/."""
    served, configured = "https://tenant.us.auth0.com/", "https://tenant.auth0.com/"
    issuer.serve_discovery(issuer=served)

    class Tenant(requests.Session):
        """Sends the tenant's URLs to the loopback issuer (tests never leave this machine)."""

        def get(self, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return super().get(str(url).replace(configured, issuer.url), **kwargs)

    result = run(template(configured), tmp_path, aws, capsys, http=Tenant())
    finding = result.one("issuer")
    assert finding["severity"] == "FAIL"
    assert served in finding["message"] and configured in finding["message"]
    assert "byte for byte" in finding["message"]
    assert "region part" in finding["message"]
    assert "cappi:stage" in finding["fix"] and served in finding["fix"]
    assert result.code == 1


def test_a_trailing_slash_is_part_of_the_issuer(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer.serve_discovery(issuer=issuer.url.rstrip("/"))
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("issuer")["severity"] == "FAIL"
    assert "region part" not in result.one("issuer")["message"]


def test_an_unreachable_issuer_fails(tmp_path: Path, aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    with socket_closed() as port:
        result = run(template(f"http://127.0.0.1:{port}/"), tmp_path, aws, capsys)
    finding = result.one("issuer")
    assert finding["severity"] == "FAIL"
    assert "does not answer" in finding["message"] and "ConnectionError" in finding["message"]
    assert "`issuer` under `cappi:stage`" in finding["fix"]
    assert result.code == 1


@pytest.mark.parametrize(
    ("route", "served", "expected"),
    [
        ("/.well-known/openid-configuration", (200, "text/html", b"<html>login</html>"), "not JSON (text/html)"),
        ("/.well-known/openid-configuration", (500, "application/json", b"{}"), "answered HTTP 500"),
        ("/.well-known/jwks.json", (200, "application/json", b'{"keys": []}'), "no key in it"),
        ("/.well-known/jwks.json", (200, "application/json", b'{"keys": [{"kty": "EC"}]}'), "no RSA key"),
    ],
)
def test_a_broken_discovery_or_key_set_fails(
    tmp_path: Path,
    aws: Aws,
    issuer: Issuer,
    capsys: pytest.CaptureFixture[str],
    route: str,
    served: tuple[int, str, bytes],
    expected: str,
) -> None:
    issuer.routes[route] = served
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("issuer")["severity"] == "FAIL"
    assert expected in result.one("issuer")["message"]


def test_keys_on_another_host_fail(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer.serve_discovery(jwks_uri="https://keys.example.org/jwks.json")
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("issuer")["severity"] == "FAIL"
    assert "not an https URL on 127.0.0.1" in result.one("issuer")["message"]


# --- the custom domain's certificate --------------------------------------------------------------------------


def test_a_certificate_pending_validation_fails_with_its_records(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    acm = boto3.client("acm", region_name=REGION)
    arn = acm.request_certificate(DomainName="stagecappi.clubassist.com", ValidationMethod="DNS")["CertificateArn"]
    result = run(template(issuer.url, certificate_arn=arn), tmp_path, aws, capsys)
    finding = result.one("certificate")
    assert finding["severity"] == "FAIL"
    assert "PENDING_VALIDATION" in finding["message"]
    assert "DNS validation record" in finding["fix"]
    assert result.code == 1


def test_an_issued_certificate_passes_and_a_missing_one_fails(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    stubber = aws.stub("acm")
    arn = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/1234"
    issued = {"CertificateArn": arn, "DomainName": "*.clubassist.com", "Status": "ISSUED"}
    stubber.add_response("describe_certificate", {"Certificate": issued}, {"CertificateArn": arn})
    result = run(template(issuer.url, certificate_arn=arn), tmp_path, aws, capsys)
    assert result.one("certificate")["severity"] == "ok"
    assert result.code == 0, result.document

    stubber.add_client_error("describe_certificate", "ResourceNotFoundException", "not found")
    result = run(template(issuer.url, certificate_arn=arn), tmp_path, aws, capsys)
    assert result.one("certificate")["severity"] == "FAIL"
    assert "does not exist" in result.one("certificate")["message"]


def test_a_certificate_in_another_region_fails(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/1234"
    result = run(template(issuer.url, certificate_arn=arn), tmp_path, aws, capsys)
    finding = result.one("certificate")
    assert finding["severity"] == "FAIL"
    assert "eu-west-1" in finding["message"] and REGION in finding["message"]
    assert "certificate_arn" in finding["fix"]


# --- the alarm subscription -----------------------------------------------------------------------------------


def test_a_pending_subscription_warns_and_passes(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:cappi-stage-alarms"
    tpl = template(issuer.url)
    healthy_stack(aws, tpl)
    stubber = aws.stub("sns")  # moto confirms e-mail subscriptions at once
    pending = {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "ops@example.org"}
    stubber.add_response("list_subscriptions_by_topic", {"Subscriptions": [{**pending, "TopicArn": topic}]})
    result = run(tpl, tmp_path, aws, capsys)
    finding = result.one("alarm-subscription")
    assert finding["severity"] == "WARN"
    assert "confirm the e-mail AWS sent to ops@example.org" in finding["fix"]
    assert result.code == 0, result.document


def test_subscriptions_on_a_first_deploy_and_without_one(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("alarm-subscription")["severity"] == "ok"
    assert "AWS mails it a link to confirm" in result.one("alarm-subscription")["message"]

    result = run(template(issuer.url, email=None), tmp_path, aws, capsys)
    assert result.one("alarm-subscription")["severity"] == "WARN"
    assert "alarms reach nobody" in result.one("alarm-subscription")["message"]
    assert "alarm_email" in result.one("alarm-subscription")["fix"]
    assert result.code == 0


# --- leftovers of a failed first create -----------------------------------------------------------------------


def test_leftovers_block_a_create_when_the_stack_is_absent(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    leave_behind()
    code, out = lines(template(issuer.url), tmp_path, aws, capsys)
    assert code == 1
    leftovers = [x for x in out.splitlines() if x.startswith("FAIL  leftover:")]
    assert len(leftovers) == 3, out
    table, secret, logs = leftovers
    assert "DynamoDB table cappi-stage-snapshots already exists" in table and "cdk import" in table
    assert "delete-backup" not in table and "create-backup" in table
    assert "secret cappi/stage/clubs/a already exists, scheduled for deletion on" in secret
    assert "restore-secret" in secret and "force-delete-without-recovery" in secret
    assert f"log group /aws/lambda/{QUERY} already exists" in logs and "delete-log-group" in logs
    assert "ok    stack: stack Cappi-stage does not exist" in out


def test_a_rolled_back_first_create_says_delete_the_stack_first(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    leave_behind()
    stubber = aws.stub("cloudformation")
    stack = {"StackName": STACK, "StackStatus": "ROLLBACK_COMPLETE", "CreationTime": "2026-01-01T00:00:00Z"}
    stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("stack")["severity"] == "FAIL"
    assert "delete-stack --stack-name Cappi-stage" in result.one("stack")["fix"]
    assert result.severities("leftover") == ["FAIL"] * 3
    assert all(f["fix"].startswith("delete stack Cappi-stage first") for f in result.findings("leftover"))


def test_the_same_names_belong_to_a_healthy_stack(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    leave_behind()
    tpl = template(issuer.url)
    healthy_stack(aws, tpl)
    result = run(tpl, tmp_path, aws, capsys)
    assert result.severities("leftover") == ["ok"]
    assert result.one("stack")["message"] == "stack Cappi-stage is UPDATE_COMPLETE."
    assert result.code == 0, result.document


def test_a_new_named_resource_that_exists_outside_a_healthy_stack_fails(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A queue added to the template whose name someone already uses: the update would fail on it."""
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="cappi-stage-ingest-dlq")
    tpl = template(issuer.url)
    healthy_stack(aws, tpl, skip=("Dlq",))
    result = run(tpl, tmp_path, aws, capsys)
    (finding,) = result.findings("leftover")
    assert finding["severity"] == "FAIL"
    assert "queue cappi-stage-ingest-dlq already exists" in finding["message"]
    assert "delete-queue" in finding["fix"]


def test_a_stack_busy_or_stuck_fails(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    for status, words in (
        ("UPDATE_IN_PROGRESS", "wait for it"),
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback"),
    ):
        aws.overrides.clear()
        healthy_stack(aws, template(issuer.url), status)
        result = run(template(issuer.url), tmp_path, aws, capsys)
        assert result.one("stack")["severity"] == "FAIL"
        assert words in result.one("stack")["fix"]


# --- club credentials -----------------------------------------------------------------------------------------


def with_credentials(tpl: dict[str, Any], sources: dict[str, list[str]]) -> dict[str, Any]:
    """The template naming each enabled source's credential parameters, as infra/storage.py writes them."""
    return {**tpl, "Metadata": {CREDENTIALS_METADATA: sources}}


def test_a_missing_credential_fails_with_the_command_that_sets_it(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    tpl = with_credentials(
        template(issuer.url), {"north": ["/cappi/stage/clubs/north"], "west": ["/cappi/stage/clubs/west"]}
    )
    aws.client("ssm").put_parameter(Name="/cappi/stage/clubs/north", Value="tok-north-77", Type="SecureString")

    result = run(tpl, tmp_path, aws, capsys)

    assert result.code == 1
    (finding,) = result.findings("credentials")
    assert finding["severity"] == "FAIL"
    assert "source west: SSM parameter /cappi/stage/clubs/west does not exist" in finding["message"]
    assert finding["fix"].startswith("cappi secrets set west --stage stage")
    assert "migrate" not in finding["fix"]  # no stack yet: nothing was ever kept in Secrets Manager
    assert "tok-north-77" not in json.dumps(result.document)

    healthy_stack(aws, tpl)  # an existing stack may hold the values in Secrets Manager still
    assert "cappi secrets migrate --stage stage" in run(tpl, tmp_path, aws, capsys).one("credentials")["fix"]


def test_credentials_present_pass_and_a_plain_string_warns(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    # More sources than one DescribeParameters filter takes (50): the check asks in batches.
    sources = {f"club-{n:03d}": [f"/cappi/stage/clubs/club-{n:03d}"] for n in range(120)}
    ssm = aws.client("ssm")
    for (parameter,) in sources.values():
        ssm.put_parameter(Name=parameter, Value="x-value", Type="SecureString")
    result = run(with_credentials(template(issuer.url), sources), tmp_path, aws, capsys)
    assert result.one("credentials")["severity"] == "ok"
    assert "all 120 credential parameters of 120 enabled source(s)" in result.one("credentials")["message"]

    ssm.put_parameter(Name="/cappi/stage/clubs/club-007", Value="x-value", Type="String", Overwrite=True)
    result = run(with_credentials(template(issuer.url), sources), tmp_path, aws, capsys)
    assert (result.code, result.one("credentials")["severity"]) == (0, "WARN")
    assert "club-007" in result.one("credentials")["message"] and "unencrypted" in result.one("credentials")["message"]


# --- the real stage template ----------------------------------------------------------------------------------


def test_the_synthesized_stage_template(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stage's own template: its names, reservations and issuer are found without being written here."""
    from support.synth import synth

    path = synth().template_path("stage")
    real = json.loads(path.read_text())
    (jwt,) = [
        r["Properties"]["JwtConfiguration"]
        for r in real["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Authorizer"
    ]
    tenant = jwt["Issuer"]
    issuer.serve_discovery(issuer=tenant, jwks_uri=f"{tenant}.well-known/jwks.json")

    class Tenant(requests.Session):
        def get(self, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return super().get(str(url).replace(tenant, issuer.url), **kwargs)

    aws.quota = aws.unreserved = 1000
    args = argparse.Namespace(stage=STAGE, template=str(path), region=REGION, json=True)
    code = preflight.command(args, clients=aws.client, http=Tenant())
    missing = Result(code, json.loads(capsys.readouterr().out))
    registry = load_registry(cdk_app.ROOT / "clubs" / "stage.json")
    needed = sorted({n for source in registry.enabled_sources for n in source.auth.secret_names})
    # A FAIL per enabled source's missing credential (the committed stage registry may have none enabled: one ok).
    assert missing.severities("credentials") == (["FAIL"] * len(needed) or ["ok"])
    assert missing.code == (1 if needed else 0)
    for name in needed:  # as `cappi secrets set` stores them
        aws.client("ssm").put_parameter(Name=parameter_name(name), Value="set-by-ops", Type="SecureString")
    code = preflight.command(args, clients=aws.client, http=Tenant())
    result = Result(code, json.loads(capsys.readouterr().out))
    assert result.severities("credentials") == ["ok"]
    reserved = {
        r["Properties"]["FunctionName"]: r["Properties"].get("ReservedConcurrentExecutions")
        for r in real["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    concurrency = result.one("concurrency")["message"]
    assert f"reserves {sum(v or 0 for v in reserved.values())} " in concurrency
    for name, value in reserved.items():
        if value:
            assert f"{name} {value}" in concurrency
    assert result.one("issuer")["severity"] == "ok" and tenant in result.one("issuer")["message"]
    assert result.severities("leftover") == ["ok"]
    assert result.severities("certificate") == []  # no custom domain on stage
    assert result.code == 0, result.document

    # And a leftover of it is found by the name the template gives it.
    table = next(
        r["Properties"]["TableName"] for r in real["Resources"].values() if r["Type"].startswith("AWS::DynamoDB::")
    )
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    code = preflight.command(args, clients=aws.client, http=Tenant())
    result = Result(code, json.loads(capsys.readouterr().out))
    assert result.code == 1
    assert f"DynamoDB table {table} already exists" in result.one("leftover")["message"]


# --- usage and access -----------------------------------------------------------------------------------------


def test_no_credentials_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template("https://tenant.auth0.com/")))
    code = main(["preflight", "--stage", "stage", "--template", str(path), "--region", REGION])
    assert code == 2
    assert "no AWS credentials" in capsys.readouterr().err


def test_credentials_that_vanish_midway_exit_2(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(service: str) -> Any:
        if service == "lambda":
            raise NoCredentialsError()
        return aws.client(service)

    path = tmp_path / "t.json"
    path.write_text(json.dumps(template(issuer.url)))
    args = argparse.Namespace(stage=STAGE, template=str(path), region=REGION, json=False)
    with pytest.raises(TargetError, match="no AWS credentials"):
        preflight.command(args, clients=failing, http=requests.Session())


def test_a_check_that_cannot_run_is_an_error_line_and_exit_2(
    tmp_path: Path, aws: Aws, issuer: Issuer, capsys: pytest.CaptureFixture[str]
) -> None:
    stubber = aws.stub("lambda")
    stubber.add_client_error("get_account_settings", "AccessDeniedException", "not allowed")
    result = run(template(issuer.url), tmp_path, aws, capsys)
    assert result.one("concurrency")["severity"] == "ERROR"
    assert "AccessDeniedException" in result.one("concurrency")["message"]
    assert result.code == 2
    assert result.document["verdict"] == "error"


def test_a_missing_template_says_run_make_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preflight", "--stage", "prod", "--template", str(tmp_path / "nope.json"), "--region", REGION])
    assert code == 2
    assert "run `make synth`" in capsys.readouterr().err


def test_preflight_wants_a_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["preflight"])
    assert exit_.value.code == 2
    assert "--stage" in capsys.readouterr().err


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A loopback port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
