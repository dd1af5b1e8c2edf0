"""`cappi status`: one row per club source, answering "is every club fresh, and if not, why?".

A source's state, most telling first: `disabled` (not polled by design), `never_polled`, `failing` (the last poll
could not fetch the feed), `rejected` (the feed was refused as a whole), `held` (a sudden drop awaits
confirmation), `stale` (what readers see is older than the stage's bound), else `ok`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from cappi.domain.heads import Head
from cappi.domain.last_poll import FAILED, HELD, REJECTED, LastPoll
from cappi.domain.registry import ClubRegistry, ClubSource

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

    @property
    def problem(self) -> bool:
        return self.state in PROBLEMS

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def source_status(
    source: ClubSource, heads: HeadReads, polls: PollReads, *, now_ms: int, stale_after_s: float
) -> SourceStatus:
    head = heads.head(source.name)
    poll = polls.last_poll(source.name)
    pointers = [p for c in sorted(source.club_ids) if head and (p := head.clubs.get(c)) is not None]
    age = max((now_ms - p.checked_at_ms) / 1000 for p in pointers) if pointers else None
    if pointers and len(pointers) < len(source.club_ids):
        age = None  # a club of the source has no list at all: as stale as can be
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
    elif age is None or age > stale_after_s:
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
    )


def registry_status(
    registry: ClubRegistry, heads: HeadReads, polls: PollReads, *, now_ms: int, stale_after_s: float
) -> list[SourceStatus]:
    return [source_status(s, heads, polls, now_ms=now_ms, stale_after_s=stale_after_s) for s in registry.sources]
