"""Which CAPPI a command talks to: a deployed stage (its stack's outputs, the caller's AWS credentials and region)
or the local mode running on this machine (its `endpoints.json`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cappi.adapters.dynamo.as_of import PointInTimeReads
from cappi.adapters.dynamo.poll_log import DynamoPollLog
from cappi.adapters.dynamo.shard_source import DynamoShardSource
from cappi.adapters.dynamo.table import SnapshotTable
from cappi.contracts import stack
from cappi.contracts.local_state import DEFAULT_STATE_DIR, ENDPOINTS_FILE
from cappi.domain.registry import ClubRegistry, RegistryError, load_registry
from cappi.settings import IngestSettings

ROOT = Path(__file__).resolve().parent.parent  # the repository: clubs/<stage>.json is the deployed registry


class TargetError(Exception):
    """The target cannot be reached or read (exit code 2)."""


@dataclass(frozen=True)
class Target:
    where: str  # for people: "stage (eu-west-1)", "local mode at http://127.0.0.1:3000"
    table: SnapshotTable
    registry: ClubRegistry
    stale_after_s: float
    client: Callable[[str], Any]  # boto3 client of a service ("ssm", "lambda") at this target
    ingest_function: str | None = None  # deployed stages: polled with a synchronous invoke
    local_environment: dict[str, str] | None = None  # local mode: what its ingest handler runs with

    @property
    def snapshots(self) -> DynamoShardSource:
        """Heads and shards, as the query reads them."""
        return DynamoShardSource(self.table)

    @property
    def polls(self) -> DynamoPollLog:
        """Each source's last poll."""
        return DynamoPollLog(self.table)

    @property
    def history(self) -> PointInTimeReads:
        """What was open at a past moment still kept."""
        return PointInTimeReads(self.table)


def local_target(state_dir: str | Path = DEFAULT_STATE_DIR) -> Target:
    path = Path(state_dir) / ENDPOINTS_FILE
    try:
        endpoints = json.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"local mode is not running (no {path}); start it with `make run`") from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read {path}: {exc}") from None
    import boto3

    # Local mode enforces IAM (local/iam.py): `cappi` works as its operator, and `cappi poll` runs the ingest
    # handler with the ingest role's keys, as deployed. Never the caller's own AWS credentials.
    fallback = {"AWS_ACCESS_KEY_ID": "cappi-local", "AWS_SECRET_ACCESS_KEY": "cappi-local"}
    operator = endpoints.get("credentials") or fallback
    ingest_role = endpoints.get("ingest_credentials") or operator

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoints["dynamodb"],
            region_name=endpoints["region"],
            aws_access_key_id=operator["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=operator["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=operator.get("AWS_SESSION_TOKEN"),
        )

    environment = {
        "AWS_ENDPOINT_URL": endpoints["dynamodb"],
        "AWS_DEFAULT_REGION": endpoints["region"],
        **ingest_role,
        **IngestSettings(table_name=endpoints["table"], clubs_file=endpoints["clubs_file"]).to_env(defaults=False),
        "CAPPI_STATE_DIR": str(Path(state_dir).resolve()),  # local mode's own: where `cappi poll` logs
    }
    return Target(
        where=f"local mode at {endpoints['api']}",
        table=SnapshotTable(client("dynamodb"), endpoints["table"]),
        registry=_registry(Path(endpoints["clubs_file"])),
        stale_after_s=float(endpoints["stale_after_s"]),
        client=client,
        local_environment=environment,
    )


def stage_target(stage: str, *, region: str | None = None, cloudformation: Any = None, dynamodb: Any = None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cloudformation = cloudformation or boto3.client("cloudformation", region_name=region)
        stacks = cloudformation.describe_stacks(StackName=stack.stack_name(stage))["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"cannot read stack {stack.stack_name(stage)}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in (stack.TABLE_OUTPUT, stack.STALE_AFTER_OUTPUT) if k not in outputs]
    if missing:
        raise TargetError(f"stack {stack.stack_name(stage)} has no output {', '.join(missing)}: deploy it again")
    dynamodb = dynamodb or boto3.client("dynamodb", region_name=region)
    return Target(
        where=f"{stage} ({dynamodb.meta.region_name})",
        table=SnapshotTable(dynamodb, outputs[stack.TABLE_OUTPUT]),
        registry=_registry(ROOT / "clubs" / f"{stage}.json"),
        stale_after_s=float(outputs[stack.STALE_AFTER_OUTPUT]),
        client=lambda service: boto3.client(service, region_name=dynamodb.meta.region_name),
        ingest_function=outputs.get(stack.INGEST_FUNCTION_OUTPUT),
    )


def _registry(path: Path) -> ClubRegistry:
    try:
        return load_registry(path)
    except (OSError, RegistryError) as exc:
        raise TargetError(str(exc)) from None
