"""Each source's last poll, kept in the snapshot table beside its head (`cappi.domain.last_poll.PollLog`).

Ingest records every poll; `cappi status` and the query (to say when a club with no list yet is worth asking
again) read it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cappi.adapters.dynamo.codec import last_poll_from_item, number, poll_values
from cappi.adapters.dynamo.schema import POLL_SK, source_item_key
from cappi.adapters.dynamo.table import SnapshotTable, WriteMeter

if TYPE_CHECKING:  # queries read a last poll only while a club has no list: keep the module out of their cold start
    from cappi.domain.last_poll import LastPoll


class DynamoPollLog:
    """One item per source (`POLL`), written under a condition so that the poll sent last is the one kept."""

    def __init__(self, table: SnapshotTable) -> None:
        self._table = table

    @property
    def meter(self) -> WriteMeter:
        return self._table.meter

    @property
    def requests(self) -> int:
        return self._table.requests

    def record_poll(self, poll: LastPoll) -> None:
        """Keep `poll` as its source's last poll, unless one sent later is kept already.

        One UpdateItem of an item that stays under 1 KB (`poll_values` drops examples to fit), so one write unit.
        `last_success` is set only by a poll that succeeded, so a failure keeps the time of the last good one.
        """
        self._table.conditional_update(
            "recording the poll",
            poll.source,
            source_item_key(poll.source, POLL_SK),
            set_values=poll_values(poll),
            condition="attribute_not_exists(#pk) OR #fetched_at <= :t",
            condition_values={":t": number(poll.fetched_at_ms)},
        )

    def last_poll(self, source: str) -> LastPoll | None:
        """The source's last recorded poll (a consistent read), or None when it was never polled."""
        poll: LastPoll | None = self._table.source_item(
            source, POLL_SK, "last poll", last_poll_from_item, consistent=True
        )
        return poll
