"""The snapshot table's plumbing, shared by every consumer of the table (DESIGN.md section 3).

One DynamoDB table serves four consumers, each a class of its own over this one: the snapshot writer (`writer.py`:
versions, heads, expiries), the poll log (`poll_log.py`), the query's reads (`shard_source.py`: heads and shards,
alone or in batches) and point-in-time reads (`as_of.py`, `cappi calls --at`). This class holds what they share:
the client and the table's name, request counters, the backoff between resends, conditional writes, the write-unit
meter, and how DynamoDB's and the network's failures become this package's errors. It decides nothing about items.

Throttled requests are retried by botocore itself (`cappi.adapters.dynamo.client`); what botocore cannot retry is a
batch that succeeds with keys or items left unprocessed, which the consumers resend with `backoff` in between.

Write units are counted as they are spent, by the table's `meter` (`cost.py`: computed from item sizes, since moto
does not report consumed capacity truthfully): to price some writes, read the meter before and after them. Writes
that fail have spent what the meter shows (parts already written still cost), and no method returns a cost. Read
units are counted the same way by `read_meter`, from the items each read brought back (`cost.read_units`).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cappi.adapters.dynamo.codec import apply_update, placeholders
from cappi.adapters.dynamo.cost import item_size, read_units, write_units
from cappi.adapters.dynamo.schema import DynamoClient, source_item_key

THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
CONDITION_FAILED = "ConditionalCheckFailedException"
# Network failures botocore gave up on are storage failures; other botocore errors (bad parameters, missing
# credentials) are bugs or misconfiguration and propagate as they are.
NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)
_PLACEHOLDER = re.compile(r"#(\w+)")
T = TypeVar("T")


class SnapshotStoreError(Exception):
    """Storage failed. Messages name the table and the club, never snapshot data."""


class SnapshotWriteError(SnapshotStoreError):
    """A write failed after retries, or hit an error retrying cannot fix; what it spent is on the table's meter."""


class SnapshotReadError(SnapshotStoreError):
    """A read failed, or found a version that is incomplete or in a format this code does not know."""


@dataclass(slots=True)
class WriteMeter:
    """The write units spent through one table so far, as DynamoDB bills them (a refused conditional write too)."""

    units: int = 0

    def add(self, units: int) -> None:
        self.units += units


@dataclass(slots=True)
class ReadMeter:
    """The read units spent through one table so far, as DynamoDB bills them (`cost.read_units`)."""

    units: float = 0.0

    def add(self, units: float) -> None:
        self.units += units


