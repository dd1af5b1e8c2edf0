"""DynamoDB storage of club snapshots (DESIGN.md section 3), through the low-level boto3 client.

Why this shape:
- A source's feed is one document fetched at one moment, so the pointers of all its club IDs live in one head item
  and move together in one conditional write. An unchanged poll rewrites only that small item (one write unit).
- Readers always go through the head, and a version's items never change once written (only their expiry
  does), so a reader sees the old complete snapshot or the new complete one, never a mix.
- The head records the fetch time of the latest poll it reflects; a write carrying an earlier fetch is refused,
  so of two overlapping polls the later fetch always wins, whichever finishes first.
- The manifest is written after every part, so its existence means the version is complete; point-in-time
  reads ("what was open at 10:20?") only trust versions that have one.

This module decides nothing about *whether* to publish (drop guard, newer-poll policy); it offers atomic
primitives whose conditions keep the guarantees under overlapping polls. Every write reports the write units
it consumed (`cost.py`). Reads are by source (heads) or by club and version (shards, manifests): which source
serves a club is the readers' business (`cappi.adapters.snapshot_reader`).
"""

from __future__ import annotations

import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cappi.adapters.dynamo.codec import (
    MANIFEST_FIELDS,
    apply_update,
    head_from_item,
    head_item,
    last_poll_from_item,
    manifest_item,
    number,
    placeholders,
    poll_values,
    ref_from_manifest,
    string,
)
from cappi.adapters.dynamo.cost import item_size, write_units
from cappi.adapters.dynamo.schema import (
    HEAD_SK,
    MAX_FETCHED_AT_MS,
    MAX_PARTS,
    MAX_SHARDS,
    PK,
    POLL_SK,
    SK,
    TTL_ATTRIBUTE,
    DynamoClient,
    club_key,
    is_manifest_sk,
    item_key,
    manifest_sk,
    part_sk,
    shard_prefix,
    source_item_key,
    source_key,
    version_name,
)
from cappi.adapters.dynamo.shards import ShardKey, decode_shard, encode_shards, shard_count_for, shard_of
from cappi.domain.heads import Head, OpenCalls, Pointer, VersionRef
from cappi.domain.snapshot import FORMAT_VERSION, ClubSnapshot

if TYPE_CHECKING:  # queries never read last polls: keep the module out of their cold start
    from cappi.domain.last_poll import LastPoll

BATCH_SIZE = 25  # BatchWriteItem's limit
BATCH_GET_SIZE = 100  # BatchGetItem's limit on keys per request
# A query waits on batch reads: at most this many requests in a row that return nothing and leave keys
# unprocessed (throttling), with the store's backoff between them (50, 100, 200 ms by default); a resend after
# partial progress (the 16 MB response cap) goes out at once.
READ_BATCH_ATTEMPTS = 4
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
# Network failures botocore gave up on are storage failures; other botocore errors (bad parameters, missing
# credentials) are bugs or misconfiguration and propagate as they are.
_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)
_PLACEHOLDER = re.compile(r"#(\w+)")
_AS_OF_PAGE = 4  # a typical version is one part + its manifest; small pages avoid reading parts we skip


class SnapshotStoreError(Exception):
    """Storage failed. Messages name the table and the club, never snapshot data."""


class SnapshotWriteError(SnapshotStoreError):
    """A write failed after retries, or hit an error retrying cannot fix.

    `units_consumed` counts the write units spent before the failure (parts already written still cost).
    """

    def __init__(self, message: str, units_consumed: int = 0) -> None:
        super().__init__(message)
        self.units_consumed = units_consumed


class SnapshotReadError(SnapshotStoreError):
    """A read failed, or found a version that is incomplete or in a format this code does not know."""


