"""Where CAPPI keeps state: the snapshot table, and one Secrets Manager secret per club credential."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cappi.adapters.dynamo.schema import PK, SK, TTL_ATTRIBUTE
from cappi.domain.registry import ClubRegistry
from infra.config import StageConfig
from infra.nag import acknowledge


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, registry: ClubRegistry) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
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
            deletion_protection=config.retain_data,
            removal_policy=removal,
        )

        self.secrets: dict[str, secretsmanager.Secret] = {}
        for name in registry.secret_names:
            users = ", ".join(s.name for s in registry.sources if name in s.auth.secret_names)
            secret = secretsmanager.Secret(
                self,
                "ClubSecret-" + name.replace("/", "-"),
                secret_name=name,
                description=f"Credential CAPPI sends to club source {users}. Its value is set by ops.",
                removal_policy=removal,
            )
            # Without a value or a generator CloudFormation creates an empty secret: ops set the real credential,
            # and neither a deploy nor a template ever carries or replaces it.
            secret.node.default_child.add_property_deletion_override("GenerateSecretString")  # type: ignore[union-attr]
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "The value is a credential the club issues; Secrets Manager cannot rotate it. Ops replace it with "
                "put-secret-value when the club rotates (README, Operations).",
            )
            self.secrets[name] = secret
        if self.secrets:
            CfnOutput(
                self,
                "ClubSecretNames",
                value=" ".join(self.secrets),
                description="Secrets whose values ops set with `aws secretsmanager put-secret-value` (README)",
            ).override_logical_id("ClubSecretNames")
