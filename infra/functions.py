"""The Lambda functions as data, and one factory that turns a spec into a function with its own role and log group.
Every function is built the same way; only the spec and the grants differ.

Query, ingest and dispatch are released as versions behind an alias named `live`, and everything that invokes them
invokes the alias: API Gateway, the schedule, dispatch (infra/api.py, infra/ingest.py). A deploy publishes a new
version; CodeDeploy moves the query's alias to it gradually (infra/release.py), the others' at once. Old versions
are kept, as CodeDeploy needs them to roll back to.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cappi.contracts import api as api_contract
from cappi.contracts import metrics, permissions
from infra.bundling import LAMBDA_PLATFORM, REGISTRY_NAME, Asset, build_asset
from infra.config import DEFAULT_INGEST_MEMORY_MB, LOG_RETENTION, StageConfig
from infra.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_13  # must match bundling.LAMBDA_PYTHON: the wheels are built for it
ARCHITECTURE = lambda_.Architecture.ARM_64  # must match bundling.LAMBDA_WHEEL_PLATFORM
# Lambda unpacks the asset into its task root; the registry sits at the asset's top: every function's settings
# name it (their clubs_file).
BUNDLED_CLUBS_FILE = f"/var/task/{REGISTRY_NAME}"
POWERTOOLS = "aws-lambda-powertools"
LIVE_ALIAS = "live"  # the alias every caller invokes


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    role: str  # "dispatch", "ingest" or "query": names the function, its log group and its service
    handler: str
    packages: tuple[str, ...]  # third-party distributions its code imports (boto3 comes with the runtime)
    memory_mb: int
    timeout_s: int
    description: str
    # Lambda's START/END/REPORT lines. Off for the query function: three lines per request, ~36 million requests a
    # month, and its duration, errors and throttles are Lambda metrics anyway (what is lost: REPORT's memory used).
    platform_logs: bool = True
    # Published as a version behind the `live` alias, which its callers invoke. Off for the release check: CodeDeploy
    # invokes it by its name (its latest code), and nothing else calls it.
    live_alias: bool = True

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def service(self) -> str:
        return f"cappi-{self.role}"


DISPATCH = FunctionSpec(
    role="dispatch",
    handler="cappi.handlers.dispatch.handler",
    packages=(POWERTOOLS,),
    memory_mb=256,
    timeout_s=60,
    description="Starts one asynchronous ingest per enabled club source on each schedule tick",
)
INGEST = FunctionSpec(
    role="ingest",
    handler="cappi.handlers.ingest.handler",
    packages=(POWERTOOLS, "requests", "msgspec"),
    # The stage's `ingest_memory_mb` (infra.config) sets it; this is its default: a changed poll of a 1,000,000-call
    # feed is parsed and grouped in memory, and more memory also buys CPU for that.
    memory_mb=DEFAULT_INGEST_MEMORY_MB,
    # The club fetch alone may take the client's 120 s deadline; the snapshot writes come after it.
    timeout_s=180,
    description="Polls one club source, validates its feed and publishes its snapshots",
)
QUERY = FunctionSpec(
    role="query",
    handler="cappi.handlers.query.handler",
    packages=(POWERTOOLS,),
    # Cold starts are on the tester's critical path, and Lambda's CPU share grows with memory.
    memory_mb=1024,
    timeout_s=10,
    description=f"Answers {api_contract.METHOD} {api_contract.ROUTE} from the current snapshots",
    platform_logs=False,
)
RELEASE_CHECK = FunctionSpec(
    role="release-check",
    handler="cappi.handlers.release_check.handler",
    packages=(POWERTOOLS,),
    memory_mb=256,
    # Two attempts of the query version's invoke (cappi.adapters.lambda_invoker: 25 s each at most), a heads read
    # and the report to CodeDeploy.
    timeout_s=60,
    description="CodeDeploy's pre-traffic hook: asks a new query version one question before it takes traffic",
    live_alias=False,
)
FUNCTIONS = (DISPATCH, INGEST, QUERY, RELEASE_CHECK)


@functools.cache
def lambda_asset(packages: Sequence[str], registry_file: Path) -> Asset:
    # Cached per process: both stages' stacks and every test app reuse one build per input set.
    return build_asset(tuple(packages), registry_file, LAMBDA_PLATFORM)


class CappiFunction(Construct):
    """A function of `spec` with a role that starts empty (grants are added by the caller), a log group with
    the stage's retention, metrics in the stage's own namespace and, if given, reserved concurrency (a floor that
    other functions cannot take, and a cap)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        network: Mapping[str, Any] | None = None,  # vpc, vpc_subnets, security_groups (static egress only)
        reserved_concurrency: int | None = None,
        memory_mb: int | None = None,  # the stage's own figure, else the spec's
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.log_group = stage_log_group(self, "Logs", config, config.function_log_group_name(spec.role))
        # A role of its own, without AWSLambdaBasicExecutionRole: that managed policy may write to every log group.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.function_name(spec.role)}: least privilege for the {spec.role} function",
        )
        self.log_group.grant_write(self.role)
        asset = lambda_asset(spec.packages, config.clubs_file)
        self.reserved_concurrency = reserved_concurrency
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=config.function_name(spec.role),
            description=spec.description,
            code=lambda_.Code.from_asset(str(asset.path), asset_hash=asset.hash, asset_hash_type=AssetHashType.CUSTOM),
            handler=spec.handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_size=memory_mb or spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            # A replaced version stays: CodeDeploy rolls the alias back to it, and ops can point the alias at it.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
            **_log_format(spec),
            environment={
                "POWERTOOLS_SERVICE_NAME": spec.service,
                "POWERTOOLS_METRICS_NAMESPACE": metrics.namespace_for(config.stage),
                **environment,
            },
            **dict(network or {}),
        )
        runtime_reason = (
            f"Pinned to {RUNTIME.name}: the version the code is tested with and the asset's wheels are built for "
            "(infra/bundling.py LAMBDA_PYTHON). Moving to a newer Python is a deliberate upgrade of both."
        )
        acknowledge(self.function, "AwsSolutions-L1", runtime_reason)
        acknowledge(self.function, "Serverless-LambdaLatestVersion", runtime_reason)
        acknowledge(
            self.function,
            "Serverless-LambdaTracing",
            "X-Ray is off on purpose (cappi/observability.py): the Tracer import costs ~0.4 s of cold start, and "
            "structured logs and the stage's metrics already show each poll and request.",
        )
        # The version of this synth's code and configuration (a new one whenever either changes; the old ones are
        # retained) behind the alias callers invoke.
        self.alias: lambda_.Alias | None = None
        if spec.live_alias:
            self.alias = lambda_.Alias(
                self,
                "Live",
                alias_name=LIVE_ALIAS,
                version=self.function.current_version,
                description=f"What callers of the {spec.role} function invoke",
            )

    @property
    def live(self) -> lambda_.Alias:
        """The `live` alias: what API Gateway, the schedule and dispatch invoke."""
        if self.alias is None:
            raise ValueError(f"the {self.spec.role} function has no {LIVE_ALIAS} alias")
        return self.alias

    def grant_calls(self, resources: Mapping[str, Sequence[str]], *, granted_elsewhere: Collection[str] = ()) -> None:
        """The calls this function's code makes (cappi.contracts.permissions), on the stack's resources of each
        kind in `resources`. A kind the contract names but `resources` does not is a construction error; a kind with
        no resources (a registry without secrets) grants nothing. A kind in `granted_elsewhere` is granted by
        another construct already (CodeDeploy's deployment group grants its pre-traffic hook the status call) and
        is not granted twice; tests/infra holds the role to the contract either way."""
        for grant in permissions.grants_of(self.spec.role):
            if grant.resource in granted_elsewhere:
                if grant.resource in resources:
                    raise ValueError(f"{grant.resource} is granted elsewhere: give no resources for it")
                continue
            arns = resources[grant.resource]
            if arns:
                self.role.add_to_principal_policy(
                    iam.PolicyStatement(actions=list(grant.actions), resources=list(arns))
                )


def _log_format(spec: FunctionSpec) -> dict[str, Any]:
    """Without platform lines: JSON log format, whose system log level can drop them (WARN keeps Lambda's own
    warnings and errors, such as timeouts). The handlers' lines are JSON already and pass as they are; EMF lines
    too, and INFO is their level (they have none), which the application log level keeps."""
    if spec.platform_logs:
        return {}
    return {
        "logging_format": lambda_.LoggingFormat.JSON,
        "system_log_level_v2": lambda_.SystemLogLevel.WARN,
        "application_log_level_v2": lambda_.ApplicationLogLevel.INFO,
    }


def stage_log_group(
    scope: Construct,
    construct_id: str,
    config: StageConfig,
    name: str,
    *,
    log_class: logs.LogGroupClass = logs.LogGroupClass.STANDARD,
) -> logs.LogGroup:
    """A log group with the stage's retention, kept with the stack's data when the stage retains it."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        log_group_class=log_class,
        retention=LOG_RETENTION[config.log_retention_days],  # one of LOG_RETENTION_DAYS: the config checked it
        removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
    )
