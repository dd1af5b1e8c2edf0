"""Point-in-time reads: what was open for a technician at a past moment still kept (`cappi calls --at`).

Support's "what was open for tech X at 10:20?": the newest complete, unexpired version fetched at or before that
moment, found through the manifests (a version without one is incomplete and never trusted), then one shard of it.
Versions stay readable for at least 24 hours after they are superseded (`cappi.domain.publish`), then expire by TTL.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from cappi.adapters.dynamo.codec import MANIFEST_FIELDS, placeholders, ref_from_manifest, string
from cappi.adapters.dynamo.schema import MAX_FETCHED_AT_MS, SK, club_key, is_manifest_sk, manifest_sk
from cappi.adapters.dynamo.shard_source import DynamoShardSource, require_known_format
from cappi.adapters.dynamo.shards import shard_of
from cappi.adapters.dynamo.table import SnapshotTable
from cappi.domain.heads import OpenCalls, VersionRef

_AS_OF_PAGE = 4  # a typical version is one part + its manifest; small pages avoid reading parts we skip


class PointInTimeReads:
    """Versions and answers as of a moment, by club; the table's `clock` says which versions have expired."""

    def __init__(self, table: SnapshotTable) -> None:
        self._table = table
        self._shards = DynamoShardSource(table)
        self.table_name = table.table_name

    def version_as_of(self, club_id: int, at_ms: int) -> VersionRef | None:
        """The newest complete, unexpired version fetched at or before `at_ms`, or None."""
        if not 0 <= at_ms <= MAX_FETCHED_AT_MS:
            raise ValueError(f"time out of range: {at_ms}")
        now = self._table.clock()
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
            response = self._table.read("query", "reading versions", club_id, **kwargs)
            items = response.get("Items", [])
            for item in items:
                if is_manifest_sk(item[SK]["S"]):
                    ref = self._table.decode(f"a manifest of club {club_id}", partial(ref_from_manifest, club_id), item)
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
        require_known_format(ref.format_version, club_id, self.table_name)
        shard = shard_of(tech_id, ref.shard_count)
        techs = self._shards.read_shard(club_id, ref.version, shard, expected_parts=ref.parts[shard])
        return OpenCalls(
            club_id=club_id,
            tech_id=tech_id,
            call_ids=techs.get(tech_id, ()),
            version=ref.version,
            content_hash=ref.content_hash,
            fetched_at_ms=ref.fetched_at_ms,
            checked_at_ms=None,
        )
