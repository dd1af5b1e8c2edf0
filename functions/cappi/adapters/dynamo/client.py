"""The boto3 DynamoDB client every CAPPI function uses: botocore retries throttling, once, with its own backoff.

The store adds only what botocore cannot do (resending a batch's unprocessed items), so retries never stack.
"""

from __future__ import annotations

from typing import Any

from cappi.adapters.aws_client import BACKGROUND_TIMEOUTS, QUERY_TIMEOUTS, aws_client
from cappi.adapters.dynamo.schema import DynamoClient

INGEST_ATTEMPTS = 8  # a poll can wait out a throttled burst: its Lambda runs for minutes
QUERY_ATTEMPTS = 3  # a tester app waits for the answer: fail fast, the 503 says retry


def retry_config(max_attempts: int) -> dict[str, object]:
    """botocore's "standard" retry mode: throttling and transient errors, exponential backoff with jitter."""
    return {"mode": "standard", "total_max_attempts": max_attempts}  # the first request included


def dynamodb_client(max_attempts: int = INGEST_ATTEMPTS, *, session: Any = None, **kwargs: object) -> DynamoClient:
    """`session`: a boto3 Session to build it from (credentials other than the environment's), else boto3's own.
    The query's few attempts get the query's short timeouts; ingest's the background ones."""
    timeouts = QUERY_TIMEOUTS if max_attempts <= QUERY_ATTEMPTS else BACKGROUND_TIMEOUTS
    client: DynamoClient = aws_client(
        "dynamodb", timeouts, session=session, retries=retry_config(max_attempts), **kwargs
    )
    return client
