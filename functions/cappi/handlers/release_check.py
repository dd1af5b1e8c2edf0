"""Release check Lambda: CodeDeploy's pre-traffic hook for the query function.

Event (from CodeDeploy): `{"DeploymentId": "d-...", "LifecycleEventHookExecutionId": "..."}`. Before any traffic
moves to the new query version (`CAPPI_QUERY_VERSION`, its qualified ARN), the check reads the heads of the
registry's enabled sources, asks that version one question as API Gateway would (`cappi.domain.release_check`), and
reports `Succeeded` or `Failed` to CodeDeploy, which rolls the release back on `Failed`. Whatever goes wrong inside
the check is a `Failed` with its reason logged; only a failed report raises (Lambda then retries the invocation).
Invoked without a deployment (by hand), it checks and returns the verdict without reporting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cappi.contracts import api
from cappi.domain import release_check as rules
from cappi.domain.heads import Head
from cappi.domain.registry import ClubRegistry, load_registry
from cappi.handlers.entry import Handler, lambda_handler
from cappi.observability import logger
from cappi.settings import ReleaseCheckSettings

# The role's grant names the version being released, so its policy changes with every release, moments before
# CodeDeploy calls the check: IAM may take seconds to show it. A refusal is retried for a while before it counts,
# so a release is never rolled back for IAM's propagation alone (14 s of the function's 60).
ACCESS_RETRY_DELAYS_S = (2.0, 4.0, 8.0)
HeadsReader = Callable[[Iterable[str]], Mapping[str, Head | None]]
Invoke = Callable[[dict[str, Any]], rules.Invocation]
Report = Callable[[str, str, bool], None]  # (deployment ID, hook execution ID, passed)


@dataclass(frozen=True, slots=True)
class ReleaseCheckDependencies:
    settings: ReleaseCheckSettings
    registry: ClubRegistry
    heads: HeadsReader
    invoke: Invoke
    report: Report
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls, session: Any = None) -> ReleaseCheckDependencies:
        """`session`: a boto3 Session with other credentials than the environment's (tests)."""
        from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, aws_client
        from cappi.adapters.codedeploy import LifecycleHookReporter
        from cappi.adapters.dynamo.client import QUERY_ATTEMPTS, dynamodb_client
        from cappi.adapters.dynamo.shard_source import DynamoShardSource
        from cappi.adapters.dynamo.table import SnapshotTable
        from cappi.adapters.lambda_invoker import SyncInvoker, sync_lambda_client

        settings = ReleaseCheckSettings.from_env()
        table = SnapshotTable(dynamodb_client(QUERY_ATTEMPTS, session=session), settings.table_name)
        return cls(
            settings=settings,
            registry=load_registry(settings.clubs_file),
            heads=DynamoShardSource(table).heads,
            invoke=SyncInvoker(settings.query_version, sync_lambda_client(session)),
            report=LifecycleHookReporter(aws_client("codedeploy", BACKGROUND_TIMEOUTS, session=session)),
        )


def make_handler(dependencies: Callable[[], ReleaseCheckDependencies] = ReleaseCheckDependencies.from_env) -> Handler:
    """The Lambda handler; tests pass their own dependencies."""
    return lambda_handler(dependencies, _check_and_report)


def check(deps: ReleaseCheckDependencies, request_id: str) -> tuple[rules.Verdict, rules.Probe | None]:
    """The verdict on the new version; every failure on the way is a failed verdict with its reason."""
    settings = deps.settings
    try:
        heads = deps.heads([s.name for s in deps.registry.enabled_sources])
        probe = rules.choose_probe(deps.registry, heads)
    except Exception as exc:  # the check could not find its question: it cannot vouch for the release
        return rules.Verdict(False, f"could not choose a club to ask: {type(exc).__name__}: {exc}"), None
    claims = rules.probe_claims(probe, scope=settings.required_scope, club_claim=settings.club_claim)
    event = rules.probe_event(probe, method=api.METHOD, route=api.ROUTE, claims=claims, request_id=request_id)
    for delay in (*ACCESS_RETRY_DELAYS_S, None):
        try:
            invocation = deps.invoke(event)
            break
        except Exception as exc:
            if delay is not None and _access_denied(exc):
                logger.warning("the new version's invoke was refused: waiting for IAM", extra={"retry_in_s": delay})
                deps.sleep(delay)
                continue
            invocation = rules.Invocation(failure=f"{type(exc).__name__}: {exc}")
            break
    return rules.judge(invocation, probe), probe


def _access_denied(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return "AccessDenied" in str(code)


def _check_and_report(event: dict[str, Any], context: Any, deps: ReleaseCheckDependencies) -> dict[str, Any]:
    verdict, probe = check(deps, getattr(context, "aws_request_id", "release-check"))
    summary = {
        "version": deps.settings.query_version,
        "passed": verdict.passed,
        "reason": verdict.reason,
        "status": verdict.status,
        "club_id": probe.club_id if probe else None,
        "expected_status": probe.expected_status if probe else None,
        "probe": probe.why if probe else None,
    }
    if verdict.passed:
        logger.info("release check passed", extra=summary)
    else:
        logger.error("release check failed", extra=summary)
    deployment_id = event.get("DeploymentId") if isinstance(event, dict) else None
    execution_id = event.get("LifecycleEventHookExecutionId") if isinstance(event, dict) else None
    if isinstance(deployment_id, str) and isinstance(execution_id, str):
        deps.report(deployment_id, execution_id, verdict.passed)
        summary["reported"] = "Succeeded" if verdict.passed else "Failed"
    else:
        logger.warning("no CodeDeploy deployment in the event: nothing reported")
        summary["reported"] = None
    return summary


handler = make_handler()
