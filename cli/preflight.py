"""`cappi preflight --stage S`: check the target AWS account against a stage's synthesized template before a deploy.

Everything checked is read from the template (`cdk.out/Cappi-<stage>.template.json`), never from names written
here, so the checks follow whatever the stack defines:

- Lambda concurrency: what the template reserves against the account's quota and what is unreserved now (Lambda
  refuses a reservation that leaves fewer than 100 unreserved executions).
- The JWT authorizer's issuer: its OpenID discovery document must name exactly the same issuer (API Gateway compares
  `iss` byte for byte) and point at a key set that answers.
- A custom domain's certificate: in the deploy region, and ISSUED.
- The alarm topic's e-mail subscription: pending confirmation, or missing.
- Named resources that already exist outside the stack (left behind by a failed first create, or retained by a
  deleted stack): CloudFormation refuses to create them again ("already exists").

One finding per line: severity (FAIL, WARN, ok, or ERROR when a check could not run), what was found, what to do.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cappi.contracts.stack import UNRESERVED_MINIMUM, stack_name
from cli.target import ROOT, TargetError

FAIL, WARN, OK, ERROR = "FAIL", "WARN", "ok", "ERROR"
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
HTTP_TIMEOUT_S = 5.0
# Stack states in which the stack holds none of its named resources, so any that exists blocks the create.
NOT_CREATED = frozenset(
    {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS"}
)
HEALTHY = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)

Clients = Callable[[str], Any]  # service name -> boto3 client, all for one account and region


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # concurrency, issuer, certificate, alarm-subscription, stack, leftover
    severity: str  # FAIL, WARN, ok, ERROR
    message: str  # what was found
    fix: str = ""  # what to change (empty for ok)

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.severity:<5} {self.check}: {self.message}{fix}"


def exit_code(findings: list[Finding]) -> int:
    """1 when something must change before a deploy; else 2 when a check could not run; else 0 (warnings too)."""
    if any(f.severity == FAIL for f in findings):
        return EXIT_PROBLEM
    if any(f.severity == ERROR for f in findings):
        return EXIT_USAGE
    return EXIT_OK


def verdict(findings: list[Finding]) -> str:
    severities = {f.severity for f in findings}
    for severity, word in ((FAIL, "fail"), (ERROR, "error"), (WARN, "warn")):
        if severity in severities:
            return word
    return "ok"


def print_findings(findings: list[Finding], *, json_document: dict[str, Any] | None = None) -> None:
    if json_document is not None:
        document = {**json_document, "verdict": verdict(findings), "findings": [asdict(f) for f in findings]}
        print(json.dumps(document, indent=2))
        return
    for finding in findings:
        print(finding.line())


def aws_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(((response or {}).get("Error") or {}).get("Code") or type(exc).__name__)


def aws_clients(region: str | None) -> tuple[Clients, str]:
    """One boto3 session for every client (the caller's credentials), in `region` or the configured one."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    region = session.region_name
    if not region:
        raise TargetError("no AWS region: pass --region, or set AWS_REGION (or a region in your AWS profile)")
    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, region_name=region, config=config)
        return made[service]

    return client, region


def http_session() -> Any:
    import requests

    return requests.Session()


def read_template(path: Path, stage: str) -> dict[str, Any]:
    try:
        template = json.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(
            f"no template at {path}: run `make synth` (both stages) or `make deploy STAGE={stage}` (synthesizes "
            f"first), or pass --template"
        ) from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read template {path}: {exc}; run `make synth` again") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TargetError(f"{path} is not a CloudFormation template (no Resources): run `make synth` again")
    return template


# --- the template ---------------------------------------------------------------------------------------------


def resources(template: dict[str, Any], *types: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(logical id, resource, properties) of every resource of the given types, in template order."""
    for logical_id, resource in template.get("Resources", {}).items():
        if isinstance(resource, dict) and resource.get("Type") in types:
            yield logical_id, resource, resource.get("Properties") or {}


def resolve(value: Any, pseudo: dict[str, str]) -> str | None:
    """A template value as a string when it is one, or is built only from pseudo parameters; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    if function == "Ref" and isinstance(argument, str):
        return pseudo.get(argument)
    if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
        separator, parts = argument
        resolved = [resolve(p, pseudo) for p in parts] if isinstance(parts, list) else [None]
        return None if None in resolved or not isinstance(separator, str) else separator.join(map(str, resolved))
    if function == "Fn::Sub" and isinstance(argument, str):
        text = re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: pseudo.get(m.group(1), m.group(0)), argument)
        return None if "${" in text else text
    return None


