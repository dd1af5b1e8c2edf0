"""DynamoDB storage of club snapshots (DESIGN.md section 3), through the low-level boto3 client.

One table, keys `pk`/`sk`:

    SOURCE#<name>  HEAD                                  head: per club ID of the source, the version readers see
    CLUB#212       V#<version>                           manifest: metadata and part sizes, written last
    CLUB#212       V#<version>#S#<shard:04d>#P#<part:03d>  one part of one shard's compressed bytes

Why this shape:
- A source's feed is one document fetched at one moment, so the pointers of all its club IDs live in one head item
  and move together in one conditional write. An unchanged poll rewrites only that small item (one write unit).
- Readers always go through the head, and a version's items never change once written (only their expiry
  does), so a reader sees the old complete snapshot or the new complete one, never a mix.
- The head records the fetch time of the latest poll it reflects; a write carrying an earlier fetch is refused,
  so of two overlapping polls the later fetch always wins, whichever finishes first.
- The manifest is written after every part, so its existence means the version is complete; point-in-time
  reads ("what was open at 10:20?") only trust versions that have one.
- `version` starts with the zero-padded fetch time, so sort keys order versions by fetch time.

This module decides nothing about *whether* to publish (drop guard, newer-poll policy); it offers atomic
primitives whose conditions keep the guarantees under overlapping polls. Every write reports the write units
it consumed, computed from DynamoDB's item-size rules, because moto (and local mode) do not report them truthfully.
"""

from __future__ import annotations

import math
import random
import re
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cappi.domain.snapshot import FORMAT_VERSION, ClubSnapshot, decode_shard, encode_shards, shard_count_for, shard_of

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "expires_at"
HEAD_SK = "HEAD"

BATCH_SIZE = 25  # BatchWriteItem's limit
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
# Network failures botocore gave up on are storage failures; other botocore errors (bad parameters, missing
# credentials) are bugs or misconfiguration and propagate as they are.
_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)
_MAX_SHARDS = 9_999  # the sort key holds four digits of shard number
_MAX_PARTS = 999  # ... and three of part number
_MAX_FETCHED_AT_MS = 10**13 - 1  # thirteen digits in the version name (until the year 2286)
_PLACEHOLDER = re.compile(r"#(\w+)")
_AS_OF_PAGE = 4  # a typical version is one part + its manifest; small pages avoid reading parts we skip

DynamoClient = Any  # botocore builds the client class at runtime; there is no importable type without stubs


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


@dataclass(frozen=True, slots=True)
class Pointer:
    """One club's entry in its source's head: which version readers see. `held_*` is the drop guard's pending poll."""

    club_id: int
    version: str
    content_hash: str
    fetched_at_ms: int
    checked_at_ms: int  # fetch time of the latest successful poll that confirmed this content
    shard_count: int
    call_count: int
    tech_count: int
    source: str
    format_version: int
    data_expires_at: int  # epoch seconds at which this version's items expire
    held_hash: str | None = None
    held_count: int | None = None
    held_fetched_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A complete version of one club's snapshot, as described by its manifest."""

    club_id: int
    version: str
    content_hash: str
    fetched_at_ms: int
    shard_count: int
    parts: tuple[int, ...]  # number of part items of each shard
    call_count: int
    tech_count: int
    expires_at: int  # epoch seconds
    part_bytes: tuple[tuple[int, ...], ...] = ()  # byte length of each part, per shard
    format_version: int = FORMAT_VERSION

    def as_pointer(self, source: str, checked_at_ms: int) -> Pointer:
        """The head entry that makes this version current, confirmed by the poll fetched at `checked_at_ms`."""
        return Pointer(
            club_id=self.club_id,
            version=self.version,
            content_hash=self.content_hash,
            fetched_at_ms=self.fetched_at_ms,
            checked_at_ms=checked_at_ms,
            shard_count=self.shard_count,
            call_count=self.call_count,
            tech_count=self.tech_count,
            source=source,
            format_version=self.format_version,
            data_expires_at=self.expires_at,
        )


