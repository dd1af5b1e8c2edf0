"""Preflight: named resources the deploy would create that exist already outside the stack (left behind by a
failed first create, or retained by a deleted stack): CloudFormation refuses to create them again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cli.aws import aws_error_code
from cli.cloudformation import NOT_CREATED, resources
from cli.findings import FAIL, OK, Finding
from cli.preflight.context import Context


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
