"""Alarms reach people: every alarm's action, the topic's policy and the topic key's policy, held together.

A small evaluator of the synthesized policies (explicit Deny wins, an Allow is needed, conditions as IAM reads them)
asks for each alarm of each stage what AWS would: may CloudWatch, publishing for this alarm of this account over
TLS, `sns:Publish` to the topic the alarm names and use the key that encrypts it? It must; and it must not over
plain HTTP, for another account, or for alarms that are not this stage's.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, cdk_context, synth

import app as cdk_app
from infra.config import ConfigError

STAGES = ("stage", "prod")
ACCOUNT, REGION = "111122223333", "eu-west-1"
CLOUDWATCH = "cloudwatch.amazonaws.com"


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth(**{"stage:alarm_email": "cappi-stage-ops@example.org"})


class Template:
    """Resolves the intrinsic functions these policies use, for a deploy to ACCOUNT and REGION."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources = template["Resources"]

    def arn(self, lid: str) -> str:
        resource = self.resources[lid]
        props = resource["Properties"]
        if resource["Type"] == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{props['TopicName']}"
        if resource["Type"] == "AWS::KMS::Key":
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{lid}"
        raise AssertionError(f"no ARN rule for {resource['Type']}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
            return pseudo.get(value["Ref"]) or self.arn(value["Ref"])
        if "Fn::GetAtt" in value:
            lid, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", value
            return self.arn(lid)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        return {k: self.resolve(v) for k, v in value.items()}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False
            wanted = [str(e) for e in _listed(expected)]
            if operator in ("StringEquals", "Bool"):
                ok = actual in wanted
            elif operator in ("ArnLike", "StringLike"):
                ok = any(fnmatch.fnmatchcase(actual, w) for w in wanted)
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
            if not ok:
                return False
    return True


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    return principal.get("AWS") == "*" or service in _listed(principal.get("Service", []))


def allowed(policy: dict[str, Any], *, service: str, action: str, resource: str, context: dict[str, str]) -> bool:
    decision = False
    for statement in policy["Statement"]:
        applies = (
            _principal_matches(statement["Principal"], service)
            and any(fnmatch.fnmatchcase(action, a) for a in _listed(statement["Action"]))
            and any(r == "*" or fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"]))
            and _condition_holds(statement.get("Condition", {}), context)
        )
        if applies and statement["Effect"] == "Deny":
            return False
        decision = decision or (applies and statement["Effect"] == "Allow")
    return decision


def _delivery(app: Synth, stage: str) -> tuple[Template, dict[str, dict[str, Any]]]:
    template = Template(app.templates[stage])
    return template, app.resources(stage, "AWS::CloudWatch::Alarm")


def _topic_policy(app: Synth, stage: str, template: Template, topic_arn: str) -> dict[str, Any]:
    policies = [
        template.resolve(p["Properties"]["PolicyDocument"])
        for p in app.resources(stage, "AWS::SNS::TopicPolicy").values()
        if topic_arn in template.resolve(p["Properties"]["Topics"])
    ]
    assert len(policies) == 1, policies
    return policies[0]


def _publish_allowed(app: Synth, stage: str, alarm_arn: str, topic_arn: str, **context: str) -> bool:
    """Would SNS accept CloudWatch's publish for `alarm_arn`, and KMS let CloudWatch encrypt it?"""
    template = Template(app.templates[stage])
    request = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm_arn, "aws:SecureTransport": "true", **context}
    topic_lid = next(lid for lid in app.resources(stage, "AWS::SNS::Topic") if template.arn(lid) == topic_arn)
    topic = app.resources(stage, "AWS::SNS::Topic")[topic_lid]["Properties"]
    key_lid = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = template.resolve(app.resources(stage, "AWS::KMS::Key")[key_lid]["Properties"]["KeyPolicy"])
    key_arn = template.arn(key_lid)
    publish = allowed(
        _topic_policy(app, stage, template, topic_arn),
        service=CLOUDWATCH,
        action="sns:Publish",
        resource=topic_arn,
        context=request,
    )
    encrypt = all(
        allowed(key_policy, service=CLOUDWATCH, action=a, resource=key_arn, context=request)
        for a in ("kms:GenerateDataKey", "kms:Decrypt")
    )
    return publish and encrypt


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_can_publish_to_the_topic_it_names_and_use_its_key(app: Synth, stage: str) -> None:
    template, alarms = _delivery(app, stage)
    assert alarms
    for alarm in alarms.values():
        props = alarm["Properties"]
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{props['AlarmName']}"
        actions = template.resolve(props.get("AlarmActions", []) + props.get("OKActions", []))
        assert actions, f"{props['AlarmName']} notifies nobody"
        for topic_arn in actions:
            assert _publish_allowed(app, stage, arn, topic_arn), (props["AlarmName"], topic_arn)


@pytest.mark.parametrize("stage", STAGES)
def test_the_topic_refuses_plain_http_other_accounts_and_other_stages_alarms(app: Synth, stage: str) -> None:
    template, alarms = _delivery(app, stage)
    props = next(iter(alarms.values()))["Properties"]
    topic_arn = template.resolve(props["AlarmActions"][0])
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{props['AlarmName']}"
    other = "prod" if stage == "stage" else "stage"
    assert _publish_allowed(app, stage, arn, topic_arn)
    assert not _publish_allowed(app, stage, arn, topic_arn, **{"aws:SecureTransport": "false"})
    assert not _publish_allowed(app, stage, arn, topic_arn, **{"aws:SourceAccount": "999999999999"})
    foreign = f"arn:aws:cloudwatch:{REGION}:999999999999:alarm:{props['AlarmName']}"
    assert not _publish_allowed(app, stage, foreign, topic_arn)
    other_stage = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:cappi-{other}-api-5xx-rate"
    assert not _publish_allowed(app, stage, other_stage, topic_arn)


@pytest.mark.parametrize("stage", STAGES)
def test_the_topic_has_a_confirmed_address_to_reach(app: Synth, stage: str) -> None:
    subscriptions = [s["Properties"] for s in app.resources(stage, "AWS::SNS::Subscription").values()]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
        ("email", {"stage": "cappi-stage-ops@example.org", "prod": "cappi-prod-ops@example.org"}[stage])
    ]


@pytest.mark.parametrize("override", [{}, {"prod:alarm_email": ""}, {"prod:alarm_email": " "}])
def test_prod_refuses_to_synthesize_without_a_notification_address(override: dict[str, str]) -> None:
    context = cdk_context(**{"cappi:stages": ["prod"], **override})
    with pytest.raises(ConfigError, match=r"alarm_email: missing; prod's alarms must reach someone"):
        cdk_app.build_app(context)


def test_the_stage_stage_still_synthesizes_without_one_and_says_so() -> None:
    without = synth(**{"cappi:stages": "stage", "prod:alarm_email": None})
    assert not without.resources("stage", "AWS::SNS::Subscription")
