"""What ingest writes for readers beside the head, so a warm reader's cost does not grow with the number of clubs.

- The index: `INDEX_SLOTS` items (`schema.index_item_key`), each holding, for the sources hashed to it, one attribute
  per source (`@<source>`) with that source's current pointers in a compact string: the poll's fetch time first (13
  digits, so strings compare as fetch times), then per club its version's fetch time, content hash (the prefix in the
  version's name, base64), shard, call and tech counts and format. Not the check time nor the drop guard's pending
  poll: those move on unchanged polls, and the index is written only when a version changes. A reader refreshes every
  source with one BatchGetItem of `INDEX_SLOTS` keys per `pointer_max_age` instead of one head per source.
- Deltas: when version B of a club replaces A, the item `V#<B>#D` holds what changed per technician (call IDs
  removed, call IDs added; about 8 KB for a 5% churn of 10,000 calls where B's shard is about 50 KB). A reader
  holding A's shards applies it instead of reading B's; one whose base differs reads B's shards as before.

Order and failures: `record` runs after the head moved (the head stays the authority for writers and for
`cappi status`), writes the deltas first and the index entry last, so a reader that learns B from the index finds
its delta. The entry is a conditional update that never goes backwards (refused unless the stored string, led by
its poll's fetch time, is older). If a write fails, readers still see complete versions only: a missing delta costs
them B's full shards, a missing entry makes them read the source's head, and a stale entry (an entry write that
failed after its head moved) is rewritten by the source's next poll, which reads its slot (half a read unit) when no
version moved and rewrites the entry if it differs from the head. Failures are counted (`failures`), never raised:
the poll did publish.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cappi.adapters.dynamo.codec import number, string
from cappi.adapters.dynamo.cost import item_size, write_units
from cappi.adapters.dynamo.schema import (
    MAX_FETCHED_AT_MS,
    TTL_ATTRIBUTE,
    VERSION_HASH_CHARS,
    club_key,
    delta_sk,
    index_item_key,
    index_slot,
    item_key,
    manifest_sk,
    part_sk,
    version_name,
)
from cappi.adapters.dynamo.shards import MAX_PART_BYTES, Techs, decode_shard, shard_of
from cappi.adapters.dynamo.table import SnapshotStoreError, SnapshotTable
from cappi.domain.heads import Head, Pointer
from cappi.domain.ids import call_id_sort_key
from cappi.domain.snapshot import ClubSnapshot

ENTRY_PREFIX = "@"  # attribute names of index entries: "@" + source (never a key attribute's name)
MAX_DELTA_BASE_PARTS = 8  # a base version in more parts than this is not read back to build a delta


# -- index entries -------------------------------------------------------------------------------------------------


def _hash_text(content_hash: str) -> str:
    """The part of a content hash readers use (the one in the version's name, `schema.version_name`), in base64."""
    prefix = content_hash[:VERSION_HASH_CHARS]
    try:
        return base64.urlsafe_b64encode(bytes.fromhex(prefix)).decode().rstrip("=")
    except ValueError:
        return "=" + prefix  # not hex (never from build_club_snapshot): kept as it is


def _hash_from(text: str) -> str:
    if text.startswith("="):
        return text[1:]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).hex()


def encode_entry(fetched_at_ms: int, clubs: Mapping[int, Pointer]) -> str:
    """A source's index entry as of the poll fetched at `fetched_at_ms`.

    Every byte is read by every warm container every `pointer_max_age`, so the entry holds what readers use and no
    more: a version's fetch time only when it is not the entry's own poll (a version published by that poll, the
    usual case, leaves it empty), and the content hash's prefix that names the version."""
    if not 0 <= fetched_at_ms <= MAX_FETCHED_AT_MS:
        raise ValueError(f"fetch time out of range: {fetched_at_ms}")
    body = ";".join(
        f"{club}:{'' if p.fetched_at_ms == fetched_at_ms else p.fetched_at_ms}:{_hash_text(p.content_hash)}:"
        f"{p.shard_count}:{p.call_count}:{p.tech_count}:{p.format_version}"
        for club, p in sorted(clubs.items())
    )
    return f"{fetched_at_ms:013d}|{body}"


