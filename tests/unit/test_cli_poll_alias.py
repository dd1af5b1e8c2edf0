"""`cappi poll` against a deployed stage invokes what the stack output `IngestFunctionName` names: the ingest
function's live alias as `<name>:live`, which Lambda's Invoke takes as FunctionName (a name with its qualifier)."""

from __future__ import annotations

import io
import json

import boto3
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from cappi.domain.registry import parse_registry
from cli.operations import poll
from cli.target import Target

REGISTRY = parse_registry({"sources": [{"name": "alpha", "club_ids": [212], "base_url": "https://a.example"}]})


def test_poll_invokes_the_live_alias_synchronously_by_its_qualified_name() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    summary = {"source": "alpha", "status": "ok", "clubs": []}
    body = json.dumps(summary).encode()
    stubber = Stubber(client)
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "ExecutedVersion": "7", "Payload": StreamingBody(io.BytesIO(body), len(body))},
        {"FunctionName": "cappi-stage-ingest:live", "InvocationType": "RequestResponse", "Payload": ANY},
    )
    target = Target(
        where="stage (us-east-1)",
        table=None,  # poll reads no table
        registry=REGISTRY,
        stale_after_s=1800,
        client=lambda _service: client,
        ingest_function="cappi-stage-ingest:live",
    )
    with stubber:
        assert poll(target, "alpha") == summary
        stubber.assert_no_pending_responses()