class DynamoSnapshotStore:
    """Snapshot storage primitives over one DynamoDB table.

    `clock` gives epoch seconds (used to skip expired versions). Throttled requests are retried by botocore
    itself (`cappi.adapters.dynamo.client`); what botocore cannot retry is a batch write that succeeds with
    items left unprocessed, so `sleep` is the backoff between resends of those, at most `max_attempts` per batch.
    `requests` counts every DynamoDB request made, `requests_by_operation` splits it by operation, and
    `reported_capacity_units` sums what DynamoDB reported as consumed (meaningful on AWS, not under moto).
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
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self.requests = 0
        self.requests_by_operation: Counter[str] = Counter()
        self.reported_capacity_units = 0.0

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.requests += 1
        self.requests_by_operation[operation] += 1
        if not operation.startswith("batch_"):  # batches name their table inside RequestItems
            kwargs["TableName"] = self.table_name
        response: dict[str, Any] = getattr(self._client, operation)(**kwargs)
        consumed = response.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            self.reported_capacity_units += float(entry.get("CapacityUnits", 0.0))
        return response

    def _backoff(self, attempt: int) -> None:
        # Exponential with jitter, so many ingest Lambdas throttled together do not retry in lockstep.
        delay = min(self._max_delay, self._base_delay * 2**attempt)
        self._sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not security

    def _write(
        self, operation: str, what: str, club_id: int | str, *, units_so_far: int = 0, **kwargs: Any
    ) -> dict[str, Any]:
        """One write request (botocore has retried throttling already). Conditional-check failures pass through."""
        try:
            return self._call(operation, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == _CONDITION_FAILED:
                raise
            reason = "still throttled after botocore's retries" if code in THROTTLING_CODES else f"error {code}"
            raise self._write_error(what, club_id, reason, units_so_far) from exc
        except _NETWORK_ERRORS as exc:
            raise self._write_error(what, club_id, type(exc).__name__, units_so_far) from exc

    def _write_error(self, what: str, subject: int | str, reason: str, units: int) -> SnapshotWriteError:
        return SnapshotWriteError(f"{what} for {_subject(subject)} in table {self.table_name} failed: {reason}", units)

    def _read(self, operation: str, what: str, club_id: int | str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._call(operation, **kwargs)
        except (ClientError, *_NETWORK_ERRORS) as exc:
            raise SnapshotReadError(
                f"{what} for {_subject(club_id)} in table {self.table_name} failed: {_read_reason(exc)}"
            ) from exc

    def _conditional_update(
        self,
        what: str,
        subject: int | str,
        key: Mapping[str, Any],
        *,
        set_values: Mapping[str, Any],
        condition: str,
        condition_values: Mapping[str, Any] | None = None,
        remove: tuple[str, ...] = (),
    ) -> tuple[bool, int]:
        """UpdateItem (SET then REMOVE) under a condition; (applied, write units) where a failed check still costs."""
        expression = "SET " + ", ".join(f"#{a} = :{a}" for a in set_values)
        if remove:
            expression += " REMOVE " + ", ".join(f"#{a}" for a in remove)
        # DynamoDB rejects placeholders an expression does not use, so derive them from the expressions.
        names = placeholders(*dict.fromkeys(_PLACEHOLDER.findall(f"{expression} {condition}")))
        values = {f":{a}": v for a, v in set_values.items()} | dict(condition_values or {})
        return self._conditional(
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

    def _conditional(
        self,
        operation: str,
        what: str,
        subject: int | str,
        after: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        **kwargs: Any,
    ) -> tuple[bool, int]:
        """A conditional PutItem/UpdateItem: (applied, write units), where a write costs the larger of the item
        before and `after(before)`, and a refused one still costs the existing item's size."""
        try:
            response = self._write(
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
            return False, write_units(item_size(existing) if existing else 0)
        old = response.get("Attributes", {})
        return True, write_units(max(item_size(old), item_size(after(old))))

    # -- last polls --------------------------------------------------------------------------------------------------

    def record_poll(self, poll: LastPoll) -> int:
        """Keep `poll` as its source's last poll, unless one sent later is kept already; returns write units.

        One UpdateItem of an item that stays under 1 KB (`poll_values` drops examples to fit), so one write unit.
        `last_success` is set only by a poll that succeeded, so a failure keeps the time of the last good one.
        """
        values = poll_values(poll)
        _applied, units = self._conditional_update(
            "recording the poll",
            poll.source,
            source_item_key(poll.source, POLL_SK),
            set_values=values,
            condition="attribute_not_exists(#pk) OR #fetched_at <= :t",
            condition_values={":t": number(poll.fetched_at_ms)},
        )
        return units

    def last_poll(self, source: str) -> LastPoll | None:
        """The source's last recorded poll, or None when it was never polled."""
        return self._source_item(source, POLL_SK, "last poll", last_poll_from_item, consistent=True)

    def _source_item(
        self, source: str, sk: str, what: str, decode: Callable[[Mapping[str, Any]], Any], *, consistent: bool
    ) -> Any:
        """One of a source's items, decoded; None when absent. A malformed item is a read error naming it."""
        response = self._read(
            "get_item", f"reading the {what}", source, Key=source_item_key(source, sk), ConsistentRead=consistent
        )
        item = response.get("Item")
        if not item:
            return None
        try:
            return decode(item)
        except (KeyError, ValueError, TypeError) as exc:
            raise SnapshotReadError(f"{what} of source {source!r} in table {self.table_name} is malformed") from exc

    # -- heads -------------------------------------------------------------------------------------------------------

    def head(self, source: str, *, consistent: bool = True) -> Head | None:
        """The source's head, or None when nothing was ever published for it."""
        return self._source_item(source, HEAD_SK, "head", head_from_item, consistent=consistent)

    def commit_head(self, source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer]) -> tuple[bool, int]:
        """Make `clubs` what readers see for this source, as of the poll fetched at `fetched_at_ms`.

        One conditional PutItem: refused when the head already reflects a fetch at or after this one, so the later
        fetch wins whatever order overlapping polls finish in. Every version named must be complete (written with
        write_version) before this call. Returns (False, units) when refused; a refused write still costs units.
        """
        item = head_item(source, fetched_at_ms, clubs)
        return self._conditional(
            "put_item",
            "moving the head",
            source,
            lambda _old: item,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk) OR #fetched_at < :t",
            ExpressionAttributeNames=placeholders(PK, "fetched_at"),
            ExpressionAttributeValues={":t": number(fetched_at_ms)},
        )

    # -- versions ----------------------------------------------------------------------------------------------------

    def write_version(
        self,
        source: str,
        snapshot: ClubSnapshot,
        fetched_at_ms: int,
        expires_at: int,
        *,
        shard_count: int | None = None,
    ) -> tuple[VersionRef, int]:
        """Store a complete version (all parts, then the manifest) without changing what readers see.

        `expires_at` (epoch seconds) becomes the TTL of every item of the version. `shard_count` overrides the
        size-based default (tests and benchmarks). Raises SnapshotWriteError when DynamoDB keeps refusing; the
        manifest is then not written, so the partial version is invisible to every reader and expires by TTL.
        """
        count = shard_count_for(snapshot) if shard_count is None else shard_count
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"shard count out of range: {count}")
        shards = encode_shards(snapshot, count)
        if any(len(parts) > MAX_PARTS for parts in shards):
            raise ValueError(f"a shard has more than {MAX_PARTS} parts; use more shards")
        ref = VersionRef(
            club_id=snapshot.club_id,
            version=version_name(fetched_at_ms, snapshot.content_hash),
            content_hash=snapshot.content_hash,
            fetched_at_ms=fetched_at_ms,
            shard_count=count,
            parts=tuple(len(parts) for parts in shards),
            call_count=snapshot.call_count,
            tech_count=snapshot.tech_count,
            expires_at=expires_at,
            part_bytes=tuple(tuple(len(p) for p in parts) for parts in shards),
        )
        pk = string(club_key(snapshot.club_id))
        items = [
            {PK: pk, SK: string(part_sk(ref.version, s, p)), "d": {"B": data}, TTL_ATTRIBUTE: number(expires_at)}
            for s, parts in enumerate(shards)
            for p, data in enumerate(parts)
        ]
        units = 0
        for start in range(0, len(items), BATCH_SIZE):
            units += self._batch_put(snapshot.club_id, items[start : start + BATCH_SIZE], units)
        manifest = manifest_item(ref, source)
        self._write(
            "put_item",
            "writing a manifest",
            ref.club_id,
            units_so_far=units,
            Item=manifest,
            ReturnConsumedCapacity="TOTAL",
        )
        return ref, units + write_units(item_size(manifest))

    def _batch_put(self, club_id: int, items: list[dict[str, Any]], units_before: int) -> int:
        """Write up to 25 items, resending what DynamoDB left unprocessed; returns the units of this batch."""
        pending = {item[SK]["S"]: item for item in items}
        units = 0
        for attempt in range(self._max_attempts):
            request = {self.table_name: [{"PutRequest": {"Item": item}} for item in pending.values()]}
            try:
                response = self._call("batch_write_item", RequestItems=request, ReturnConsumedCapacity="TOTAL")
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                reason = "still throttled after botocore's retries" if code in THROTTLING_CODES else f"error {code}"
                raise self._write_error("writing snapshot parts", club_id, reason, units_before + units) from exc
            except _NETWORK_ERRORS as exc:
                raise self._write_error(
                    "writing snapshot parts", club_id, type(exc).__name__, units_before + units
                ) from exc
            else:
                left = response.get("UnprocessedItems", {}).get(self.table_name, [])
                unprocessed_sks = {r["PutRequest"]["Item"][SK]["S"] for r in left}
            # New version keys never existed before, so each stored item costs its own size.
            units += sum(write_units(item_size(i)) for sk, i in pending.items() if sk not in unprocessed_sks)
            pending = {sk: pending[sk] for sk in unprocessed_sks}
            if not pending:
                return units
            if attempt + 1 < self._max_attempts:
                self._backoff(attempt)
        raise self._write_error(
            "writing snapshot parts",
            club_id,
            f"{len(pending)} items still unprocessed after {self._max_attempts} attempts",
            units_before + units,
        )

    def manifest(self, club_id: int, version: str) -> VersionRef | None:
        """The manifest of one version, or None when the version is incomplete or gone."""
        response = self._read(
            "get_item", "reading a manifest", club_id, Key=item_key(club_id, manifest_sk(version)), ConsistentRead=True
        )
        item = response.get("Item")
        return self._parse_manifest(club_id, item) if item else None

    def _parse_manifest(self, club_id: int, item: Mapping[str, Any]) -> VersionRef:
        try:
            return ref_from_manifest(club_id, item)
        except (KeyError, ValueError) as exc:
            raise SnapshotReadError(f"a manifest of club {club_id} in table {self.table_name} is malformed") from exc

    def extend_expiry(self, pointer: Pointer, new_expires_at: int) -> int:
        """Move the expiry of every item of the pointer's version to `new_expires_at`; returns write units.

        Parts first and the manifest last, so a manifest never outlives its parts. An item already deleted is not
        recreated (it would be a stub without data): that version is damaged, and SnapshotWriteError says so.
        The caller records the new expiry in the head with its next commit.
        """
        club_id = pointer.club_id
        ref = self.manifest(club_id, pointer.version)
        if ref is None:
            raise self._write_error("extending expiry", club_id, f"manifest of version {pointer.version} is gone", 0)
        units = 0
        for shard, sizes in enumerate(ref.part_bytes):
            for part, length in enumerate(sizes):
                sk = part_sk(ref.version, shard, part)
                units += self._extend_part(club_id, sk, length=length, expires_at=new_expires_at, units_before=units)
        ok, manifest_units = self._conditional_update(
            "extending expiry",
            club_id,
            item_key(club_id, manifest_sk(ref.version)),
            set_values={TTL_ATTRIBUTE: number(new_expires_at)},
            condition="attribute_exists(#pk)",
        )
        units += manifest_units
        if not ok:
            raise self._write_error("extending expiry", club_id, f"manifest of version {ref.version} is gone", units)
        return units

    def _extend_part(self, club_id: int, sk: str, *, length: int, expires_at: int, units_before: int) -> int:
        # Only the old expiry comes back (UPDATED_OLD): returning the whole part would ship its bytes for nothing;
        # its size is known from the manifest.
        try:
            response = self._write(
                "update_item",
                "extending expiry",
                club_id,
                units_so_far=units_before,
                Key=item_key(club_id, sk),
                UpdateExpression="SET #exp = :e",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE, "#pk": PK},
                ExpressionAttributeValues={":e": number(expires_at)},
                ReturnValues="UPDATED_OLD",
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            raise self._write_error(
                "extending expiry", club_id, "a part of the version is gone", units_before + 1
            ) from exc
        old_expiry = response.get("Attributes", {}).get(TTL_ATTRIBUTE, number(expires_at))

        def size(expiry: Mapping[str, str]) -> int:
            return item_size({**item_key(club_id, sk), TTL_ATTRIBUTE: expiry}) + len("d") + length

        return write_units(max(size(old_expiry), size(number(expires_at))))

    # -- reads -------------------------------------------------------------------------------------------------------

    def read_shard(
        self, club_id: int, version: str, shard: int, *, expected_parts: int | None = None
    ) -> dict[str, tuple[str, ...]]:
        """TechId -> call IDs of one shard of one version, with eventually consistent reads.

        Safe because a version's parts are written before its manifest and never change afterwards, and a reader
        only learns a version's name from a pointer or manifest written after them.
        """
        parts: list[bytes] = []
        for item in self._query_all(
            club_id,
            "reading a shard",
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames=placeholders(PK, SK, "d"),
            ExpressionAttributeValues={
                ":pk": string(club_key(club_id)),
                ":prefix": string(shard_prefix(version, shard)),
            },
            ProjectionExpression="#sk, #d",
            ConsistentRead=False,
        ):
            if item[SK]["S"] != part_sk(version, shard, len(parts)):
                raise SnapshotReadError(f"version {version} of club {club_id} in table {self.table_name} has a gap")
            parts.append(bytes(item["d"]["B"]))
        if not parts or (expected_parts is not None and len(parts) != expected_parts):
            raise SnapshotReadError(f"version {version} of club {club_id} in table {self.table_name} is incomplete")
        return self._decode_parts(club_id, version, parts)

    def _query_all(self, club_id: int, what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        start_key = None
        while True:
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            response = self._read("query", what, club_id, **kwargs)
            yield from response.get("Items", [])
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return

    def version_as_of(self, club_id: int, at_ms: int) -> VersionRef | None:
        """The newest complete, unexpired version fetched at or before `at_ms`, or None."""
        if not 0 <= at_ms <= MAX_FETCHED_AT_MS:
            raise ValueError(f"time out of range: {at_ms}")
        now = self._clock()
        upper = f"V#{at_ms:013d}~"  # "~" sorts after "-", so versions fetched exactly at at_ms are included
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": placeholders(*MANIFEST_FIELDS),
                "ExpressionAttributeValues": {
                    ":pk": string(club_key(club_id)),
                    ":lo": string("V#0"),
                    ":hi": string(upper),
                },
                # Parts are read (and billed) but their bytes are not shipped back.
                "ProjectionExpression": ", ".join(f"#{a}" for a in MANIFEST_FIELDS),
                "ScanIndexForward": False,
                "Limit": _AS_OF_PAGE,
                "ConsistentRead": False,
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            response = self._read("query", "reading versions", club_id, **kwargs)
            items = response.get("Items", [])
            for item in items:
                if is_manifest_sk(item[SK]["S"]):
                    ref = self._parse_manifest(club_id, item)
                    if ref.expires_at > now:
                        return ref
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return None
            last_version, in_parts, _ = items[-1][SK]["S"][2:].partition("#") if items else ("", "", "")
            if in_parts:
                # The page stopped among a version's parts, which sort just after its manifest:
                # jump straight to that manifest instead of paging through the remaining parts.
                upper, start_key = manifest_sk(last_version), None

    def open_calls_as_of(self, club_id: int, tech_id: str, at_ms: int) -> OpenCalls | None:
        """Calls open for a TechId in the version that was newest at `at_ms` (epoch ms); None if none is kept."""
        ref = self.version_as_of(club_id, at_ms)
        if ref is None:
            return None
        _require_known_format(ref.format_version, club_id, self.table_name)
        shard = shard_of(tech_id, ref.shard_count)
        techs = self.read_shard(club_id, ref.version, shard, expected_parts=ref.parts[shard])
        return OpenCalls(
            club_id=club_id,
            tech_id=tech_id,
            call_ids=techs.get(tech_id, ()),
            version=ref.version,
            content_hash=ref.content_hash,
            fetched_at_ms=ref.fetched_at_ms,
            checked_at_ms=None,
        )

    # -- batch reads (the query cache) -----------------------------------------------------------------------------

    def heads(self, sources: Iterable[str]) -> dict[str, Head | None]:
        """The heads of several sources in as few BatchGetItem requests as possible (100 keys each), eventually
        consistent like `head(consistent=False)`; None for a source that never published.

        A warm query Lambda refreshes every head it holds at once, so its requests do not grow with the number of
        sources. Raises SnapshotReadError when DynamoDB keeps refusing or a head is malformed.
        """
        wanted = list(dict.fromkeys(sources))
        found = self._batch_get([source_item_key(s, HEAD_SK) for s in wanted], "reading heads")
        heads: dict[str, Head | None] = {}
        for source in wanted:
            item = found.get((source_key(source), HEAD_SK))
            try:
                heads[source] = head_from_item(item) if item else None
            except (KeyError, ValueError, TypeError) as exc:
                raise SnapshotReadError(f"head of source {source!r} in table {self.table_name} is malformed") from exc
        return heads

    def read_shards(self, shards: Iterable[ShardKey]) -> dict[ShardKey, dict[str, tuple[str, ...]]]:
        """Several (club, version, shard) at once with BatchGetItem, eventually consistent like `read_shard`.

        A batch needs exact part keys, and heads record shard counts but not parts per shard. Rather than widen
        the head, the first request reads each version's manifest (its `parts`) together with part 0 of every shard
        asked for, which is the whole shard in the usual case (one part holds 350 KB compressed); a second round
        reads any further parts. A shard whose manifest or parts this replica does not show yet, or whose version
        is in a format this code does not read, is left out: the caller reads it with `read_shard` when a query
        needs it, which reports any problem. Raises SnapshotReadError when DynamoDB keeps refusing or data is corrupt.
        """
        wanted = list(dict.fromkeys(shards))
        versions = list(dict.fromkeys((club, version) for club, version, _ in wanted))
        found = self._batch_get(
            [item_key(c, manifest_sk(v)) for c, v in versions] + [item_key(c, part_sk(v, s, 0)) for c, v, s in wanted],
            "reading shards",
        )
        parts_of: dict[ShardKey, int] = {}
        for club, version, shard in wanted:
            item = found.get((club_key(club), manifest_sk(version)))
            ref = self._parse_manifest(club, item) if item else None
            if ref is not None and ref.format_version == FORMAT_VERSION and 0 <= shard < ref.shard_count:
                parts_of[(club, version, shard)] = ref.parts[shard]
        rest = [item_key(c, part_sk(v, s, p)) for (c, v, s), n in parts_of.items() for p in range(1, n)]
        if rest:
            found |= self._batch_get(rest, "reading shards")
        decoded: dict[ShardKey, dict[str, tuple[str, ...]]] = {}
        for (club, version, shard), count in parts_of.items():
            items = [found.get((club_key(club), part_sk(version, shard, p))) for p in range(count)]
            parts = [bytes(item["d"]["B"]) for item in items if item is not None]
            if len(parts) == count:
                decoded[(club, version, shard)] = self._decode_parts(club, version, parts)
        return decoded

    def _decode_parts(self, club_id: int, version: str, parts: list[bytes]) -> dict[str, tuple[str, ...]]:
        try:
            return decode_shard(parts)
        except (zlib.error, UnicodeDecodeError) as exc:
            raise SnapshotReadError(
                f"version {version} of club {club_id} in table {self.table_name} is corrupt"
            ) from exc

    def _batch_get(self, keys: Sequence[Mapping[str, Any]], what: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (pk, sk), 100 keys a request, resending UnprocessedKeys (throttling, or the 16 MB response cap).

        Botocore retries a throttled request, not the keys a successful one left unprocessed: those are resent
        here, at once after partial progress, with a short backoff when nothing came back, and SnapshotReadError
        after READ_BATCH_ATTEMPTS requests in a row without progress. Absent keys are simply not in the result.
        """
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_SIZE):
            pending = list(keys[start : start + BATCH_GET_SIZE])
            stalls = 0
            while pending:
                request = {self.table_name: {"Keys": pending, "ConsistentRead": False}}
                try:
                    response = self._call("batch_get_item", RequestItems=request)
                except (ClientError, *_NETWORK_ERRORS) as exc:
                    raise SnapshotReadError(f"{what} in table {self.table_name} failed: {_read_reason(exc)}") from exc
                items = response.get("Responses", {}).get(self.table_name, [])
                found.update(((item[PK]["S"], item[SK]["S"]), item) for item in items)
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if pending and not items:
                    stalls += 1
                    if stalls >= READ_BATCH_ATTEMPTS:
                        raise SnapshotReadError(
                            f"{what} in table {self.table_name} failed: {len(pending)} keys still unprocessed"
                            f" after {READ_BATCH_ATTEMPTS} attempts"
                        )
                    self._backoff(stalls - 1)
        return found


def _read_reason(exc: Exception) -> str:
    """Why a read failed: DynamoDB's error code, or the name of the network failure botocore gave up on."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    return code or type(exc).__name__


def _subject(subject: int | str) -> str:
    return f"club {subject}" if isinstance(subject, int) else f"source {subject!r}"


def _require_known_format(format_version: int, club_id: int, table_name: str) -> None:
    if format_version != FORMAT_VERSION:
        raise SnapshotReadError(
            f"club {club_id} in table {table_name} uses snapshot format {format_version},"
            f" this code reads {FORMAT_VERSION}"
        )


def shard_address(pointer: Pointer, tech_id: str, table_name: str) -> ShardKey:
    """(club, version, shard) holding `tech_id` under `pointer`; refuses formats this code cannot read."""
    _require_known_format(pointer.format_version, pointer.club_id, table_name)
    return pointer.club_id, pointer.version, shard_of(tech_id, pointer.shard_count)
