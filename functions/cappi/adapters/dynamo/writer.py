"""The publisher's side of the snapshot table: write a version, move a source's head, extend a version's expiry.

Why this shape (DESIGN.md section 3):
- A source's feed is one document fetched at one moment, so the pointers of all its club IDs live in one head item
  and move together in one conditional write. An unchanged poll rewrites only that small item (one write unit).
- Readers always go through the head, and a version's items never change once written (only their expiry
  does), so a reader sees the old complete snapshot or the new complete one, never a mix.
- The head records the fetch time of the latest poll it reflects; a write carrying an earlier fetch is refused,
  so of two overlapping polls the later fetch always wins, whichever finishes first.
- The manifest is written after every part, so its existence means the version is complete; point-in-time
  reads ("what was open at 10:20?") only trust versions that have one.

This module decides nothing about *whether* to publish (drop guard, newer-poll policy: `cappi.domain.publish`); it
offers atomic primitives whose conditions keep the guarantees under overlapping polls. What they cost is counted
by the table's meter (`meter.units`), not returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from cappi.adapters.dynamo.codec import (
    head_item,
    head_with_body,
    manifest_item,
    number,
    placeholders,
    ref_from_manifest,
    string,
)
from cappi.adapters.dynamo.cost import item_size, write_units
from cappi.adapters.dynamo.reader_index import ReaderIndexWriter
from cappi.adapters.dynamo.schema import (
    HEAD_SK,
    MAX_PARTS,
    MAX_SHARDS,
    PK,
    SK,
    TTL_ATTRIBUTE,
    club_key,
    item_key,
    manifest_sk,
    part_sk,
    version_name,
)
from cappi.adapters.dynamo.shards import encode_shards, shard_count_for
from cappi.adapters.dynamo.table import NETWORK_ERRORS, SnapshotTable, WriteMeter, write_reason
from cappi.domain.body_record import BodyRecord
from cappi.domain.heads import Head, Pointer, VersionRef
from cappi.domain.snapshot import ClubSnapshot

BATCH_SIZE = 25  # BatchWriteItem's limit


class SnapshotWriter:
    """What publishing needs of the table (`cappi.domain.publish.SnapshotStore`): the ingest function's writes."""

    def __init__(self, table: SnapshotTable) -> None:
        self._table = table
        self.table_name = table.table_name
        self.readers_index = ReaderIndexWriter(table)

    @property
    def meter(self) -> WriteMeter:
        return self._table.meter

    def head(self, source: str, *, consistent: bool = True) -> Head | None:
        """The source's head, or None when nothing was ever published for it."""
        return self._table.source_item(source, HEAD_SK, "head", head_with_body, consistent=consistent)

    def commit_head(
        self, source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer], *, body: BodyRecord | None = None
    ) -> bool:
        """Make `clubs` what readers see for this source, as of the poll fetched at `fetched_at_ms`.

        One conditional PutItem: refused when the head already reflects a fetch at or after this one, so the later
        fetch wins whatever order overlapping polls finish in. Every version named must be complete (written with
        write_version) before this call. Returns False when refused (a refused write still costs units). `body`: what
        the head keeps of the feed body these pointers came from (none: the next poll parses its body).
        """
        item = head_item(source, fetched_at_ms, clubs, body)
        return self._table.conditional(
            "put_item",
            "moving the head",
            source,
            lambda _old: item,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk) OR #fetched_at < :t",
            ExpressionAttributeNames=placeholders(PK, "fetched_at"),
            ExpressionAttributeValues={":t": number(fetched_at_ms)},
        )

    def record_for_readers(
        self,
        source: str,
        fetched_at_ms: int,
        previous: Head | None,
        entries: Mapping[int, Pointer],
        published: Mapping[int, ClubSnapshot],
    ) -> None:
        """After a head commit: the deltas of the clubs that moved and the source's index entry, for readers
        (`cappi.adapters.dynamo.reader_index`; failures are counted there, never raised)."""
        self.readers_index.record(source, fetched_at_ms, previous, entries, published)

    def write_version(
        self,
        source: str,
        snapshot: ClubSnapshot,
        fetched_at_ms: int,
        expires_at: int,
        *,
        shard_count: int | None = None,
    ) -> VersionRef:
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
        for start in range(0, len(items), BATCH_SIZE):
            self._batch_put(snapshot.club_id, items[start : start + BATCH_SIZE])
        manifest = manifest_item(ref, source)
        self._table.write("put_item", "writing a manifest", ref.club_id, Item=manifest, ReturnConsumedCapacity="TOTAL")
        self.meter.add(write_units(item_size(manifest)))
        return ref

    def _batch_put(self, club_id: int, items: list[dict[str, Any]]) -> None:
        """Write up to 25 items, resending what DynamoDB left unprocessed."""
        table = self._table
        pending = {item[SK]["S"]: item for item in items}
        for attempt in range(table.max_attempts):
            request = {self.table_name: [{"PutRequest": {"Item": item}} for item in pending.values()]}
            try:
                response = table.call("batch_write_item", RequestItems=request, ReturnConsumedCapacity="TOTAL")
            except ClientError as exc:
                raise table.write_error("writing snapshot parts", club_id, write_reason(exc)) from exc
            except NETWORK_ERRORS as exc:
                raise table.write_error("writing snapshot parts", club_id, type(exc).__name__) from exc
            left = response.get("UnprocessedItems", {}).get(self.table_name, [])
            unprocessed_sks = {r["PutRequest"]["Item"][SK]["S"] for r in left}
            # New version keys never existed before, so each stored item costs its own size.
            self.meter.add(sum(write_units(item_size(i)) for sk, i in pending.items() if sk not in unprocessed_sks))
            pending = {sk: pending[sk] for sk in unprocessed_sks}
            if not pending:
                return
            if attempt + 1 < table.max_attempts:
                table.backoff(attempt)
        raise table.write_error(
            "writing snapshot parts",
            club_id,
            f"{len(pending)} items still unprocessed after {table.max_attempts} attempts",
        )

    def manifest(self, club_id: int, version: str) -> VersionRef | None:
        """The manifest of one version (a consistent read), or None when the version is incomplete or gone."""
        response = self._table.read(
            "get_item", "reading a manifest", club_id, Key=item_key(club_id, manifest_sk(version)), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        return self._table.decode(f"a manifest of club {club_id}", partial(ref_from_manifest, club_id), item)

    def extend_expiry(self, pointer: Pointer, new_expires_at: int) -> None:
        """Move the expiry of every item of the pointer's version to `new_expires_at`.

        Parts first and the manifest last, so a manifest never outlives its parts. An item already deleted is not
        recreated (it would be a stub without data): that version is damaged, and SnapshotWriteError says so.
        The caller records the new expiry in the head with its next commit.
        """
        club_id = pointer.club_id
        ref = self.manifest(club_id, pointer.version)
        if ref is None:
            raise self._table.write_error("extending expiry", club_id, f"manifest of version {pointer.version} is gone")
        for shard, sizes in enumerate(ref.part_bytes):
            for part, length in enumerate(sizes):
                self._extend_part(club_id, part_sk(ref.version, shard, part), length=length, expires_at=new_expires_at)
        ok = self._table.conditional_update(
            "extending expiry",
            club_id,
            item_key(club_id, manifest_sk(ref.version)),
            set_values={TTL_ATTRIBUTE: number(new_expires_at)},
            condition="attribute_exists(#pk)",
        )
        if not ok:
            raise self._table.write_error("extending expiry", club_id, f"manifest of version {ref.version} is gone")

    def _extend_part(self, club_id: int, sk: str, *, length: int, expires_at: int) -> None:
        # Only the old expiry comes back (UPDATED_OLD): returning the whole part would ship its bytes for nothing;
        # its size is known from the manifest.
        try:
            response = self._table.write(
                "update_item",
                "extending expiry",
                club_id,
                Key=item_key(club_id, sk),
                UpdateExpression="SET #exp = :e",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#exp": TTL_ATTRIBUTE, "#pk": PK},
                ExpressionAttributeValues={":e": number(expires_at)},
                ReturnValues="UPDATED_OLD",
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            self.meter.add(1)  # the refused conditional write
            raise self._table.write_error("extending expiry", club_id, "a part of the version is gone") from exc
        old_expiry = response.get("Attributes", {}).get(TTL_ATTRIBUTE, number(expires_at))

        def size(expiry: Mapping[str, str]) -> int:
            return item_size({**item_key(club_id, sk), TTL_ATTRIBUTE: expiry}) + len("d") + length

        self.meter.add(write_units(max(size(old_expiry), size(number(expires_at)))))
