"""Static egress addresses for clubs that allow-list their callers: the ingest function runs in private subnets of
its own VPC and reaches clubs through NAT gateways with Elastic IPs, whose addresses the stack outputs.

Off by default (stage setting `static_egress`): when off, none of this exists and the stack is as before. Each NAT
gateway is billed by the hour and by the gigabyte (docs/operations.md); DynamoDB traffic takes a gateway endpoint
instead, which is free, so only club traffic and ingest's SSM Parameter Store reads (its credentials, one small
request per source and cache age) cross the NAT.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import StageConfig
from infra.functions import stage_log_group
from infra.nag import acknowledge

EGRESS_OUTPUT = "EgressAddresses"


class StaticEgress(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        count = config.egress_addresses
        self.addresses = [
            ec2.CfnEIP(
                self,
                f"Address{n + 1}",
                domain="vpc",
                tags=[{"key": "Name", "value": f"cappi-{config.stage}-egress-{n + 1}"}],
            )
            for n in range(count)
        ]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=config.resource_name("egress"),
            max_azs=count,
            nat_gateways=count,
            nat_gateway_provider=ec2.NatProvider.gateway(
                eip_allocation_ids=[a.attr_allocation_id for a in self.addresses]
            ),
            subnet_configuration=[
                ec2.SubnetConfiguration(name="nat", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=28),
                ec2.SubnetConfiguration(name="ingest", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24),
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
            },
        )
        flow_logs = stage_log_group(self, "FlowLogs", config, f"/cappi/{config.stage}/egress-flow-logs")
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        self.security_group = ec2.SecurityGroup(
            self,
            "Ingest",
            vpc=self.vpc,
            description="cappi ingest: outbound only (clubs over HTTPS, AWS APIs)",
            allow_all_outbound=True,
        )
        CfnOutput(
            self,
            "Addresses",
            value=Fn.join(" ", [a.attr_public_ip for a in self.addresses]),
            description="The addresses ingest calls clubs from: give them to clubs that allow-list callers",
        ).override_logical_id(EGRESS_OUTPUT)

    def allow_network_interfaces(self, role: iam.Role) -> None:
        """Lambda needs to create and delete the function's network interfaces in the VPC."""
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
            "AWSLambdaVPCAccessExecutionRole is the AWS-maintained set of EC2 network-interface actions a function in "
            "a VPC needs; those actions cannot be scoped to resources that exist before the function does.",
        )

    @property
    def network(self) -> dict[str, object]:
        """The ingest function's network settings: the private subnets, behind the NAT gateways."""
        return {
            "vpc": self.vpc,
            "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            "security_groups": [self.security_group],
        }
