"""Static egress addresses: off, the stack has no network at all; on, ingest (and only ingest) runs in private
subnets behind NAT gateways with Elastic IPs, and the stack outputs the addresses to give clubs."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

from infra.egress import EGRESS_OUTPUT

EGRESS = {"stage:static_egress": True, "stage:egress_addresses": 2, "cappi:stages": "stage"}


@pytest.fixture(scope="module")
def with_egress() -> Synth:
    return synth(**EGRESS)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def function(template: dict[str, Any], handler: str) -> dict[str, Any]:
    (found,) = [r for r in of_type(template, "AWS::Lambda::Function").values() if r["Properties"]["Handler"] == handler]
    return found["Properties"]


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_off_by_default_the_stack_has_no_network(stage: str) -> None:
    template = synth().templates[stage]
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::EC2::")]
    assert EGRESS_OUTPUT not in template["Outputs"]
    assert "VpcConfig" not in function(template, "cappi.handlers.ingest.handler")


def test_on_ingest_calls_clubs_from_the_stacks_elastic_ips(with_egress: Synth) -> None:
    template = with_egress.templates["stage"]
    addresses = of_type(template, "AWS::EC2::EIP")
    gateways = of_type(template, "AWS::EC2::NatGateway")
    assert len(addresses) == len(gateways) == 2
    assert {g["Properties"]["AllocationId"]["Fn::GetAtt"][0] for g in gateways.values()} == set(addresses)
    output = template["Outputs"][EGRESS_OUTPUT]["Value"]["Fn::Join"]
    assert output[0] == " "
    assert {part["Fn::GetAtt"][0] for part in output[1]} == set(addresses)

    ingest = function(template, "cappi.handlers.ingest.handler")
    private = {
        k for k, s in of_type(template, "AWS::EC2::Subnet").items() if not s["Properties"]["MapPublicIpOnLaunch"]
    }
    assert {s["Ref"] for s in ingest["VpcConfig"]["SubnetIds"]} == private
    for handler in ("cappi.handlers.query.handler", "cappi.handlers.dispatch.handler"):
        assert "VpcConfig" not in function(template, handler)
    (endpoint,) = of_type(template, "AWS::EC2::VPCEndpoint").values()
    assert "dynamodb" in str(endpoint["Properties"]["ServiceName"])
    assert of_type(template, "AWS::EC2::FlowLog")
    roles_with_vpc_access = [
        k for k, r in of_type(template, "AWS::IAM::Role").items() if "AWSLambdaVPCAccessExecutionRole" in str(r)
    ]
    assert len(roles_with_vpc_access) == 1
    assert roles_with_vpc_access[0] == ingest["Role"]["Fn::GetAtt"][0]


@pytest.mark.parametrize("count", ["0", "4", "two"])
def test_the_number_of_egress_addresses_is_checked(count: str) -> None:
    from support.synth import cdk_context

    import app as cdk_app
    from infra.config import ConfigError

    context = cdk_context(**{"cappi:stages": ["stage"], "stage:static_egress": "true", "stage:egress_addresses": count})
    with pytest.raises(ConfigError, match="egress_addresses"):
        cdk_app.build_app(context)