def decode_entry(source: str, text: str) -> Head:
    """The head a reader uses, from an index entry: no check time (the entry's poll time stands for it), no expiry,
    no pending poll, and of the content hash the prefix the version's name holds. Raises ValueError when
    malformed."""
    stamp, _, body = text.partition("|")
    polled = int(stamp)
    clubs: dict[int, Pointer] = {}
    for part in body.split(";") if body else ():
        club, fetched_text, digest, shards, calls, techs, fmt = part.split(":")
        fetched = int(fetched_text) if fetched_text else polled
        content_hash = _hash_from(digest)
        clubs[int(club)] = Pointer(
            club_id=int(club),
            version=version_name(fetched, content_hash),
            content_hash=content_hash,
            fetched_at_ms=fetched,
            checked_at_ms=polled,
            shard_count=int(shards),
            call_count=int(calls),
            tech_count=int(techs),
            source=source,
            format_version=int(fmt),
            data_expires_at=0,
        )
    return Head(source=source, fetched_at_ms=polled, clubs=clubs)


def heads_from_index_items(items: Mapping[Any, Mapping[str, Any]]) -> dict[str, Head]:
    """Every source's head found in the index items read (by key). Raises ValueError (and friends) when one is
    malformed."""
    heads: dict[str, Head] = {}
    for item in items.values():
        for name, value in item.items():
            if name.startswith(ENTRY_PREFIX):
                source = name[len(ENTRY_PREFIX) :]
                heads[source] = decode_entry(source, value["S"])
    return heads


# -- deltas --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta:
    """How a version differs from `base`: per technician, the call IDs removed and added."""

    base: str
    changes: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]


def diff(old: Mapping[str, tuple[str, ...]], new: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str, str]]:
    """(tech, removed, added) per technician whose calls differ, call IDs comma-joined."""
    lines = []
    for tech in sorted(old.keys() | new.keys()):
        before, after = old.get(tech, ()), new.get(tech, ())
        if before != after:
            kept_before, kept_after = set(before), set(after)
            removed = tuple(c for c in before if c not in kept_after)
            added = tuple(c for c in after if c not in kept_before)
            lines.append((tech, ",".join(removed), ",".join(added)))
    return lines


def encode_delta(old: Mapping[str, tuple[str, ...]], new: Mapping[str, tuple[str, ...]]) -> bytes:
    return zlib.compress("".join(f"{t}\t{r}\t{a}\n" for t, r, a in diff(old, new)).encode(), 9)


def delta_from_item(item: Mapping[str, Any]) -> Delta:
    changes = []
    for line in zlib.decompress(bytes(item["d"]["B"])).decode().splitlines():
        tech, removed, added = line.split("\t")
        changes.append((tech, tuple(removed.split(",")) if removed else (), tuple(added.split(",")) if added else ()))
    return Delta(base=item["base"]["S"], changes=tuple(changes))


def apply_delta(techs: Techs, delta: Delta, shard: int, shard_count: int) -> Techs | None:
    """Shard `shard` of the new version from the same shard of the base; None when the delta does not fit it (a
    call it removes is not there, or one it adds already is): the caller then reads the new shard."""
    result = dict(techs)
    for tech, removed, added in delta.changes:
        if shard_of(tech, shard_count) != shard:
            continue
        before = result.get(tech, ())
        calls = set(before)
        if not calls.issuperset(removed) or not calls.isdisjoint(added):
            return None
        calls.difference_update(removed)
        calls.update(added)
        if calls:
            result[tech] = tuple(sorted(calls, key=call_id_sort_key))
        else:
            result.pop(tech, None)
    return result


# -- the writer ----------------------------------------------------------------------------------------------------