class SnapshotTable:
    """One DynamoDB table, as every consumer of it talks to it.

    `clock` gives epoch seconds (point-in-time reads skip expired versions by it); `sleep` is the backoff between
    resends of a batch's unprocessed keys or items, at most `max_attempts` per batch write. `requests` counts every
    DynamoDB request made, `requests_by_operation` splits it by operation, `reported_capacity_units` sums what
    DynamoDB reported as consumed (meaningful on AWS, not under moto), `meter` the write units spent and `read_meter`
    the read units.
    """

    def __init__(
        self,
        client: DynamoClient,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self.table_name = table_name
        self.clock = clock
        self._sleep = sleep
        self.max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self.requests = 0
        self.requests_by_operation: Counter[str] = Counter()
        self.reported_capacity_units = 0.0
        self.meter = WriteMeter()
        self.read_meter = ReadMeter()

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One request, counted; the table's name is added unless a batch names it inside RequestItems."""
        self.requests += 1
        self.requests_by_operation[operation] += 1
        if not operation.startswith("batch_"):
            kwargs["TableName"] = self.table_name
        response: dict[str, Any] = getattr(self._client, operation)(**kwargs)
        if operation in _READS:
            self.read_meter.add(_read_cost(operation, kwargs, response))
        consumed = response.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            self.reported_capacity_units += float(entry.get("CapacityUnits", 0.0))
        return response

    def backoff(self, attempt: int) -> None:
        # Exponential with jitter, so many ingest Lambdas throttled together do not retry in lockstep.
        delay = min(self._max_delay, self._base_delay * 2**attempt)
        self._sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not security

    # -- writes ------------------------------------------------------------------------------------------------------

    def write(self, operation: str, what: str, subject: int | str, **kwargs: Any) -> dict[str, Any]:
        """One write request (botocore has retried throttling already). Conditional-check failures pass through."""
        try:
            return self.call(operation, **kwargs)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise
            raise self.write_error(what, subject, write_reason(exc)) from exc
        except NETWORK_ERRORS as exc:
            raise self.write_error(what, subject, type(exc).__name__) from exc

    def write_error(self, what: str, subject: int | str, reason: str) -> SnapshotWriteError:
        return SnapshotWriteError(f"{what} for {_subject(subject)} in table {self.table_name} failed: {reason}")

    def conditional_update(
        self,
        what: str,
        subject: int | str,
        key: Mapping[str, Any],
        *,
        set_values: Mapping[str, Any],
        condition: str,
        condition_values: Mapping[str, Any] | None = None,
        remove: tuple[str, ...] = (),
    ) -> bool:
        """UpdateItem (SET then REMOVE) under a condition; whether it applied (a refused one still costs)."""
        expression = "SET " + ", ".join(f"#{a} = :{a}" for a in set_values)
        if remove:
            expression += " REMOVE " + ", ".join(f"#{a}" for a in remove)
        # DynamoDB rejects placeholders an expression does not use, so derive them from the expressions.
        names = placeholders(*dict.fromkeys(_PLACEHOLDER.findall(f"{expression} {condition}")))
        values = {f":{a}": v for a, v in set_values.items()} | dict(condition_values or {})
        return self.conditional(
            "update_item",
            what,
            subject,
            lambda old: apply_update(old, set_values, remove),
            Key=dict(key),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def conditional(
        self,
        operation: str,
        what: str,
        subject: int | str,
        after: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        **kwargs: Any,
    ) -> bool:
        """A conditional PutItem/UpdateItem; whether it applied. A write costs the larger of the item before and
        `after(before)`, a refused one the existing item's size: the meter counts either."""
        try:
            response = self.write(
                operation,
                what,
                subject,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ReturnConsumedCapacity="TOTAL",
                **kwargs,
            )
        except ClientError as exc:
            existing = exc.response.get("Item")
            self.meter.add(write_units(item_size(existing) if existing else 0))
            return False
        old = response.get("Attributes", {})
        self.meter.add(write_units(max(item_size(old), item_size(after(old)))))
        return True

    # -- reads -------------------------------------------------------------------------------------------------------

    def read(self, operation: str, what: str, subject: int | str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self.call(operation, **kwargs)
        except (ClientError, *NETWORK_ERRORS) as exc:
            raise SnapshotReadError(
                f"{what} for {_subject(subject)} in table {self.table_name} failed: {read_reason(exc)}"
            ) from exc

    def source_item(
        self, source: str, sk: str, what: str, decode: Callable[[Mapping[str, Any]], T], *, consistent: bool
    ) -> T | None:
        """One of a source's items (its head, its last poll), decoded; None when absent. Malformed: a read error."""
        response = self.read(
            "get_item", f"reading the {what}", source, Key=source_item_key(source, sk), ConsistentRead=consistent
        )
        item = response.get("Item")
        return self.decode(f"{what} of source {source!r}", decode, item) if item else None

    def decode(self, what: str, decode: Callable[[Mapping[str, Any]], T], item: Mapping[str, Any]) -> T:
        """`decode(item)`; an item it cannot decode is a read error naming `what` (never the item's data)."""
        try:
            return decode(item)
        except (KeyError, ValueError, TypeError) as exc:
            raise SnapshotReadError(f"{what} in table {self.table_name} is malformed") from exc


_READS = frozenset({"get_item", "batch_get_item", "query"})


def _read_cost(operation: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    """What one read request costs by DynamoDB's rules, from what it brought back: per item for GetItem and
    BatchGetItem (an absent key still costs the minimum), the summed size for a Query. Under a projection only the
    projected bytes are seen, so such a read is counted low (the shard Query projects away only its keys' names)."""
    if operation == "get_item":
        item = response.get("Item")
        return read_units([item_size(item)] if item else [0], consistent=bool(request.get("ConsistentRead")))
    if operation == "query":
        size = sum(item_size(item) for item in response.get("Items", []))
        return read_units([size], consistent=bool(request.get("ConsistentRead")))
    total = 0.0
    for table, asked in request["RequestItems"].items():
        items = response.get("Responses", {}).get(table, [])
        left = len(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
        sizes = [item_size(item) for item in items] + [0] * max(0, len(asked["Keys"]) - left - len(items))
        total += read_units(sizes, consistent=bool(asked.get("ConsistentRead")))
    return total


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def write_reason(exc: ClientError) -> str:
    code = error_code(exc)
    return "still throttled after botocore's retries" if code in THROTTLING_CODES else f"error {code}"


def read_reason(exc: Exception) -> str:
    """Why a read failed: DynamoDB's error code, or the name of the network failure botocore gave up on."""
    code = error_code(exc) if isinstance(exc, ClientError) else ""
    return code or type(exc).__name__


def _subject(subject: int | str) -> str:
    return f"club {subject}" if isinstance(subject, int) else f"source {subject!r}"