@dataclass
class Context:
    stage: str
    template: dict[str, Any]
    region: str
    account: str
    partition: str
    client: Clients
    http: Any
    stack_status: str | None = None  # None: the stack does not exist
    stack_resources: dict[str, str] = field(default_factory=dict)  # logical id -> physical id, of the live stack

    @property
    def stack(self) -> str:
        return stack_name(self.stage)

    @property
    def pseudo(self) -> dict[str, str]:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": suffix,
            "AWS::StackName": self.stack,
        }

    def name(self, properties: dict[str, Any], key: str) -> str | None:
        return resolve(properties.get(key), self.pseudo)

    @property
    def settings(self) -> str:
        return f"`cappi:{self.stage}` in cdk.json (or -c {self.stage}:<key>=<value> in CDK_ARGS)"


# --- checks ---------------------------------------------------------------------------------------------------


def check_concurrency(ctx: Context) -> list[Finding]:
    lam = ctx.client("lambda")
    limits = lam.get_account_settings()["AccountLimit"]
    quota, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    wanted: list[tuple[str, int]] = []  # (function, reservation in the template)
    held = 0  # what this stack's existing functions reserve now: theirs already, given back by the deploy
    for logical_id, _, props in resources(ctx.template, "AWS::Lambda::Function"):
        name = ctx.name(props, "FunctionName") or ctx.stack_resources.get(logical_id)
        reservation = props.get("ReservedConcurrentExecutions")
        wanted.append((name or logical_id, int(reservation) if reservation is not None else 0))
        if name:
            try:
                held += int(lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") or 0)
            except Exception as exc:
                if aws_error_code(exc) != "ResourceNotFoundException":
                    raise
    reserved = sum(r for _, r in wanted)
    after = unreserved + held - reserved
    per_function = ", ".join(f"{n} {r}" for n, r in wanted if r) or "nothing"
    figures = (
        f"account quota {quota} concurrent executions, {unreserved} unreserved now; the stack reserves {reserved} "
        f"({per_function}), {held} of it held already by its existing functions -> {after} unreserved after the deploy"
    )
    sizing = (
        f"ask AWS for a higher 'Concurrent executions' quota (Service Quotas > AWS Lambda, region {ctx.region}) and "
        f"set account_concurrency to it, or lower what the stage reserves in {ctx.settings}: "
        f"query_reserved_concurrency (by default the query function's comes from throttle_rate, capped at "
        f"throttle_burst), or fewer club sources in clubs/{ctx.stage}.json (ingest reserves per source)"
    )
    if after < UNRESERVED_MINIMUM:
        return [
            Finding(
                "concurrency",
                FAIL,
                f"{figures}; Lambda refuses reservations that leave fewer than {UNRESERVED_MINIMUM} unreserved.",
                sizing + ".",
            )
        ]
    if after < 2 * UNRESERVED_MINIMUM:
        return [
            Finding(
                "concurrency",
                WARN,
                f"{figures}: only {after - UNRESERVED_MINIMUM} above Lambda's minimum of {UNRESERVED_MINIMUM} for "
                f"every function without a reservation (this stack's too).",
                sizing + ", if the account's other functions need room.",
            )
        ]
    return [Finding("concurrency", OK, figures + ".")]


def _region_variant(configured: str, served: str) -> bool:
    """True when two hosts differ by one label after the first: `tenant.auth0.com` vs `tenant.us.auth0.com`."""
    a, b = configured.split("."), served.split(".")
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return short[0] == long[0] and short[1:] == long[2:]


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def check_issuer(ctx: Context) -> list[Finding]:
    authorizers = [
        (lid, jwt)
        for lid, _, p in resources(ctx.template, "AWS::ApiGatewayV2::Authorizer")
        if isinstance(jwt := p.get("JwtConfiguration"), dict)
    ]
    if not authorizers:
        return [Finding("issuer", WARN, "the template has no JWT authorizer: nothing checks tokens before the API.")]
    findings = []
    for logical_id, jwt in authorizers:
        findings.extend(_check_one_issuer(ctx, logical_id, jwt))
    return findings


def _check_one_issuer(ctx: Context, logical_id: str, jwt: dict[str, Any]) -> list[Finding]:
    issuer, audience = ctx.name(jwt, "Issuer"), jwt.get("Audience")
    where = f"`issuer` under {ctx.settings}"
    if not issuer:
        return [Finding("issuer", WARN, f"authorizer {logical_id}'s issuer is not a plain string: not checked.")]
    if not isinstance(audience, list) or not audience:
        fix = f"set `audience` under {ctx.settings}."
        return [Finding("issuer", FAIL, f"authorizer {logical_id} requires no audience.", fix)]
    url = f"{issuer if issuer.endswith('/') else issuer + '/'}.well-known/openid-configuration"
    shape = (
        f"set {where} to the tenant's domain as Auth0 shows it (newer tenants are TENANT.REGION.auth0.com), with "
        f"https:// and the trailing slash"
    )
    document, problem = _get_json(ctx.http, url)
    if problem:
        return [Finding("issuer", FAIL, f"the trusted issuer {issuer} does not answer: {url} {problem}.", shape + ".")]
    if not isinstance(document, dict):
        return [Finding("issuer", FAIL, f"{url} is not a JSON object: not an OpenID issuer.", shape + ".")]
    served = document.get("issuer")
    if served != issuer:
        hint = ""
        configured_host, served_host = urlsplit(issuer).hostname or "", urlsplit(str(served)).hostname or ""
        if _region_variant(configured_host, served_host):
            hint = f" (the tenant's domain has a region part: {served_host}, not {configured_host})"
        return [
            Finding(
                "issuer",
                FAIL,
                f"the tenant names its issuer {served!r}, the stack trusts {issuer!r}{hint}: API Gateway compares "
                f"a token's `iss` with it byte for byte, so it would refuse every token (401).",
                f"set `issuer` under {ctx.settings} to {served!r}, exactly as the tenant names it.",
            )
        ]
    jwks_uri = document.get("jwks_uri")
    parts = urlsplit(jwks_uri) if isinstance(jwks_uri, str) else None
    issuer_parts = urlsplit(issuer)
    https = parts is not None and (
        parts.scheme == "https" or (_is_loopback(issuer_parts.hostname) and parts.scheme == issuer_parts.scheme)
    )
    if not isinstance(jwks_uri, str) or parts is None or not https or parts.hostname != issuer_parts.hostname:
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's jwks_uri {jwks_uri!r} is not an https URL on {issuer_parts.hostname}: API Gateway "
                f"could not fetch its signing keys.",
                f"check the tenant; {shape}.",
            )
        ]
    keys, problem = _get_json(ctx.http, jwks_uri)
    found = keys.get("keys") if isinstance(keys, dict) else None
    if problem or not isinstance(found, list) or not found:
        detail = problem or "no key in it"
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's key set {jwks_uri} is unusable: {detail}.",
                f"check the tenant's signing keys (Auth0: Settings > Signing Keys); {shape}.",
            )
        ]
    if not any(isinstance(k, dict) and k.get("kty") == "RSA" for k in found):
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's key set {jwks_uri} has no RSA key: API Gateway's JWT authorizer verifies RS256 only.",
                "sign the API's tokens with RS256 (Auth0: the API's settings, Signing Algorithm).",
            )
        ]
    return [
        Finding(
            "issuer",
            OK,
            f"{issuer} names itself exactly so and serves {len(found)} key(s) at {jwks_uri}; audience "
            f"{', '.join(map(str, audience))}.",
        )
    ]


