"""The readers' side of the snapshot table: heads by source and decoded shards by version, alone or in batches.

What the query function reads (its role may read, never write): a lone head (consistent by default), many heads in
one BatchGetItem, the readers' index (every source's current versions, one BatchGetItem), one shard with a Query of
its parts, many shards or deltas in BatchGetItems. Which source serves a club is
the club-keyed readers' business (`cappi.adapters.snapshot_reader`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from cappi.adapters.dynamo.codec import head_from_item, placeholders, ref_from_manifest, string
from cappi.adapters.dynamo.reader_index import Delta, delta_from_item, delta_key, heads_from_index_items
from cappi.adapters.dynamo.schema import (
    HEAD_SK,
    INDEX_SLOTS,
    PK,
    SK,
    club_key,
    delta_sk,
    index_item_key,
    item_key,
    manifest_sk,
    part_sk,
    shard_prefix,
    source_item_key,
    source_key,
)
from cappi.adapters.dynamo.shards import ShardKey, Techs, decode_shard, shard_of
from cappi.adapters.dynamo.table import NETWORK_ERRORS, SnapshotReadError, SnapshotTable, read_reason
from cappi.domain.heads import Head, Pointer
from cappi.domain.snapshot import FORMAT_VERSION

BATCH_GET_SIZE = 100  # BatchGetItem's limit on keys per request
# A query waits on batch reads: at most this many requests in a row that return nothing and leave keys
# unprocessed (throttling), with the table's backoff between them (50, 100, 200 ms by default); a resend after
# partial progress (the 16 MB response cap) goes out at once.
READ_BATCH_ATTEMPTS = 4


class DynamoShardSource:
    """Heads and shards for the query (`cappi.adapters.snapshot_reader.BatchShardSource`); never writes."""

    def __init__(self, table: SnapshotTable) -> None:
        self._table = table
        self.table_name = table.table_name

    @property
    def requests(self) -> int:
        return self._table.requests

    def head(self, source: str, *, consistent: bool = True) -> Head | None:
        """The source's head, or None when nothing was ever published for it."""
        return self._table.source_item(source, HEAD_SK, "head", head_from_item, consistent=consistent)

    def read_shard(self, club_id: int, version: str, shard: int, *, expected_parts: int | None = None) -> Techs:
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
            response = self._table.read("query", what, club_id, **kwargs)
            yield from response.get("Items", [])
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return

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
            heads[source] = self._table.decode(f"head of source {source!r}", head_from_item, item) if item else None
        return heads

    def index(self) -> dict[str, Head]:
        """Every indexed source's current pointers (`cappi.adapters.dynamo.reader_index`) in one BatchGetItem of the
        index's fixed number of items, eventually consistent; a source missing from it is not in the result.
        Raises SnapshotReadError when DynamoDB keeps refusing or an entry is malformed."""
        found = self._batch_get([index_item_key(slot) for slot in range(INDEX_SLOTS)], "reading the index")
        try:
            return heads_from_index_items(found)
        except (KeyError, ValueError, TypeError) as exc:
            raise SnapshotReadError(f"the readers' index in table {self.table_name} is malformed") from exc

    def read_deltas(self, versions: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Delta]:
        """The deltas written beside several (club, version) in BatchGetItems; a version without one (never written,
        or not visible yet) is left out. Raises SnapshotReadError when DynamoDB keeps refusing or one is corrupt."""
        wanted = list(dict.fromkeys(versions))
        found = self._batch_get([item_key(c, delta_sk(v)) for c, v in wanted], "reading deltas")
        deltas: dict[tuple[int, str], Delta] = {}
        for club, version in wanted:
            item = found.get(delta_key(club, version))
            if item is not None:
                try:
                    deltas[(club, version)] = delta_from_item(item)
                except (zlib.error, UnicodeDecodeError, KeyError, ValueError) as exc:
                    raise SnapshotReadError(
                        f"the delta of version {version} of club {club} in table {self.table_name} is corrupt"
                    ) from exc
        return deltas

    def read_shards(self, shards: Iterable[ShardKey]) -> dict[ShardKey, Techs]:
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
            ref = (
                self._table.decode(f"a manifest of club {club}", partial(ref_from_manifest, club), item)
                if item
                else None
            )
            if ref is not None and ref.format_version == FORMAT_VERSION and 0 <= shard < ref.shard_count:
                parts_of[(club, version, shard)] = ref.parts[shard]
        rest = [item_key(c, part_sk(v, s, p)) for (c, v, s), n in parts_of.items() for p in range(1, n)]
        if rest:
            found |= self._batch_get(rest, "reading shards")
        decoded: dict[ShardKey, Techs] = {}
        for (club, version, shard), count in parts_of.items():
            items = [found.get((club_key(club), part_sk(version, shard, p))) for p in range(count)]
            parts = [bytes(item["d"]["B"]) for item in items if item is not None]
            if len(parts) == count:
                decoded[(club, version, shard)] = self._decode_parts(club, version, parts)
        return decoded

    def _decode_parts(self, club_id: int, version: str, parts: list[bytes]) -> Techs:
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
                    response = self._table.call("batch_get_item", RequestItems=request)
                except (ClientError, *NETWORK_ERRORS) as exc:
                    raise SnapshotReadError(f"{what} in table {self.table_name} failed: {read_reason(exc)}") from exc
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
                    self._table.backoff(stalls - 1)
        return found


def require_known_format(format_version: int, club_id: int, table_name: str) -> None:
    if format_version != FORMAT_VERSION:
        raise SnapshotReadError(
            f"club {club_id} in table {table_name} uses snapshot format {format_version},"
            f" this code reads {FORMAT_VERSION}"
        )


def shard_address(pointer: Pointer, tech_id: str, table_name: str) -> ShardKey:
    """(club, version, shard) holding `tech_id` under `pointer`; refuses formats this code cannot read."""
    require_known_format(pointer.format_version, pointer.club_id, table_name)
    return pointer.club_id, pointer.version, shard_of(tech_id, pointer.shard_count)
