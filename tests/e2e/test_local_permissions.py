"""Local mode runs its handlers as deployed: each with its own role's statements, moto enforcing them.

A whole demo run (polls of every club, a query) must leave no refusal; a call the stack does not grant is refused
and local mode says so in one line naming the function, the action and the resource.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cappi.contracts.local_state import ENDPOINTS_FILE

pytestmark = pytest.mark.timeout(240)


def _client(endpoints: dict[str, Any], service: str, credentials: dict[str, str] | None) -> Any:
    keys = credentials or {"AWS_ACCESS_KEY_ID": "anyone", "AWS_SECRET_ACCESS_KEY": "anything"}
    return boto3.client(
        service,
        endpoint_url=endpoints["dynamodb"],
        region_name=endpoints["region"],
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys.get("AWS_SESSION_TOKEN"),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


def test_handlers_run_under_their_roles_and_a_refusal_is_one_clear_line(start: Any) -> None:
    local = start(CAPPI_INGEST_INTERVAL="2")
    example = local.wait_for(r"curl .*/api/CallData/OpenCalls/(\d+)/(\w+)/ids")  # every demo club polled
    status, _calls = local.calls(int(example.group(1)), example.group(2), local.token())
    assert status == 200
    local.wait_for(r"ingest demo-small: ", after=len(local.lines))  # and the next round of polls
    assert "AccessDenied" not in local.output()  # every poll, the dispatch ticks and the query: all granted

    endpoints = json.loads((local.state_dir / ENDPOINTS_FILE).read_text())
    with pytest.raises(ClientError) as unknown:  # no role, no operator: AWS would not know these keys either
        _client(endpoints, "dynamodb", None).list_tables()
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    ingest = endpoints["ingest_credentials"]
    table = _client(endpoints, "dynamodb", ingest)
    key = {"pk": {"S": "nothing"}, "sk": {"S": "nothing"}}
    table.get_item(TableName=endpoints["table"], Key=key)  # granted: ingest reads heads and manifests
    with pytest.raises(ClientError) as refused:
        table.delete_item(TableName=endpoints["table"], Key=key)  # never granted: versions expire through TTL
    assert "AccessDenied" in _code(refused.value)
    line = local.wait_for(r"AccessDenied: the ingest function may not call dynamodb:DeleteItem on (\S+);")
    assert line.group(1).endswith(f":table/{endpoints['table']}")
    ssm = _client(endpoints, "ssm", ingest)
    # Granted: the registry's credential parameters (their directory's pattern), decrypted as ingest reads them.
    assert ssm.get_parameter(Name="/cappi/local/clubs/demo-small", WithDecryption=True)["Parameter"]["Value"]
    with pytest.raises(ClientError) as elsewhere:  # a parameter outside the registry's directories: refused
        ssm.get_parameter(Name="/cappi/elsewhere/token", WithDecryption=True)
    assert "AccessDenied" in _code(elsewhere.value)
    line = local.wait_for(r"AccessDenied: the ingest function may not call ssm:GetParameter on (\S+);")
    assert line.group(1).endswith(":parameter/cappi/elsewhere/token")
    with pytest.raises(ClientError):
        ssm.describe_parameters()  # it reads the parameters it names, it does not list them
    local.wait_for(r"AccessDenied: the ingest function may not call ssm:DescribeParameters")
