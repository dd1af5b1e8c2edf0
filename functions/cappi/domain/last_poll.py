"""Each source's last poll, as ops and clubs need it: what happened, why, and when it last went well.

Kept as one small record per source next to the snapshots, written with every poll (failed, rejected, held or
successful), so "is every club fresh, and if not, why?" needs no log search. Readers of the API never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cappi.domain.row_example import EXAMPLES_PER_REASON, RowExample

if TYPE_CHECKING:  # the query Lambda imports this module through the store: keep the ingest rules out of it
    from cappi.domain.poll import PollResult
    from cappi.domain.publish import WriteMeter

MAX_ERROR_CHARS = 300

OK, FAILED, REJECTED, HELD = "ok", "failed", "rejected", "held"


@dataclass(frozen=True, slots=True)
class LastPoll:
    source: str
    status: str  # ok, failed (feed unavailable), rejected (feed unusable) or held (a sudden drop awaits confirmation)
    fetched_at_ms: int  # when the poll asked the club
    duration_s: float  # fetch, parse and publish
    error_code: str | None = None
    error: str | None = None  # as the club client wrote it: secrets already redacted
    http_status: int | None = None
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, tuple[RowExample, ...]] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    held_clubs: tuple[int, ...] = ()
    last_success_ms: int | None = None  # the latest poll that ended ok or held (kept across failures by the store)

    @property
    def succeeded(self) -> bool:
        return self.status in (OK, HELD)


def last_poll_of(result: PollResult) -> LastPoll:
    """The record of one poll, with a few examples per rejection reason and the error cut to a readable length."""
    from cappi.domain.publish import Outcome

    held = tuple(c.club_id for c in result.clubs if c.outcome is Outcome.HELD)
    status = HELD if result.ok and held else result.status
    error = (
        result.error
        if result.error is None or len(result.error) <= MAX_ERROR_CHARS
        else (result.error[: MAX_ERROR_CHARS - 3] + "...")
    )
    return LastPoll(
        source=result.source,
        status=status,
        fetched_at_ms=result.fetched_at_ms,
        duration_s=round(result.fetch_seconds + result.parse_seconds + result.publish_seconds, 3),
        error_code=result.error_code,
        error=error,
        http_status=result.http_status,
        rows=result.rows,
        accepted=result.accepted,
        rejected=dict(result.rejected),
        examples={r: tuple(e[:EXAMPLES_PER_REASON]) for r, e in result.examples.items()},
        warnings=dict(result.warnings),
        held_clubs=held,
        last_success_ms=result.fetched_at_ms if status in (OK, HELD) else None,
    )


class PollLog(Protocol):
    @property
    def meter(self) -> WriteMeter:
        """What the log has spent on writes so far (read before and after `record_poll` to price it)."""
        ...

    def record_poll(self, poll: LastPoll) -> None:
        """Keep `poll` as its source's last poll unless a later-sent one is kept already."""
        ...

    def last_poll(self, source: str) -> LastPoll | None: ...