class ReaderIndexWriter:
    """Ingest's writes for readers after a head moved: deltas, then the source's index entry (see the module)."""

    def __init__(self, table: SnapshotTable) -> None:
        self._table = table
        self.failures = 0  # writes that failed (the next poll repairs the entry; a missing delta only costs reads)

    def record(
        self,
        source: str,
        fetched_at_ms: int,
        previous: Head | None,
        entries: Mapping[int, Pointer],
        published: Mapping[int, ClubSnapshot],
    ) -> None:
        """After the head commit of the poll fetched at `fetched_at_ms` (`entries`) succeeded; `previous` is the head
        it replaced, `published` the snapshots of the clubs that got a new version."""
        moved = False
        for club_id, entry in entries.items():
            old = previous.clubs.get(club_id) if previous else None
            if old is None or old.version != entry.version:
                moved = True
                if old is not None and club_id in published:
                    self._guarded(lambda o=old, e=entry, s=published[club_id]: self._write_delta(o, e, s))
        self._guarded(lambda: self._write_entry(source, fetched_at_ms, entries, check_first=not moved))

    def _guarded(self, write: Any) -> None:
        try:
            write()
        except (SnapshotStoreError, ClientError, ValueError):
            self.failures += 1

    def _write_entry(
        self, source: str, fetched_at_ms: int, entries: Mapping[int, Pointer], *, check_first: bool
    ) -> None:
        key = index_item_key(index_slot(source))
        name = ENTRY_PREFIX + source
        if check_first:  # no version moved: rewrite only an entry that is missing or differs from the head
            found = self._table.read("get_item", "reading the index", source, Key=key, ConsistentRead=False)
            stored = found.get("Item", {}).get(name)
            if stored is not None and _versions(decode_entry(source, stored["S"]).clubs) == _versions(entries):
                return
        value = string(encode_entry(fetched_at_ms, entries))
        # Refused when a later poll's entry is there already: what readers should see.
        self._table.conditional(
            "update_item",
            "writing the index",
            source,
            lambda old: {**old, **key, name: value},
            Key=key,
            UpdateExpression="SET #e = :e",
            ConditionExpression="attribute_not_exists(#e) OR #e < :e",
            ExpressionAttributeNames={"#e": name},
            ExpressionAttributeValues={":e": value},
        )

    def _write_delta(self, old: Pointer, new: Pointer, snapshot: ClubSnapshot) -> None:
        if old.shard_count != new.shard_count or old.format_version != new.format_version:
            return  # readers cannot apply it shard by shard: they read the new shards
        base = self._techs_of(old)
        if base is None:
            return
        blob = encode_delta(base, snapshot.techs)
        if len(blob) > MAX_PART_BYTES:
            return
        item: dict[str, Any] = {
            **item_key(new.club_id, delta_sk(new.version)),
            "base": string(old.version),
            "d": {"B": blob},
            TTL_ATTRIBUTE: number(new.data_expires_at),
        }
        self._table.write("put_item", "writing a delta", new.club_id, Item=item, ReturnConsumedCapacity="TOTAL")
        self._table.meter.add(write_units(item_size(item)))

    def _techs_of(self, pointer: Pointer) -> Techs | None:
        """The whole base version, read back with GetItem (ingest's role reads items, not queries); None when it is
        gone or too large to be worth it."""
        club = pointer.club_id

        def get(sk: str) -> dict[str, Any] | None:
            key = item_key(club, sk)
            found: dict[str, Any] | None = self._table.read(
                "get_item", "reading a base version", club, Key=key, ConsistentRead=False
            ).get("Item")
            return found

        manifest = get(manifest_sk(pointer.version))
        if manifest is None:
            return None
        parts = [int(n) for n in manifest["parts"]["S"].split(",")]
        if sum(parts) > MAX_DELTA_BASE_PARTS:
            return None
        techs: Techs = {}
        for shard, count in enumerate(parts):
            blobs = [get(part_sk(pointer.version, shard, p)) for p in range(count)]
            if any(b is None for b in blobs):
                return None
            try:
                techs |= decode_shard([bytes(b["d"]["B"]) for b in blobs if b is not None])
            except (zlib.error, UnicodeDecodeError, binascii.Error):
                return None
        return techs


def _versions(clubs: Mapping[int, Pointer]) -> dict[int, str]:
    return {club: pointer.version for club, pointer in clubs.items()}


def delta_key(club_id: int, version: str) -> tuple[str, str]:
    """(pk, sk) of a version's delta, as batch reads index what they found."""
    return club_key(club_id), delta_sk(version)
