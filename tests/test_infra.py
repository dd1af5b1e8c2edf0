"""The CDK app synthesizes offline, and the table matches what the snapshot store expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")

from aws_cdk.assertions import Match, Template

import app as cdk_app
from cappi.adapters.snapshot_store import PK, SK, TTL_ATTRIBUTE
from infra.config import ConfigError


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    app = cdk_app.build_app()
    return {stage: Template.from_stack(app.node.find_child(f"Cappi-{stage}")) for stage in ("stage", "prod")}


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_table_has_the_store_schema_ttl_recovery_and_encryption(templates: dict[str, Template], stage: str) -> None:
    templates[stage].has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "TableName": f"cappi-{stage}-snapshots",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
        },
    )


def test_prod_data_is_retained_and_stage_data_is_not(templates: dict[str, Template]) -> None:
    templates["prod"].has_resource("AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Retain"})
    templates["stage"].has_resource("AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Delete"})


def test_a_broken_registry_stops_synthesis(tmp_path: Path) -> None:
    bad = tmp_path / "clubs.json"
    bad.write_text(json.dumps({"sources": [{"name": "x", "club_ids": [1], "base_url": "http://example.org"}]}))
    context = json.loads((cdk_app.ROOT / "cdk.json").read_text())["context"]
    context["cappi:stages"] = ["stage"]
    context["stage:clubs_file"] = str(bad)
    with pytest.raises(Exception, match="base_url"):
        cdk_app.build_app(context)


def test_issuer_without_trailing_slash_is_refused() -> None:
    context = json.loads((cdk_app.ROOT / "cdk.json").read_text())["context"]
    context["cappi:stages"] = ["stage"]
    context["stage:issuer"] = "https://stage-clubassist.auth0.com"
    with pytest.raises(ConfigError, match="must end with '/'"):
        cdk_app.build_app(context)
