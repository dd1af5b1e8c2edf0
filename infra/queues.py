"""Dead-letter queues: where a failed delivery or invocation waits for ops, encrypted and reachable only over TLS."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.nag import acknowledge


def dead_letter_queue(scope: Construct, config: StageConfig, name: str, *, holds: str) -> sqs.Queue:
    """A queue named `cappi-<stage>-<name>` for `holds` (what ends up in it, for the acknowledgements)."""
    queue = sqs.Queue(
        scope,
        name.title().replace("-", ""),
        queue_name=config.resource_name(name),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),  # the longest SQS allows: time to look before messages vanish
        # Messages are evidence of a past failure, not data: nothing to keep once the stack is gone.
        removal_policy=RemovalPolicy.DESTROY,
    )
    acknowledge(queue, "AwsSolutions-SQS3", f"This queue is itself a dead-letter queue: it holds {holds}.")
    acknowledge(
        queue,
        "Serverless-SQSRedrivePolicy",
        f"This queue is itself a dead-letter queue ({holds}); its depth alarm calls ops instead of a further redrive.",
    )
    return queue
