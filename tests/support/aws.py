"""moto-backed AWS for tests: the snapshot table as the functions use it. Credentials come from tests/conftest.py."""

from __future__ import annotations

from typing import Any

import boto3

from cappi.adapters.dynamo.schema import create_table

SNAPSHOT_TABLE = "cappi-snapshots-test"
REGION = "us-east-1"


def snapshot_table() -> Any:
    """A DynamoDB client with the snapshot table created; call inside `moto.mock_aws()`."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, SNAPSHOT_TABLE)
    return client