def _get_json(http: Any, url: str) -> tuple[Any, str]:
    """(document, "") or (None, what went wrong)."""
    try:
        response = http.get(url, timeout=HTTP_TIMEOUT_S, allow_redirects=False, headers={"Accept": "application/json"})
    except Exception as exc:  # requests' connection errors, timeouts, invalid URLs
        return None, f"could not be fetched ({type(exc).__name__})"
    if response.status_code != 200:
        return None, f"answered HTTP {response.status_code}"
    try:
        return response.json(), ""
    except ValueError:
        kind = response.headers.get("Content-Type", "no Content-Type")
        return None, f"answered something that is not JSON ({kind})"


def check_certificates(ctx: Context) -> list[Finding]:
    findings = []
    for logical_id, _, props in resources(ctx.template, "AWS::ApiGatewayV2::DomainName"):
        domain = ctx.name(props, "DomainName") or logical_id
        for configuration in props.get("DomainNameConfigurations") or []:
            arn = ctx.name(configuration, "CertificateArn")
            if not arn:
                findings.append(Finding("certificate", OK, f"{domain}: the certificate is created by the stack."))
                continue
            findings.append(_check_certificate(ctx, domain, arn))
    return findings


def _check_certificate(ctx: Context, domain: str, arn: str) -> Finding:
    where = f"`certificate_arn` under {ctx.settings}"
    arn_parts = arn.split(":")
    region = arn_parts[3] if len(arn_parts) > 5 else ""
    if region != ctx.region:
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is in region {region or '?'}, the stack deploys to {ctx.region}: a regional "
            f"API's custom domain needs a certificate in its own region.",
            f"request (or import) a certificate for {domain} in ACM in {ctx.region}, validate it, and set {where}.",
        )
    try:
        certificate = ctx.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except Exception as exc:
        if aws_error_code(exc) != "ResourceNotFoundException":
            raise
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} does not exist in account {ctx.account}, region {ctx.region}.",
            f"request a certificate for {domain} in ACM in {ctx.region} and set {where}.",
        )
    status = certificate.get("Status")
    if status == "PENDING_VALIDATION":
        records = [
            f"{r['Name']} {r['Type']} {r['Value']}"
            for option in certificate.get("DomainValidationOptions") or []
            if isinstance(r := option.get("ResourceRecord"), dict)
        ]
        shown = f" ({'; '.join(records)})" if records else ""
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is PENDING_VALIDATION: API Gateway accepts ISSUED certificates only.",
            f"create the DNS validation record(s) ACM shows{shown}, wait for ISSUED (minutes once DNS answers), then "
            f"deploy.",
        )
    if status != "ISSUED":
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is {status}, not ISSUED.",
            f"request a new certificate for {domain} in {ctx.region}, validate it and set {where}.",
        )
    names = [certificate.get("DomainName"), *(certificate.get("SubjectAlternativeNames") or [])]
    if not any(_covers(str(n), domain) for n in names if n):
        return Finding(
            "certificate",
            FAIL,
            f"{domain}: certificate {arn} is for {', '.join(dict.fromkeys(map(str, filter(None, names))))}, not "
            f"{domain}.",
            f"use a certificate whose names include {domain} ({where}).",
        )
    return Finding("certificate", OK, f"{domain}: certificate {arn} is ISSUED in {ctx.region}.")


