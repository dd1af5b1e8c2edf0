"""Preflight: Lambda concurrency, what the template reserves against the account's quota and what is unreserved
now (Lambda refuses a reservation that leaves fewer than 100 unreserved executions)."""

from __future__ import annotations

from cappi.contracts.stack import UNRESERVED_MINIMUM
from cli.aws import aws_error_code
from cli.cloudformation import resources
from cli.findings import FAIL, OK, WARN, Finding
from cli.preflight.context import Context


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
        f"throttle_burst), or ingest_reserved_concurrency"
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
