"""Where CAPPI keeps state: the snapshot table, and where the club credentials are read from.

The credentials are no resource of the stack (cappi.contracts.credentials): each is an SSM SecureString parameter
ops write with `cappi secrets set`; the stack only grants ingest a bounded set of parameter patterns.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from cappi.adapters.dynamo.schema import PK, SK, TTL_ATTRIBUTE
from cappi.contracts.credentials import CREDENTIALS_METADATA, parameter_name, parameter_patterns
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

        # Club credentials are SSM SecureString parameters ops write with `cappi secrets set`: no resource of the
        # stack, so neither a deploy nor a template ever carries or replaces one, and the stack does not grow per
        # source. What the ingest role may read: a bounded set of patterns (raises past the bound, failing synth).
        self.credential_patterns = parameter_patterns(registry.secret_names)
        stack = Stack.of(self)
        self.credential_arns = [
            stack.format_arn(
                service="ssm",
                resource="parameter",
                resource_name=pattern.removeprefix("/"),
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for pattern in self.credential_patterns
        ]
        # Which parameters each enabled source reads, for `cappi preflight` (which reads only the template) to check
        # they exist before a deploy: names, never values; template metadata, no resource.
        stack.template_options.metadata = {
            **(stack.template_options.metadata or {}),
            CREDENTIALS_METADATA: {
                source.name: [parameter_name(n) for n in source.auth.secret_names]
                for source in registry.enabled_sources
                if source.auth.secret_names
            },
        }
        if self.credential_patterns:
            CfnOutput(
                self,
                "ClubCredentialParameters",
                value=" ".join(self.credential_patterns),
                description="SSM SecureString parameters ('/' + each registry secret name) that ops write with "
                "`cappi secrets set SOURCE --stage STAGE` (README)",
            ).override_logical_id("ClubCredentialParameters")

    def acknowledge_credential_patterns(self, reader: Construct) -> None:
        """cdk-nag flags a `<directory>/*` resource; each one granted to `reader` is there by design."""
        for pattern in self.credential_patterns:
            if pattern.endswith("/*"):
                acknowledge(
                    reader,
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:"
                    f"parameter{pattern}]",
                    "Club credentials are SSM parameters ops write, no resource of the stack: ingest reads those "
                    "under a directory of the registry's secret names, one pattern per directory, so the policy "
                    "does not grow with the sources (cappi.contracts.credentials).",
                )