def _covers(name: str, domain: str) -> bool:
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name.startswith("*."):
        return domain.count(".") == name.count(".") and domain.split(".", 1)[1] == name[2:]
    return name == domain


def check_alarm_subscription(ctx: Context) -> list[Finding]:
    topics = {lid: ctx.name(p, "TopicName") for lid, _, p in resources(ctx.template, "AWS::SNS::Topic")}
    subscriptions: list[tuple[str | None, str]] = []  # (topic name, e-mail address)
    for _, _, props in resources(ctx.template, "AWS::SNS::Subscription"):
        if str(props.get("Protocol", "")).lower() in ("email", "email-json"):
            target = props.get("TopicArn")
            lid = target.get("Ref") if isinstance(target, dict) else None
            subscriptions.append((topics.get(lid) if lid else None, str(props.get("Endpoint"))))
    for lid, _, props in resources(ctx.template, "AWS::SNS::Topic"):
        for inline in props.get("Subscription") or []:
            if str(inline.get("Protocol", "")).lower() in ("email", "email-json"):
                subscriptions.append((topics.get(lid), str(inline.get("Endpoint"))))
    if not subscriptions:
        return [
            Finding(
                "alarm-subscription",
                WARN,
                "no e-mail subscription in the template: alarms reach nobody.",
                f"set `alarm_email` under {ctx.settings}.",
            )
        ]
    findings = []
    sns = ctx.client("sns")
    for topic, email in subscriptions:
        if not topic:
            findings.append(Finding("alarm-subscription", WARN, f"{email}: the topic has no plain name: not checked."))
            continue
        arn = f"arn:{ctx.partition}:sns:{ctx.region}:{ctx.account}:{topic}"
        try:
            found = [
                s
                for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
                for s in page.get("Subscriptions", [])
            ]
        except Exception as exc:
            if aws_error_code(exc) not in ("NotFound", "NotFoundException"):
                raise
            findings.append(
                Finding(
                    "alarm-subscription",
                    OK,
                    f"topic {topic} does not exist yet: the deploy subscribes {email}, and AWS mails it a link to "
                    f"confirm (alarms reach it only once confirmed).",
                )
            )
            continue
        mine = [s for s in found if s.get("Endpoint") == email and str(s.get("Protocol", "")).startswith("email")]
        if not mine:
            findings.append(
                Finding(
                    "alarm-subscription",
                    OK,
                    f"topic {topic}: the deploy subscribes {email}; AWS mails it a link to confirm.",
                )
            )
        elif any(s.get("SubscriptionArn") == "PendingConfirmation" for s in mine):
            findings.append(
                Finding(
                    "alarm-subscription",
                    WARN,
                    f"topic {topic}: the subscription of {email} is pending confirmation: alarms do not reach it.",
                    f"confirm the e-mail AWS sent to {email} ('AWS Notification - Subscription Confirmation'); "
                    f"expired after 3 days: delete the subscription and deploy again to get a new one.",
                )
            )
        else:
            findings.append(Finding("alarm-subscription", OK, f"topic {topic}: {email} is subscribed and confirmed."))
    return findings


