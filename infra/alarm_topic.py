"""The topic every alarm of a stage notifies: encrypted with a key of its own, open to this stage's alarms only,
with the stage's e-mail subscription (its failed deliveries kept in a dead-letter queue)."""

from __future__ import annotations

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig


def alarm_topic(scope: Construct, config: StageConfig, delivery_dlq: sqs.Queue, alarm_arn_pattern: str) -> sns.Topic:
    """The topic every alarm notifies, encrypted with a key of its own, and open to this stage's alarms only.

    `enforce_ssl` gives the topic a resource policy, and a topic with a policy has none of SNS's default
    grants: without the Allow below CloudWatch's publish is refused and no alarm ever reaches anyone. So
    CloudWatch may publish, and use the key, only for alarms of this account whose names are this stage's
    (`aws:SourceAccount`, `aws:SourceArn`), and only over TLS (the Deny `enforce_ssl` adds).
    """
    stack = Stack.of(scope)
    cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
    from_this_stage = {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {"aws:SourceArn": alarm_arn_pattern},
    }
    # CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, hence a key of our own whose
    # policy lets CloudWatch use it.
    key = kms.Key(
        scope,
        "AlarmTopicKey",
        description=f"Encrypts the CAPPI {config.stage} alarm topic",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        pending_window=Duration.days(7),
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsOfThisStageEncrypt",
            principals=[cloudwatch_principal],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions=from_this_stage,
        )
    )
    topic = sns.Topic(
        scope,
        "AlarmTopic",
        topic_name=config.resource_name("alarms"),
        display_name=f"CAPPI {config.stage} alarms",
        master_key=key,
        enforce_ssl=True,
    )
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsOfThisStagePublish",
            principals=[cloudwatch_principal],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions=from_this_stage,
        )
    )
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email, dead_letter_queue=delivery_dlq))
    else:
        Annotations.of(scope).add_warning_v2(
            "cappi:no-alarm-email",
            f"No alarm e-mail for stage {config.stage}: alarms reach the SNS topic but nobody is told. "
            f"Set alarm_email in cdk.json or pass -c {config.stage}:alarm_email=ops@example.org.",
        )
    return topic
