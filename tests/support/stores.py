"""Every consumer of one snapshot table, for tests that write it and read it back as the functions do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cappi.adapters.dynamo.as_of import PointInTimeReads
from cappi.adapters.dynamo.poll_log import DynamoPollLog
from cappi.adapters.dynamo.shard_source import DynamoShardSource
from cappi.adapters.dynamo.table import SnapshotTable
from cappi.adapters.dynamo.writer import SnapshotWriter
from support.aws import SNAPSHOT_TABLE


@dataclass(frozen=True)
class Stores:
    table: SnapshotTable  # its `meter` counts every write unit the others spend, its `requests` every request
    writer: SnapshotWriter  # ingest's publishing
    snapshots: DynamoShardSource  # the query's heads and shards
    polls: DynamoPollLog  # each source's last poll
    history: PointInTimeReads  # `cappi calls --at`

    def units(self, action: Callable[[], Any]) -> int:
        """The write units `action` spent."""
        before = self.table.meter.units
        action()
        return self.table.meter.units - before


def stores(client: Any, table_name: str = SNAPSHOT_TABLE, **options: Any) -> Stores:
    """The consumers of `table_name` through `client`; `options` go to SnapshotTable (clock, sleep, attempts)."""
    table = SnapshotTable(client, table_name, **options)
    return Stores(table, SnapshotWriter(table), DynamoShardSource(table), DynamoPollLog(table), PointInTimeReads(table))