def check_stack(ctx: Context) -> list[Finding]:
    status = ctx.stack_status
    if status is None:
        return [Finding("stack", OK, f"stack {ctx.stack} does not exist in {ctx.region}: the deploy creates it.")]
    if status == "REVIEW_IN_PROGRESS":
        return [Finding("stack", OK, f"stack {ctx.stack} is {status} (a change set never run): the deploy creates it.")]
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
        return [
            Finding(
                "stack",
                FAIL,
                f"stack {ctx.stack} is {status}: its first create failed, and CloudFormation cannot update it.",
                f"read why in its events (aws cloudformation describe-stack-events --stack-name {ctx.stack}), then "
                f"delete it (aws cloudformation delete-stack --stack-name {ctx.stack}) and deploy again; mind the "
                f"leftovers below.",
            )
        ]
    if status == "DELETE_FAILED":
        return [
            Finding(
                "stack",
                FAIL,
                f"stack {ctx.stack} is DELETE_FAILED: some resource would not go.",
                "see which in its events, remove it by hand or delete the stack with --retain-resources, then deploy.",
            )
        ]
    if status == "UPDATE_ROLLBACK_FAILED":
        return [
            Finding(
                "stack",
                FAIL,
                f"stack {ctx.stack} is UPDATE_ROLLBACK_FAILED: no update is possible until the rollback completes.",
                f"aws cloudformation continue-update-rollback --stack-name {ctx.stack} (skipping the resources that "
                f"block it, see its events), then deploy.",
            )
        ]
    if status.endswith("_IN_PROGRESS"):
        return [
            Finding(
                "stack",
                FAIL,
                f"stack {ctx.stack} is {status}: another operation is running.",
                "wait for it to finish (aws cloudformation describe-stacks), then deploy.",
            )
        ]
    return [Finding("stack", OK, f"stack {ctx.stack} is {status}.")]


@dataclass(frozen=True, slots=True)
class NamedKind:
    what: str  # for people
    key: str  # the property that names it
    exists: Callable[[Context, str], str | None]  # None: absent; else what is there ("" or a detail)
    fix: Callable[[Context, str], str]


def _absent_on(exc: Exception, *codes: str) -> None:
    if aws_error_code(exc) not in codes:
        raise exc


def _table_exists(ctx: Context, name: str) -> str | None:
    try:
        ctx.client("dynamodb").describe_table(TableName=name)
    except Exception as exc:
        _absent_on(exc, "ResourceNotFoundException")
        return None
    return ""


def _log_group_exists(ctx: Context, name: str) -> str | None:
    logs = ctx.client("logs")
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        if any(g.get("logGroupName") == name for g in page.get("logGroups", [])):
            return ""
    return None