@dataclass(frozen=True, slots=True)
class Head:
    """The head item of a source: for each of its club IDs, the version readers see.

    `fetched_at_ms` is the fetch time of the latest poll the head reflects (published, confirmed or held).
    """

    source: str
    fetched_at_ms: int
    clubs: Mapping[int, Pointer]


@dataclass(frozen=True, slots=True)
class OpenCalls:
    """The answer to one query. `checked_at_ms` is None for point-in-time answers (not recorded per version)."""

    club_id: int
    tech_id: str
    call_ids: tuple[str, ...]
    version: str
    content_hash: str
    fetched_at_ms: int
    checked_at_ms: int | None


# ---------------------------------------------------------------------------------------------------------------
# Item sizes and write units


def _number_size(text: str) -> int:
    # DynamoDB stores about two significant digits per byte plus one byte; the sign costs one more.
    negative = text.startswith("-")
    mantissa = text.lstrip("+-").lower().partition("e")[0]
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0")
    if "." in mantissa:
        # Zeros after the decimal point but before the first significant digit are not significant.
        digits = digits.lstrip("0")
    return (len(digits) + 1) // 2 + 1 + (1 if negative else 0)


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, payload), *rest = value.items()
    if rest:
        raise ValueError(f"an attribute value has exactly one type, got {sorted(value)}")
    if kind == "S":
        return len(payload.encode())
    if kind == "B":
        return len(payload)
    if kind == "N":
        return _number_size(payload)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in payload)
    if kind == "BS":
        return sum(len(b) for b in payload)
    if kind == "NS":
        return sum(_number_size(n) for n in payload)
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in payload)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in payload.items())
    raise ValueError(f"unknown attribute value type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Size in bytes of an item in the low-level attribute-value format, by DynamoDB's published rules.

    Each attribute costs its name's UTF-8 length plus its value: S its UTF-8 bytes, B its bytes, N about one byte
    per two significant digits plus one, BOOL/NULL one, L/M three plus one per element (plus names for M).
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """Write units for one item write of `size` bytes: one per started KB, at least one."""
    return max(1, math.ceil(size / 1024))


# ---------------------------------------------------------------------------------------------------------------
# Keys


def source_key(source: str) -> str:
    return f"SOURCE#{source}"


def club_key(club_id: int) -> str:
    if not 0 <= club_id <= 999:
        raise ValueError(f"club id out of range: {club_id}")
    return f"CLUB#{club_id:03d}"


def version_name(fetched_at_ms: int, content_hash: str) -> str:
    """Sortable by fetch time; the hash prefix keeps two polls in the same millisecond apart."""
    if not 0 <= fetched_at_ms <= _MAX_FETCHED_AT_MS:
        raise ValueError(f"fetch time out of range: {fetched_at_ms}")
    return f"{fetched_at_ms:013d}-{content_hash[:12]}"


def _manifest_sk(version: str) -> str:
    return f"V#{version}"


def _is_manifest_sk(sk: str) -> bool:
    return sk.startswith("V#") and "#" not in sk[2:]


def _shard_prefix(version: str, shard: int) -> str:
    return f"V#{version}#S#{shard:04d}#"


def _part_sk(version: str, shard: int, part: int) -> str:
    return f"{_shard_prefix(version, shard)}P#{part:03d}"


def _key(club_id: int, sk: str) -> dict[str, dict[str, str]]:
    return {PK: {"S": club_key(club_id)}, SK: {"S": sk}}


def _names(*attributes: str) -> dict[str, str]:
    # Every attribute goes through a placeholder: several of ours (source, format) are DynamoDB reserved words.
    return {f"#{a}": a for a in attributes}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


# ---------------------------------------------------------------------------------------------------------------
# Items <-> dataclasses

_META_FIELDS = ("version", "content_hash", "fetched_at", "shard_count", "call_count", "tech_count", "source", "format")
_MANIFEST_FIELDS = (PK, SK, *_META_FIELDS, "parts", "part_bytes", TTL_ATTRIBUTE)


def _encode_part_bytes(part_bytes: tuple[tuple[int, ...], ...]) -> str:
    return ";".join(",".join(str(n) for n in shard) for shard in part_bytes)


def _decode_part_bytes(text: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(n) for n in shard.split(",")) for shard in text.split(";"))


