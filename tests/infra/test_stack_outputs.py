"""The outputs `cappi` reads to find a stage's table, its ingest function's live alias and its staleness bound."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

from cappi.contracts import stack
from infra.functions import LIVE_ALIAS


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def resource_of(template: dict, output: dict, kind: str) -> dict:
    ref = output["Value"]["Ref"]
    resource = template["Resources"][ref]
    assert resource["Type"] == kind
    return resource


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_the_stack_names_its_table_ingest_function_and_staleness_bound(app: Synth, stage: str) -> None:
    template = app.templates[stage]
    outputs = template["Outputs"]
    table = resource_of(template, outputs[stack.TABLE_OUTPUT], "AWS::DynamoDB::GlobalTable")
    assert table["Properties"]["TableName"] == f"cappi-{stage}-snapshots"
    # `cappi poll` invokes what scheduled polls run: the live alias, as `<function name>:live`.
    function, alias = outputs[stack.INGEST_FUNCTION_OUTPUT]["Value"]["Fn::Join"][1]
    ingest = resource_of(template, {"Value": function}, "AWS::Lambda::Function")
    assert ingest["Properties"]["Handler"] == "cappi.handlers.ingest.handler"
    assert alias == f":{LIVE_ALIAS}"
    aliases = [a["Properties"] for a in template["Resources"].values() if a["Type"] == "AWS::Lambda::Alias"]
    assert {"FunctionName": function, "Name": LIVE_ALIAS} in [
        {k: a[k] for k in ("FunctionName", "Name")} for a in aliases
    ]
    assert int(outputs[stack.STALE_AFTER_OUTPUT]["Value"]) >= 600