def _secret_exists(ctx: Context, name: str) -> str | None:
    try:
        secret = ctx.client("secretsmanager").describe_secret(SecretId=name)
    except Exception as exc:
        _absent_on(exc, "ResourceNotFoundException")
        return None
    if secret.get("Name") not in (None, name):
        return None  # SecretId also matches by ARN prefix; only the same name blocks
    deleted = secret.get("DeletedDate")
    return f", scheduled for deletion on {deleted:%Y-%m-%d}" if hasattr(deleted, "strftime") else ""


def _queue_exists(ctx: Context, name: str) -> str | None:
    try:
        ctx.client("sqs").get_queue_url(QueueName=name)
    except Exception as exc:
        _absent_on(exc, "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
        return None
    return ""


def _topic_exists(ctx: Context, name: str) -> str | None:
    try:
        ctx.client("sns").get_topic_attributes(TopicArn=f"arn:{ctx.partition}:sns:{ctx.region}:{ctx.account}:{name}")
    except Exception as exc:
        _absent_on(exc, "NotFound", "NotFoundException")
        return None
    return ""


def _function_exists(ctx: Context, name: str) -> str | None:
    try:
        ctx.client("lambda").get_function(FunctionName=name)
    except Exception as exc:
        _absent_on(exc, "ResourceNotFoundException")
        return None
    return ""


def _import_or(ctx: Context, rest: str) -> str:
    return f"bring it into the stack with `cdk import` (keeps it), or {rest}"


NAMED_KINDS: dict[str, NamedKind] = {
    "AWS::DynamoDB::Table": NamedKind(
        "DynamoDB table",
        "TableName",
        _table_exists,
        lambda ctx, n: _import_or(
            ctx,
            f"back it up (aws dynamodb create-backup --table-name {n} --backup-name {n}-leftover) and delete it "
            f"(turn deletion protection off first: aws dynamodb update-table --table-name {n} "
            f"--no-deletion-protection-enabled; then aws dynamodb delete-table --table-name {n})",
        ),
    ),
    "AWS::Logs::LogGroup": NamedKind(
        "log group",
        "LogGroupName",
        _log_group_exists,
        lambda ctx, n: f"export what you need, then delete it: aws logs delete-log-group --log-group-name {n}",
    ),
    "AWS::SecretsManager::Secret": NamedKind(
        "secret",
        "Name",
        _secret_exists,
        lambda ctx, n: (
            f"keep the value: restore it (aws secretsmanager restore-secret --secret-id {n}, if scheduled for "
            f"deletion) and `cdk import` it; or drop it at once: aws secretsmanager delete-secret --secret-id {n} "
            f"--force-delete-without-recovery (put the club's credential again after the deploy)"
        ),
    ),
    "AWS::SQS::Queue": NamedKind(
        "queue",
        "QueueName",
        _queue_exists,
        lambda ctx, n: (
            f"read any messages, then delete it (aws sqs delete-queue --queue-url $(aws sqs get-queue-url "
            f"--queue-name {n} --query QueueUrl --output text)) and wait 60 s before deploying"
        ),
    ),
    "AWS::SNS::Topic": NamedKind(
        "SNS topic",
        "TopicName",
        _topic_exists,
        lambda ctx, n: (
            f"delete it: aws sns delete-topic --topic-arn arn:{ctx.partition}:sns:{ctx.region}:{ctx.account}:{n}"
        ),
    ),
    "AWS::Lambda::Function": NamedKind(
        "Lambda function",
        "FunctionName",
        _function_exists,
        lambda ctx, n: f"delete it: aws lambda delete-function --function-name {n}",
    ),
}
NAMED_KINDS["AWS::DynamoDB::GlobalTable"] = NAMED_KINDS["AWS::DynamoDB::Table"]


def check_leftovers(ctx: Context) -> list[Finding]:
    """Named resources the deploy would create that exist already outside the stack: each blocks the create."""
    healthy = ctx.stack_status is not None and ctx.stack_status not in NOT_CREATED
    findings, checked = [], 0
    for logical_id, resource, props in resources(ctx.template, *NAMED_KINDS):
        kind = NAMED_KINDS[resource["Type"]]
        name = ctx.name(props, kind.key)
        if not name or (healthy and logical_id in ctx.stack_resources):
            continue  # a generated name never collides; a resource the stack holds is its own
        checked += 1
        detail = kind.exists(ctx, name)
        if detail is None:
            continue
        retained = resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")
        why = "kept by its DeletionPolicy when a stack was deleted" if retained else "made outside the stack"
        state = f"stack {ctx.stack} is {ctx.stack_status}" if ctx.stack_status else f"stack {ctx.stack} does not exist"
        fix = kind.fix(ctx, name)
        if ctx.stack_status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"):
            fix = f"delete stack {ctx.stack} first; then {fix}"
        findings.append(
            Finding(
                "leftover",
                FAIL,
                f"{kind.what} {name} already exists{detail} ({why}; {state}): creating it fails with 'already exists'.",
                fix + ".",
            )
        )
    if not findings:
        if healthy:
            message = f"every named resource of the template is stack {ctx.stack}'s own, or new and free ({checked})."
        else:
            message = f"none of the template's {checked} named resources exists yet in {ctx.region}."
        findings.append(Finding("leftover", OK, message))
    return findings


CHECKS: tuple[tuple[str, Callable[[Context], list[Finding]]], ...] = (
    ("stack", check_stack),
    ("concurrency", check_concurrency),
    ("issuer", check_issuer),
    ("certificate", check_certificates),
    ("alarm-subscription", check_alarm_subscription),
    ("leftover", check_leftovers),
)


def _read_stack(ctx: Context) -> None:
    cloudformation = ctx.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=ctx.stack)["Stacks"]
    except Exception as exc:
        if aws_error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return
        raise
    ctx.stack_status = stacks[0]["StackStatus"] if stacks else None
    if ctx.stack_status is None or ctx.stack_status in NOT_CREATED:
        return
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=ctx.stack):
        for summary in page.get("StackResourceSummaries", []):
            if summary.get("PhysicalResourceId") and summary.get("ResourceStatus") != "DELETE_COMPLETE":
                ctx.stack_resources[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]


