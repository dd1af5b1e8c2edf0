"""What every preflight check reads: the stage's template, the account and region, the AWS and HTTP clients, and
the live stack's state and resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cappi.contracts.stack import stack_name
from cli.aws import Clients
from cli.cloudformation import resolve


@dataclass
class Context:
    stage: str
    template: dict[str, Any]
    region: str
    account: str
    partition: str
    client: Clients
    http: Any
    stack_status: str | None = None  # None: the stack does not exist
    stack_resources: dict[str, str] = field(default_factory=dict)  # logical id -> physical id, of the live stack

    @property
    def stack(self) -> str:
        return stack_name(self.stage)

    @property
    def pseudo(self) -> dict[str, str]:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": suffix,
            "AWS::StackName": self.stack,
        }

    def name(self, properties: dict[str, Any], key: str) -> str | None:
        return resolve(properties.get(key), self.pseudo)

    @property
    def settings(self) -> str:
        return f"`cappi:{self.stage}` in cdk.json (or -c {self.stage}:<key>=<value> in CDK_ARGS)"