def _manifest_item(ref: VersionRef, source: str) -> dict[str, dict[str, Any]]:
    return {
        **_key(ref.club_id, _manifest_sk(ref.version)),
        "version": _s(ref.version),
        "content_hash": _s(ref.content_hash),
        "fetched_at": _n(ref.fetched_at_ms),
        "shard_count": _n(ref.shard_count),
        "call_count": _n(ref.call_count),
        "tech_count": _n(ref.tech_count),
        "source": _s(source),
        "format": _n(ref.format_version),
        "parts": _s(",".join(str(n) for n in ref.parts)),
        "part_bytes": _s(_encode_part_bytes(ref.part_bytes)),
        TTL_ATTRIBUTE: _n(ref.expires_at),
    }


def _ref_from_manifest(club_id: int, item: Mapping[str, Any]) -> VersionRef:
    part_bytes = _decode_part_bytes(item["part_bytes"]["S"])
    return VersionRef(
        club_id=club_id,
        version=item["version"]["S"],
        content_hash=item["content_hash"]["S"],
        fetched_at_ms=int(item["fetched_at"]["N"]),
        shard_count=int(item["shard_count"]["N"]),
        parts=tuple(int(n) for n in item["parts"]["S"].split(",")),
        call_count=int(item["call_count"]["N"]),
        tech_count=int(item["tech_count"]["N"]),
        expires_at=int(item[TTL_ATTRIBUTE]["N"]),
        part_bytes=part_bytes,
        format_version=int(item["format"]["N"]),
    )


# Short names inside the head's per-club maps keep the head small: one write unit for a few clubs.
_ENTRY_NUMBERS = {
    "fetched_at_ms": "f",
    "checked_at_ms": "k",
    "shard_count": "n",
    "call_count": "c",
    "tech_count": "t",
    "format_version": "fmt",
    "data_expires_at": "x",
}
_HELD = {"held_count": "hc", "held_fetched_at_ms": "hf"}


def _head_item(source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer]) -> dict[str, dict[str, Any]]:
    # Deliberately no TTL attribute: the head must outlive every version it names.
    entries: dict[str, Any] = {}
    for club_id, pointer in sorted(clubs.items()):
        entry: dict[str, Any] = {"v": _s(pointer.version), "h": _s(pointer.content_hash)}
        entry |= {short: _n(getattr(pointer, name)) for name, short in _ENTRY_NUMBERS.items()}
        if pointer.held_fetched_at_ms is not None:
            entry["hh"] = _s(pointer.held_hash or "")
            entry |= {short: _n(getattr(pointer, name) or 0) for name, short in _HELD.items()}
        entries[str(club_id)] = {"M": entry}
    return {
        PK: _s(source_key(source)),
        SK: _s(HEAD_SK),
        "source": _s(source),
        "fetched_at": _n(fetched_at_ms),
        "clubs": {"M": entries},
    }


def _head_from_item(item: Mapping[str, Any]) -> Head:
    source = item["source"]["S"]
    clubs: dict[int, Pointer] = {}
    for key, value in item["clubs"]["M"].items():
        entry = value["M"]
        numbers = {name: int(entry[short]["N"]) for name, short in _ENTRY_NUMBERS.items()}
        held = "hf" in entry
        clubs[int(key)] = Pointer(
            club_id=int(key),
            version=entry["v"]["S"],
            content_hash=entry["h"]["S"],
            source=source,
            held_hash=entry["hh"]["S"] if held else None,
            held_count=int(entry["hc"]["N"]) if held else None,
            held_fetched_at_ms=int(entry["hf"]["N"]) if held else None,
            **numbers,
        )
    return Head(source=source, fetched_at_ms=int(item["fetched_at"]["N"]), clubs=clubs)


