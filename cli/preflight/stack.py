"""Preflight: the stack's own state, which may block a deploy (a failed first create, a failed rollback, another
operation running)."""

from __future__ import annotations

from cli.findings import FAIL, OK, Finding
from cli.preflight.context import Context


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
