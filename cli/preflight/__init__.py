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
- Club credentials: every enabled source's SSM parameter (named in the template's metadata) exists, as a
  SecureString; a missing one fails with the `cappi secrets set` command that fixes it.

One finding per line: severity (FAIL, WARN, ok, or ERROR when a check could not run), what was found, what to do.

This package runs them: one module per check, each `check_*(ctx) -> list[Finding]` on the `Context`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cappi.contracts.stack import stack_name
from cli.aws import Clients, aws_clients, aws_error_code, http_session
from cli.cloudformation import NOT_CREATED, read_template
from cli.findings import ERROR, Finding, report
from cli.preflight.alarm_subscription import check_alarm_subscription
from cli.preflight.certificate import check_certificates
from cli.preflight.concurrency import check_concurrency
from cli.preflight.context import Context
from cli.preflight.credentials import check_credentials
from cli.preflight.issuer import check_issuer
from cli.preflight.leftovers import check_leftovers
from cli.preflight.stack import check_stack
from cli.target import ROOT, TargetError

CHECKS: tuple[tuple[str, Callable[[Context], list[Finding]]], ...] = (
    ("stack", check_stack),
    ("concurrency", check_concurrency),
    ("issuer", check_issuer),
    ("certificate", check_certificates),
    ("alarm-subscription", check_alarm_subscription),
    ("leftover", check_leftovers),
    ("credentials", check_credentials),
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
    headline = f"preflight {ctx.stack} in account {account}, {region} ({path}):"
    return report(findings, where=where, headline=headline, as_json=args.json)
