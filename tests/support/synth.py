"""Shared by the infra tests: synthesize the CDK app once per set of context overrides, and read its templates.

Synthesis runs cdk-nag (a finding nobody acknowledged fails it), so every test that gets a `Synth` has also
proved the app nag-clean. A synth takes seconds, so results are cached for the whole session.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from aws_cdk.assertions import Template

import app as cdk_app

ROOT = cdk_app.ROOT


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context with `overrides` applied on top, as `-c key=value` would."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context.update(overrides)
    return context


@dataclass(frozen=True)
class Synth:
    outdir: Path
    templates: dict[str, dict[str, Any]]  # stage -> CloudFormation template
    metadata: dict[str, dict[str, Any]]  # stage -> construct path -> metadata entries

    def template(self, stage: str = "stage") -> Template:
        return Template.from_json(self.templates[stage])

    def template_path(self, stage: str = "stage") -> Path:
        return self.outdir / f"Cappi-{stage}.template.json"

    def resources(self, stage: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stage]["Resources"].items() if v["Type"] == type_}

    def logical_id(self, stage: str, type_: str, **properties: Any) -> str:
        """The one resource of `type_` whose properties include `properties`."""
        found = [
            lid
            for lid, r in self.resources(stage, type_).items()
            if all(r["Properties"].get(k) == v for k, v in properties.items())
        ]
        assert len(found) == 1, f"expected one {type_} with {properties}, found {found}"
        return found[0]

    def describe(self, stage: str, expression: Any) -> str:
        """A readable name for a Ref/GetAtt to a resource of this template: `<type>/<its name>`. A function's alias
        is `AWS::Lambda::Alias/<function>:<alias>`, its version `AWS::Lambda::Version/<function>` (the one this
        template publishes); an `Fn::Join` is its parts joined, references in angle brackets
        (`arn:<AWS::Partition>:...:<AWS::CodeDeploy::Application/cappi-stage-query>/...`)."""
        if isinstance(expression, dict) and "Fn::Join" in expression:
            separator, parts = expression["Fn::Join"]
            return separator.join(p if isinstance(p, str) else self._part(stage, p) for p in parts)
        if isinstance(expression, dict) and "Ref" in expression:
            lid = expression["Ref"]
        elif isinstance(expression, dict) and "Fn::GetAtt" in expression:
            lid = expression["Fn::GetAtt"][0]
        else:
            return json.dumps(expression, sort_keys=True)
        resource = self.templates[stage]["Resources"][lid]
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Alias":
            function = self.describe(stage, props["FunctionName"]).split("/", 1)[1]
            return f"{resource['Type']}/{function}:{props['Name']}"
        if resource["Type"] == "AWS::Lambda::Version":
            return f"{resource['Type']}/{self.describe(stage, props['FunctionName']).split('/', 1)[1]}"
        names = ("FunctionName", "TableName", "QueueName", "LogGroupName", "Name", "TopicName", "RoleName")
        for key in (*names, "ApplicationName", "DeploymentGroupName"):
            if isinstance(props.get(key), str):
                return f"{resource['Type']}/{props[key]}"
        return f"{resource['Type']}/{lid}"

    def _part(self, stage: str, expression: Any) -> str:
        """One non-text part of an `Fn::Join`: a pseudo parameter by its name, a resource as `describe` names it."""
        if isinstance(expression, dict) and str(expression.get("Ref", "")).startswith("AWS::"):
            return f"<{expression['Ref']}>"
        return f"<{self.describe(stage, expression)}>"

    def role_grants(self, stage: str, role_logical_id: str) -> set[tuple[str, str]]:
        """Every (action, resource) an IAM role's policies allow, resources described by `describe`."""
        grants: set[tuple[str, str]] = set()
        for policy in self.resources(stage, "AWS::IAM::Policy").values():
            if {"Ref": role_logical_id} not in policy["Properties"]["Roles"]:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                grants |= {(a, self.describe(stage, r)) for a in actions for r in resources}
        return grants

    def function_role(self, stage: str, function_name: str) -> str:
        lid = self.logical_id(stage, "AWS::Lambda::Function", FunctionName=function_name)
        return self.templates[stage]["Resources"][lid]["Properties"]["Role"]["Fn::GetAtt"][0]


@functools.cache
def _synth(overrides_json: str) -> Synth:
    overrides = json.loads(overrides_json)
    outdir = Path(tempfile.mkdtemp(prefix="cappi-cdk-test-"))
    atexit.register(shutil.rmtree, outdir, True)
    app = cdk_app.build_app(cdk_context(**overrides), outdir=str(outdir))
    assembly = app.synth()  # raises if cdk-nag reports a finding nobody acknowledged
    templates, metadata = {}, {}
    for stack in assembly.stacks:
        stage = stack.stack_name.removeprefix("Cappi-")
        templates[stage] = stack.template
        metadata[stage] = json.loads((outdir / f"{stack.stack_name}.metadata.json").read_text())
    return Synth(outdir=outdir, templates=templates, metadata=metadata)


# Prod refuses to synthesize without a notification address, and cdk.json leaves ops to choose theirs: the tests
# pass one as ops would (-c prod:alarm_email=...). Override it with None to synthesize without.
TEST_PROD_ALARM_EMAIL = "cappi-prod-ops@example.org"


def synth(**overrides: Any) -> Synth:
    """The synthesized app for cdk.json plus `overrides` (context keys, e.g. {"stage:alarm_email": ...})."""
    overrides.setdefault("prod:alarm_email", TEST_PROD_ALARM_EMAIL)
    return _synth(json.dumps({k: v for k, v in overrides.items() if v is not None}, sort_keys=True))
