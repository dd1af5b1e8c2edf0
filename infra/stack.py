"""The CAPPI stack of one stage. Storage is defined here; compute, API and monitoring arrive with their issues."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from cappi.adapters.snapshot_store import PK, SK, TTL_ATTRIBUTE
from cappi.domain.registry import load_registry
from infra.config import StageConfig


class CappiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        # Validate the registry at synth time: a broken registry must never reach a deploy.
        self.registry = load_registry(config.clubs_file)
        Tags.of(self).add("project", "cappi")
        Tags.of(self).add("stage", config.stage)

        self.table = dynamodb.TableV2(
            self,
            "Snapshots",
            table_name=config.resource_name("snapshots"),
            partition_key=dynamodb.Attribute(name=PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SK, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
