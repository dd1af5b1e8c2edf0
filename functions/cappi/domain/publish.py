"""When a club's new snapshot becomes what readers see (DESIGN.md section 3).

The store provides atomic primitives (write a complete version; move a source's head if this poll is newer); this
module decides what each club's entry in the head becomes. It imports no AWS code: the store is anything with the
`SnapshotStore` shape, speaking the types of `cappi.domain.heads`.

- Unchanged content (same hash) writes no snapshot data, only the head with its new check time. (An unchanged feed
  body is not even parsed: `cappi.domain.poll` hands over the head's own content, with the body record to keep.)
- The sudden-drop guard holds back a snapshot whose call count falls below 10% of a published snapshot of at least
  100 calls; the next poll that still shows the drop confirms it and is published.
- Versions are written with an expiry `RETENTION_S` ahead, and the current version is renewed whenever less than
  `RENEW_BELOW_S` is left, so a superseded version stays readable for at least 24 hours and the current one does not
  lapse while ingest runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol, runtime_checkable

from cappi.domain.body_record import BodyRecord
from cappi.domain.heads import Head, Pointer, VersionRef
from cappi.domain.snapshot import ClubSnapshot

RETENTION_S = 72 * 3600
RENEW_BELOW_S = 36 * 3600  # > 24 h guarantee for superseded versions, with 12 h to spare
DROP_GUARD_MIN_CALLS = 100
DROP_GUARD_RATIO = 0.10


class Outcome(StrEnum):
    PUBLISHED = "published"  # a new version is now current
    UNCHANGED = "unchanged"  # same content as the current version; only the check time moved
    HELD = "held"  # sudden drop: waiting for the next poll to confirm it
    SUPERSEDED = "superseded"  # a later poll of the source already moved the head; this one changed nothing


class WriteMeter(Protocol):
    """What a store has spent on writes so far; read before and after some writes, it prices them."""

    @property
    def units(self) -> int: ...


class SnapshotStore(Protocol):
    """What publishing needs of storage: atomic primitives whose conditions keep the guarantees under overlap,
    and the meter that counts their write units (a refused or failed write still costs what it spent)."""

    @property
    def meter(self) -> WriteMeter: ...

    def head(self, source: str) -> Head | None:
        """The source's head (consistent read), or None when nothing was ever published for it."""
        ...

    def write_version(self, source: str, snapshot: ClubSnapshot, fetched_at_ms: int, expires_at: int) -> VersionRef:
        """Store a complete version without changing what readers see."""
        ...

    def commit_head(
        self, source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer], *, body: BodyRecord | None = None
    ) -> bool:
        """Move the head unless it already reflects a fetch at or after `fetched_at_ms`; whether it moved. `body` is
        kept with it (`cappi.domain.body_record`)."""
        ...

    def extend_expiry(self, pointer: Pointer, new_expires_at: int) -> None:
        """Move the expiry of every item of the pointer's version."""
        ...