def _apply_update(
    old: Mapping[str, Any], set_values: Mapping[str, Any], remove: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The item an UpdateItem leaves behind, so its cost can be computed from the larger of before and after."""
    new = {k: v for k, v in old.items() if k not in remove}
    new.update(set_values)
    return new


# ---------------------------------------------------------------------------------------------------------------
# The store


class DynamoSnapshotStore:
    """Snapshot storage primitives over one DynamoDB table.

    `clock` gives epoch seconds (used to skip expired versions). `sleep` is the backoff between retries of
    throttled or partly processed writes; at most `max_attempts` requests are made per batch or item.
    `requests` counts every DynamoDB request made, `requests_by_operation` splits it by operation, and
    `reported_capacity_units` sums what DynamoDB reported as consumed (meaningful on AWS, not under moto).
    `sources_by_club` (from the registry) says which source's head holds a club's pointer; reads by club need it.
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
        sources_by_club: Mapping[int, str] | None = None,
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
        self.sources_by_club: dict[int, str] = dict(sources_by_club or {})
        self.requests = 0
        self.requests_by_operation: Counter[str] = Counter()
        self.reported_capacity_units = 0.0

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.requests += 1
        self.requests_by_operation[operation] += 1
        if operation != "batch_write_item":  # the batch names its table inside RequestItems
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
        """One write request, retried on throttling. Conditional-check failures are passed through."""
        for attempt in range(self._max_attempts):
            try:
                return self._call(operation, **kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == _CONDITION_FAILED:
                    raise
                if code not in THROTTLING_CODES:
                    raise self._write_error(what, club_id, f"error {code}", units_so_far) from exc
                if attempt + 1 < self._max_attempts:
                    self._backoff(attempt)
            except _NETWORK_ERRORS as exc:
                raise self._write_error(what, club_id, type(exc).__name__, units_so_far) from exc
        raise self._write_error(what, club_id, f"still throttled after {self._max_attempts} attempts", units_so_far)

    def _write_error(self, what: str, subject: int | str, reason: str, units: int) -> SnapshotWriteError:
        return SnapshotWriteError(f"{what} for {_subject(subject)} in table {self.table_name} failed: {reason}", units)

    def _read(self, operation: str, what: str, club_id: int | str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._call(operation, **kwargs)
        except (ClientError, *_NETWORK_ERRORS) as exc:
            reason = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            raise SnapshotReadError(
                f"{what} for {_subject(club_id)} in table {self.table_name} failed: {reason or type(exc).__name__}"
            ) from exc

    def _conditional_update(
        self,
        what: str,
        club_id: int,
        sk: str,
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
        names = _names(*dict.fromkeys(_PLACEHOLDER.findall(f"{expression} {condition}")))
        values = {f":{a}": v for a, v in set_values.items()} | dict(condition_values or {})
        return self._conditional(
            "update_item",
            what,
            club_id,
            lambda old: _apply_update(old, set_values, remove),
            Key=_key(club_id, sk),
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

    # -- heads -------------------------------------------------------------------------------------------------------

    def head(self, source: str, *, consistent: bool = True) -> Head | None:
        """The source's head, or None when nothing was ever published for it."""
        response = self._read(
            "get_item",
            "reading the head",
            source,
            Key={PK: _s(source_key(source)), SK: _s(HEAD_SK)},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        if not item:
            return None
        try:
            return _head_from_item(item)
        except (KeyError, ValueError) as exc:
            raise SnapshotReadError(f"head of source {source!r} in table {self.table_name} is malformed") from exc

    def commit_head(self, source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer]) -> tuple[bool, int]:
        """Make `clubs` what readers see for this source, as of the poll fetched at `fetched_at_ms`.

        One conditional PutItem: refused when the head already reflects a fetch at or after this one, so the later
        fetch wins whatever order overlapping polls finish in. Every version named must be complete (written with
        write_version) before this call. Returns (False, units) when refused; a refused write still costs units.
        """
        item = _head_item(source, fetched_at_ms, clubs)
        return self._conditional(
            "put_item",
            "moving the head",
            source,
            lambda _old: item,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk) OR #fetched_at < :t",
            ExpressionAttributeNames=_names(PK, "fetched_at"),
            ExpressionAttributeValues={":t": _n(fetched_at_ms)},
        )

    def current(self, club_id: int, *, consistent: bool = True) -> Pointer | None:
        """The club's pointer, or None when no known source serves it or nothing was published for it yet."""
        source = self.sources_by_club.get(club_id)
        head = self.head(source, consistent=consistent) if source else None
        return head.clubs.get(club_id) if head else None

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
        if not 1 <= count <= _MAX_SHARDS:
            raise ValueError(f"shard count out of range: {count}")
        shards = encode_shards(snapshot, count)
        if any(len(parts) > _MAX_PARTS for parts in shards):
            raise ValueError(f"a shard has more than {_MAX_PARTS} parts; use more shards")
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
        pk = _s(club_key(snapshot.club_id))
        items = [
            {PK: pk, SK: _s(_part_sk(ref.version, s, p)), "d": {"B": data}, TTL_ATTRIBUTE: _n(expires_at)}
            for s, parts in enumerate(shards)
            for p, data in enumerate(parts)
        ]
        units = 0
        for start in range(0, len(items), BATCH_SIZE):
            units += self._batch_put(snapshot.club_id, items[start : start + BATCH_SIZE], units)
        manifest = _manifest_item(ref, source)
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
                if code not in THROTTLING_CODES:
                    raise self._write_error(
                        "writing snapshot parts", club_id, f"error {code}", units_before + units
                    ) from exc
                unprocessed_sks = set(pending)
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
            "get_item", "reading a manifest", club_id, Key=_key(club_id, _manifest_sk(version)), ConsistentRead=True
        )
        item = response.get("Item")
        return self._parse_manifest(club_id, item) if item else None

    def _parse_manifest(self, club_id: int, item: Mapping[str, Any]) -> VersionRef:
        try:
            return _ref_from_manifest(club_id, item)
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
                sk = _part_sk(ref.version, shard, part)
                units += self._extend_part(club_id, sk, length=length, expires_at=new_expires_at, units_before=units)
        ok, manifest_units = self._conditional_update(
            "extending expiry",
            club_id,
            _manifest_sk(ref.version),
            set_values={TTL_ATTRIBUTE: _n(new_expires_at)},
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
                Key=_key(club_id, sk),
                UpdateExpression="SET #exp = :e",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE, "#pk": PK},
                ExpressionAttributeValues={":e": _n(expires_at)},
                ReturnValues="UPDATED_OLD",
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            raise self._write_error(
                "extending expiry", club_id, "a part of the version is gone", units_before + 1
            ) from exc
        old_expiry = response.get("Attributes", {}).get(TTL_ATTRIBUTE, _n(expires_at))

        def size(expiry: Mapping[str, str]) -> int:
            return item_size({**_key(club_id, sk), TTL_ATTRIBUTE: expiry}) + len("d") + length

        return write_units(max(size(old_expiry), size(_n(expires_at))))

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
            ExpressionAttributeNames=_names(PK, SK, "d"),
            ExpressionAttributeValues={":pk": _s(club_key(club_id)), ":prefix": _s(_shard_prefix(version, shard))},
            ProjectionExpression="#sk, #d",
            ConsistentRead=False,
        ):
            if item[SK]["S"] != _part_sk(version, shard, len(parts)):
                raise SnapshotReadError(f"version {version} of club {club_id} in table {self.table_name} has a gap")
            parts.append(bytes(item["d"]["B"]))
        if not parts or (expected_parts is not None and len(parts) != expected_parts):
            raise SnapshotReadError(f"version {version} of club {club_id} in table {self.table_name} is incomplete")
        try:
            return decode_shard(parts)
        except (zlib.error, UnicodeDecodeError) as exc:
            raise SnapshotReadError(
                f"version {version} of club {club_id} in table {self.table_name} is corrupt"
            ) from exc

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

    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None:
        """Calls open for a (canonical) TechId in the club's current version; None when nothing was published."""
        pointer = self.current(club_id)
        if pointer is None:
            return None
        return open_calls_from(pointer, tech_id, self.read_shard(*_shard_address(pointer, tech_id, self.table_name)))

    def version_as_of(self, club_id: int, at_ms: int) -> VersionRef | None:
        """The newest complete, unexpired version fetched at or before `at_ms`, or None."""
        if not 0 <= at_ms <= _MAX_FETCHED_AT_MS:
            raise ValueError(f"time out of range: {at_ms}")
        now = self._clock()
        upper = f"V#{at_ms:013d}~"  # "~" sorts after "-", so versions fetched exactly at at_ms are included
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": _names(*_MANIFEST_FIELDS),
                "ExpressionAttributeValues": {":pk": _s(club_key(club_id)), ":lo": _s("V#0"), ":hi": _s(upper)},
                # Parts are read (and billed) but their bytes are not shipped back.
                "ProjectionExpression": ", ".join(f"#{a}" for a in _MANIFEST_FIELDS),
                "ScanIndexForward": False,
                "Limit": _AS_OF_PAGE,
                "ConsistentRead": False,
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            response = self._read("query", "reading versions", club_id, **kwargs)
            items = response.get("Items", [])
            for item in items:
                if _is_manifest_sk(item[SK]["S"]):
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
                upper, start_key = _manifest_sk(last_version), None

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


def _subject(subject: int | str) -> str:
    return f"club {subject}" if isinstance(subject, int) else f"source {subject!r}"


def _require_known_format(format_version: int, club_id: int, table_name: str) -> None:
    if format_version != FORMAT_VERSION:
        raise SnapshotReadError(
            f"club {club_id} in table {table_name} uses snapshot format {format_version},"
            f" this code reads {FORMAT_VERSION}"
        )


def _shard_address(pointer: Pointer, tech_id: str, table_name: str) -> tuple[int, str, int]:
    _require_known_format(pointer.format_version, pointer.club_id, table_name)
    return pointer.club_id, pointer.version, shard_of(tech_id, pointer.shard_count)


def open_calls_from(pointer: Pointer, tech_id: str, techs: Mapping[str, tuple[str, ...]]) -> OpenCalls:
    """Assemble an answer from a pointer and the decoded shard that holds `tech_id`."""
    return OpenCalls(
        club_id=pointer.club_id,
        tech_id=tech_id,
        call_ids=techs.get(tech_id, ()),
        version=pointer.version,
        content_hash=pointer.content_hash,
        fetched_at_ms=pointer.fetched_at_ms,
        checked_at_ms=pointer.checked_at_ms,
    )


# ---------------------------------------------------------------------------------------------------------------
# Creating the table (tests, local mode, benchmarks; the CDK stack defines the same schema)


def create_table(client: DynamoClient, table_name: str) -> None:
    """Create the snapshot table (on-demand, TTL on `expires_at`) and wait until it is active. Idempotent."""
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": PK, "AttributeType": "S"},
                {"AttributeName": SK, "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    ttl = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
    # Enabling twice is an error on AWS, and TTL can only be changed once per hour, so look first.
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )


# ---------------------------------------------------------------------------------------------------------------
# Cached reads for the query Lambda


@dataclass(slots=True)
class ReaderStats:
    """What a CachedSnapshotReader did; `dynamodb_requests / queries` is the figure benchmarks report."""

    queries: int = 0
    pointer_reads: int = 0
    shard_reads: int = 0
    shard_hits: int = 0
    dynamodb_requests: int = 0


@dataclass(slots=True)
class _CachedHead:
    head: Head | None
    loaded_at: float


class CachedSnapshotReader:
    """`open_calls` for a warm Lambda: pointers cached briefly, decoded shards kept in an LRU.

    Head reads are eventually consistent and cached per source for `pointer_max_age` seconds, so a new version
    becomes visible within that age plus DynamoDB's replication lag (normally well under a second), inside the 30
    seconds DESIGN.md allows. A head read that comes back older than the cached one (a lagging replica) is ignored,
    so one reader never goes backwards. Shards are keyed by (club, version, shard); versions are immutable, so a
    cached shard is never stale, only unused once the pointer moves on (then it is dropped). Not thread-safe:
    one Lambda execution environment serves one request at a time.
    """

    def __init__(
        self,
        store: DynamoSnapshotStore,
        *,
        pointer_max_age: float = 10.0,
        max_shards: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")
        self._store = store
        self._pointer_max_age = pointer_max_age
        self._max_shards = max_shards
        self._clock = clock
        self._heads: dict[str, _CachedHead] = {}
        self._shards: OrderedDict[tuple[int, str, int], dict[str, tuple[str, ...]]] = OrderedDict()
        self.stats = ReaderStats()

    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None:
        """Same contract as DynamoSnapshotStore.open_calls, served from cache when possible."""
        self.stats.queries += 1
        pointer = self._pointer(club_id)
        if pointer is None:
            return None
        key = _shard_address(pointer, tech_id, self._store.table_name)
        techs = self._shards.get(key)
        if techs is None:
            before = self._store.requests
            techs = self._store.read_shard(*key)
            self.stats.dynamodb_requests += self._store.requests - before
            self.stats.shard_reads += 1
            self._shards[key] = techs
            if len(self._shards) > self._max_shards:
                self._shards.popitem(last=False)
        else:
            self.stats.shard_hits += 1
            self._shards.move_to_end(key)
        return open_calls_from(pointer, tech_id, techs)

    @property
    def cached_shards(self) -> int:
        return len(self._shards)

    def _pointer(self, club_id: int) -> Pointer | None:
        source = self._store.sources_by_club.get(club_id)
        if source is None:
            return None
        now = self._clock()
        cached = self._heads.get(source)
        if cached is not None and now - cached.loaded_at < self._pointer_max_age:
            return cached.head.clubs.get(club_id) if cached.head else None
        before = self._store.requests
        fresh = self._store.head(source, consistent=False)
        self.stats.dynamodb_requests += self._store.requests - before
        self.stats.pointer_reads += 1
        old = cached.head if cached else None
        if fresh is not None and old is not None and fresh.fetched_at_ms < old.fetched_at_ms:
            fresh = old
        if old is not None:
            for old_club, old_pointer in old.clubs.items():
                new_pointer = fresh.clubs.get(old_club) if fresh else None
                if new_pointer is None or new_pointer.version != old_pointer.version:
                    self._forget_versions_except(old_club, new_pointer.version if new_pointer else None)
        self._heads[source] = _CachedHead(fresh, now)
        return fresh.clubs.get(club_id) if fresh else None

    def _forget_versions_except(self, club_id: int, version: str | None) -> None:
        for key in [k for k in self._shards if k[0] == club_id and k[1] != version]:
            del self._shards[key]


__all__ = [
    "PK",
    "SK",
    "TTL_ATTRIBUTE",
    "CachedSnapshotReader",
    "DynamoSnapshotStore",
    "Head",
    "OpenCalls",
    "Pointer",
    "ReaderStats",
    "SnapshotReadError",
    "SnapshotStoreError",
    "SnapshotWriteError",
    "VersionRef",
    "club_key",
    "create_table",
    "item_size",
    "open_calls_from",
    "source_key",
    "version_name",
    "write_units",
]
