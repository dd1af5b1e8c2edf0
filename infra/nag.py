"""cdk-nag as CDK policy-validation plugins: a synth with an unacknowledged finding fails.

Acknowledgements sit next to the construct they concern, each with its reason, through `acknowledge`.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct


def add_nag_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge cdk-nag `rule` (e.g. "AwsSolutions-SMG4", or one finding: "AwsSolutions-IAM5[Resource::...]")
    on `construct` and everything below it."""
    pack = rule.split("-", 1)[0]
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{pack}::{rule}", reason=reason))