@runtime_checkable
class ReadersIndex(Protocol):
    """A store that also keeps what readers read instead of heads (an index of current versions, deltas between
    versions): told after every head commit that moved; its failures are its own (readers fall back to heads)."""

    def record_for_readers(
        self,
        source: str,
        fetched_at_ms: int,
        previous: Head | None,
        entries: Mapping[int, Pointer],
        published: Mapping[int, ClubSnapshot],
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ClubPublishResult:
    club_id: int
    outcome: Outcome
    content_hash: str
    calls: int
    techs: int
    previous_calls: int | None
    version: str | None  # the version readers see after this poll (None: the club has none yet)
    checked_at_ms: int | None  # when readers' version was last confirmed by a successful poll
    write_units: int
    renewed: bool = False


def drop_guard_applies(published_calls: int, new_calls: int) -> bool:
    return published_calls >= DROP_GUARD_MIN_CALLS and new_calls < published_calls * DROP_GUARD_RATIO


def club_outcome(current: Pointer | None, snapshot: ClubSnapshot) -> Outcome:
    """What a poll's `snapshot` does to a club whose readers see `current` (None: nothing yet), unless a later poll
    got there first: UNCHANGED (same content), HELD (a sudden drop, the drop guard's first sight of it) or PUBLISHED
    (new content; a drop already held once is confirmed). `cappi check-feed --plan` asks it too."""
    if current is not None and current.content_hash == snapshot.content_hash:
        return Outcome.UNCHANGED
    if (
        current is not None
        and drop_guard_applies(current.call_count, snapshot.call_count)
        and current.held_fetched_at_ms is None  # a held poll before this one would confirm the drop
    ):
        return Outcome.HELD
    return Outcome.PUBLISHED


_UNREAD = Head(source="", fetched_at_ms=-1, clubs={})  # publish_source reads the head itself


def publish_source(
    store: SnapshotStore,
    source: str,
    snapshots: Iterable[ClubSnapshot],
    fetched_at_ms: int,
    *,
    head: Head | None = _UNREAD,
    body: BodyRecord | None = None,
) -> list[ClubPublishResult]:
    """Make a source's new snapshots (fetched at `fetched_at_ms`) what readers see, as far as the rules allow.

    New versions are written first, then one conditional write of the source's head moves every club at once.
    If a later poll got there first, nothing readers see changes and every club reports SUPERSEDED (versions
    written meanwhile are never named by a head and expire through TTL). Each club's `write_units` is what its
    version and renewal cost on the store's meter; the head's write, shared, is counted on the first club, with what
    a store that keeps an index for readers (`ReadersIndex`) spent after it.

    `head`: the source's head as the caller just read it (else it is read here). `body`: what the head keeps of the
    feed body the snapshots came from; kept only when no club is held back, so that a poll after a held drop parses.
    """
    now_s = fetched_at_ms // 1000
    meter = store.meter
    if head is _UNREAD:
        head = store.head(source)
    snapshots = list(snapshots)
    if head is not None and head.fetched_at_ms >= fetched_at_ms:
        return [_superseded(s, head.clubs.get(s.club_id), 0) for s in snapshots]

    entries: dict[int, Pointer] = {}
    decided: list[tuple[ClubSnapshot, Outcome, int, bool]] = []
    for snapshot in snapshots:
        current = head.clubs.get(snapshot.club_id) if head else None
        spent_before, renewed = meter.units, False
        outcome = club_outcome(current, snapshot)
        if current is not None and outcome is Outcome.UNCHANGED:
            entry = replace(
                current, checked_at_ms=fetched_at_ms, held_hash=None, held_count=None, held_fetched_at_ms=None
            )
        elif current is not None and outcome is Outcome.HELD:
            entry = replace(
                current,
                held_hash=snapshot.content_hash,
                held_count=snapshot.call_count,
                held_fetched_at_ms=fetched_at_ms,
            )
        else:
            ref = store.write_version(source, snapshot, fetched_at_ms, now_s + RETENTION_S)
            entry = ref.as_pointer(source, fetched_at_ms)
        if outcome is not Outcome.PUBLISHED and entry.data_expires_at - now_s < RENEW_BELOW_S:
            store.extend_expiry(entry, now_s + RETENTION_S)
            entry = replace(entry, data_expires_at=now_s + RETENTION_S)
            renewed = True
        entries[snapshot.club_id] = entry
        decided.append((snapshot, outcome, meter.units - spent_before, renewed))

    spent_before = meter.units
    if any(outcome is Outcome.HELD for _, outcome, _, _ in decided):
        body = None
    committed = store.commit_head(source, fetched_at_ms, entries, body=body)
    if committed and isinstance(store, ReadersIndex):
        published = {s.club_id: s for s, outcome, _, _ in decided if outcome is Outcome.PUBLISHED}
        store.record_for_readers(source, fetched_at_ms, head, entries, published)
    head_units = meter.units - spent_before
    results = []
    for index, (snapshot, outcome, club_units, renewed) in enumerate(decided):
        units = club_units + (head_units if index == 0 else 0)  # the head write is shared; count it once
        if not committed:
            results.append(_superseded(snapshot, None, units))
            continue
        entry = entries[snapshot.club_id]
        previous = head.clubs.get(snapshot.club_id) if head else None
        results.append(
            ClubPublishResult(
                club_id=snapshot.club_id,
                outcome=outcome,
                content_hash=snapshot.content_hash,
                calls=snapshot.call_count,
                techs=snapshot.tech_count,
                previous_calls=previous.call_count if previous else None,
                version=entry.version,
                checked_at_ms=entry.checked_at_ms,
                write_units=units,
                renewed=renewed,
            )
        )
    return results


def _superseded(snapshot: ClubSnapshot, current: Pointer | None, units: int) -> ClubPublishResult:
    return ClubPublishResult(
        club_id=snapshot.club_id,
        outcome=Outcome.SUPERSEDED,
        content_hash=snapshot.content_hash,
        calls=snapshot.call_count,
        techs=snapshot.tech_count,
        previous_calls=current.call_count if current else None,
        version=current.version if current else None,
        checked_at_ms=current.checked_at_ms if current else None,
        write_units=units,
    )