def run_checks(ctx: Context) -> list[Finding]:
    from botocore.exceptions import NoCredentialsError

    findings: list[Finding] = []
    try:
        _read_stack(ctx)
    except NoCredentialsError:
        raise
    except Exception as exc:
        return [
            Finding(
                "stack",
                ERROR,
                f"could not read stack {ctx.stack}: {aws_error_code(exc)}: {exc}",
                "run with credentials that may call cloudformation:DescribeStacks and ListStackResources.",
            )
        ]
    for check, run in CHECKS:
        try:
            findings.extend(run(ctx))
        except NoCredentialsError:
            raise
        except Exception as exc:  # denied, throttled, unreachable: say which check could not run
            findings.append(
                Finding(
                    check,
                    ERROR,
                    f"could not check: {aws_error_code(exc)}: {exc}",
                    "run with credentials that may read what this check reads (the deploy role's ReadOnlyAccess "
                    "covers it), then run preflight again.",
                )
            )
    return findings


def identity(client: Clients) -> tuple[str, str]:
    """(account, partition) of the caller; no or refused credentials are a usage error (exit 2)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        caller = client("sts").get_caller_identity()
    except NoCredentialsError:
        raise TargetError(
            "no AWS credentials: set AWS_PROFILE (aws sso login) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the "
            "account to deploy to"
        ) from None
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"AWS refused the credentials: {aws_error_code(exc)}: {exc}") from None
    return caller["Account"], caller["Arn"].split(":")[1]


def command(args: argparse.Namespace, *, clients: Clients | None = None, http: Any = None) -> int:
    """`cappi preflight`: `clients` and `http` replace boto3 and requests (tests)."""
    from botocore.exceptions import NoCredentialsError

    path = Path(args.template) if args.template else ROOT / "cdk.out" / f"{stack_name(args.stage)}.template.json"
    template = read_template(path, args.stage)
    if clients is None:
        clients, region = aws_clients(args.region)
    else:
        region = args.region or clients("sts").meta.region_name
    account, partition = identity(clients)
    ctx = Context(args.stage, template, region, account, partition, clients, http or http_session())
    try:
        findings = run_checks(ctx)
    except NoCredentialsError:
        raise TargetError("no AWS credentials (they expired during the checks?)") from None
    where = {"stage": args.stage, "stack": ctx.stack, "template": str(path), "region": region, "account": account}
    if args.json:
        print_findings(findings, json_document=where)
    else:
        print(f"preflight {ctx.stack} in account {account}, {region} ({path}):", file=sys.stderr)
        print_findings(findings)
    return exit_code(findings)
