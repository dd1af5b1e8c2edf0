"""A club source's status, as `cappi status` and local mode's `/status` page say it: one row per source, answering
"is every club fresh, and if not, why?".

A source's state, most telling first: `disabled` (not polled by design), `never_polled`, `failing` (the last poll
could not fetch the feed), `rejected` (the feed was refused as a whole), `held` (a sudden drop awaits
confirmation), `stale` (what readers see is older than the stage's bound), else `ok`.

Staleness is also said on its own (`stale`), by the definition dispatch counts for the stage's one staleness alarm
(cappi.domain.staleness): an enabled source whose oldest list was last confirmed longer ago than the bound, or that
has none. A failing source is stale once its last good list ages past the bound (`failing, stale` in the table).
Stale sources come first, the most stale first, so the alarm's sources top the table; the others keep registry order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from cappi.domain.heads import Head
from cappi.domain.last_poll import FAILED, HELD, REJECTED, LastPoll
from cappi.domain.registry import ClubRegistry, ClubSource
from cappi.domain.staleness import is_stale, source_age_s

OK, STALE, FAILING, NEVER_POLLED, DISABLED = "ok", "stale", "failing", "never_polled", "disabled"
PROBLEMS = frozenset({STALE, FAILING, REJECTED, HELD, NEVER_POLLED})


class HeadReads(Protocol):
    def head(self, source: str, *, consistent: bool = True) -> Head | None: ...


class PollReads(Protocol):
    def last_poll(self, source: str) -> LastPoll | None: ...


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    enabled: bool
    club_ids: list[int]
    state: str
    last_poll_status: str | None = None
    last_poll_at_ms: int | None = None
    last_poll_duration_s: float | None = None
    last_success_at_ms: int | None = None
    snapshot_age_s: float | None = None  # the oldest list readers see among the source's clubs
    calls: int | None = None
    techs: int | None = None
    rejected_rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    held_clubs: list[int] = field(default_factory=list)
    last_error: str | None = None
    last_http_status: int | None = None  # the club's answer to the last poll, when it answered
    stale: bool = False  # enabled, and its oldest list is older than the bound or missing: what the alarm counts

    @property
    def problem(self) -> bool:
        return self.state in PROBLEMS or self.stale

    @property
    def state_words(self) -> str:
        """The state, with `, stale` when the source is stale for another reason than no polls: `failing, stale`."""
        return f"{self.state}, {STALE}" if self.stale and self.state != STALE else self.state

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def source_status(
    source: ClubSource, heads: HeadReads, polls: PollReads, *, now_ms: int, stale_after_s: float
) -> SourceStatus:
    head = heads.head(source.name)
    poll = polls.last_poll(source.name)
    pointers = [p for c in sorted(source.club_ids) if head and (p := head.clubs.get(c)) is not None]
    age = source_age_s(source, head, now_ms)  # None when a club of the source has no list at all
    error = None
    if poll is not None and poll.error_code:
        error = f"{poll.error_code}: {poll.error}" if poll.error else poll.error_code
    if not source.enabled:
        state = DISABLED
    elif poll is None and not pointers:
        state = NEVER_POLLED
    elif poll is not None and poll.status == FAILED:
        state = FAILING
    elif poll is not None and poll.status == REJECTED:
        state = REJECTED
    elif poll is not None and poll.status == HELD:
        state = HELD
    elif is_stale(age, stale_after_s):
        state = STALE
    else:
        state = OK
    return SourceStatus(
        name=source.name,
        enabled=source.enabled,
        club_ids=sorted(source.club_ids),
        state=state,
        last_poll_status=poll.status if poll else None,
        last_poll_at_ms=poll.fetched_at_ms if poll else None,
        last_poll_duration_s=poll.duration_s if poll else None,
        last_success_at_ms=poll.last_success_ms if poll else None,
        snapshot_age_s=round(age, 1) if age is not None else None,
        calls=sum(p.call_count for p in pointers) if pointers else None,
        techs=sum(p.tech_count for p in pointers) if pointers else None,
        rejected_rows=sum(poll.rejected.values()) if poll else 0,
        rejected=dict(poll.rejected) if poll else {},
        held_clubs=list(poll.held_clubs) if poll else [],
        last_error=error,
        last_http_status=poll.http_status if poll else None,
        stale=source.enabled and is_stale(age, stale_after_s),
    )


def registry_status(
    registry: ClubRegistry, heads: HeadReads, polls: PollReads, *, now_ms: int, stale_after_s: float
) -> list[SourceStatus]:
    """One row per source: the stale ones first, most stale first (no list at all before any age), then the
    others in registry order."""
    rows = [source_status(s, heads, polls, now_ms=now_ms, stale_after_s=stale_after_s) for s in registry.sources]
    return sorted(
        rows,
        key=lambda r: (not r.stale, r.stale and r.snapshot_age_s is not None, -(r.snapshot_age_s or 0) * r.stale),
    )
