"""When a club's new snapshot becomes what readers see (DESIGN.md section 3).

The store provides atomic primitives (write a version, flip the pointer if newer, mark checked, hold); this module
decides which to use. It imports no AWS code: the store is anything with the `SnapshotStore` shape.

- Unchanged content (same hash) writes no snapshot data, only the "checked" time on the pointer.
- The sudden-drop guard holds back a snapshot whose call count falls below 10% of a published snapshot of at least
  100 calls; the next poll that still shows the drop confirms it and is published.
- Versions are written with an expiry `RETENTION_S` ahead, and the current version is renewed whenever less than
  `RENEW_BELOW_S` is left, so a superseded version stays readable for at least 24 hours and the current one does not
  lapse while ingest runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cappi.domain.snapshot import ClubSnapshot

RETENTION_S = 72 * 3600
RENEW_BELOW_S = 36 * 3600  # > 24 h guarantee for superseded versions, with 12 h to spare
DROP_GUARD_MIN_CALLS = 100
DROP_GUARD_RATIO = 0.10


class Outcome(StrEnum):
    PUBLISHED = "published"  # a new version is now current
    UNCHANGED = "unchanged"  # same content as the current version; only the check time moved
    HELD = "held"  # sudden drop: waiting for the next poll to confirm it
    SUPERSEDED = "superseded"  # an overlapping, later poll already published; this one changed nothing


class PointerLike(Protocol):
    version: str
    content_hash: str
    fetched_at_ms: int
    checked_at_ms: int
    call_count: int
    held_fetched_at_ms: int | None
    data_expires_at: int


class SnapshotStore(Protocol):
    def current(self, club_id: int) -> PointerLike | None: ...

    def write_version(
        self, source: str, snapshot: ClubSnapshot, fetched_at_ms: int, expires_at: int
    ) -> tuple[object, int]: ...

    def flip_pointer(self, ref: object, source: str, checked_at_ms: int) -> tuple[bool, int]: ...

    def mark_checked(self, club_id: int, content_hash: str, fetched_at_ms: int) -> tuple[bool, int]: ...

    def hold(self, club_id: int, content_hash: str, call_count: int, fetched_at_ms: int) -> tuple[bool, int]: ...

    def extend_expiry(self, pointer: PointerLike, new_expires_at: int) -> int: ...


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


def publish_club(store: SnapshotStore, source: str, snapshot: ClubSnapshot, fetched_at_ms: int) -> ClubPublishResult:
    """Make `snapshot` (fetched at `fetched_at_ms`) what readers see, if the rules allow it."""
    now_s = fetched_at_ms // 1000
    current = store.current(snapshot.club_id)
    units = 0
    renewed = False

    def result(outcome: Outcome, pointer: PointerLike | None, checked_at_ms: int | None = None) -> ClubPublishResult:
        return ClubPublishResult(
            club_id=snapshot.club_id,
            outcome=outcome,
            content_hash=snapshot.content_hash,
            calls=snapshot.call_count,
            techs=snapshot.tech_count,
            previous_calls=current.call_count if current else None,
            version=pointer.version if pointer else None,
            checked_at_ms=checked_at_ms or (pointer.checked_at_ms if pointer else None),
            write_units=units,
            renewed=renewed,
        )

    if current is not None and current.fetched_at_ms >= fetched_at_ms:
        return result(Outcome.SUPERSEDED, current)

    if current is not None and current.content_hash == snapshot.content_hash:
        checked, units = store.mark_checked(snapshot.club_id, snapshot.content_hash, fetched_at_ms)
        if current.data_expires_at - now_s < RENEW_BELOW_S:
            units += store.extend_expiry(current, now_s + RETENTION_S)
            renewed = True
        if checked:
            return result(Outcome.UNCHANGED, current, fetched_at_ms)
        return result(Outcome.SUPERSEDED, store.current(snapshot.club_id))

    if current is not None and drop_guard_applies(current.call_count, snapshot.call_count):
        confirmed = current.held_fetched_at_ms is not None and current.held_fetched_at_ms < fetched_at_ms
        if not confirmed:
            _held, units = store.hold(snapshot.club_id, snapshot.content_hash, snapshot.call_count, fetched_at_ms)
            if current.data_expires_at - now_s < RENEW_BELOW_S:
                units += store.extend_expiry(current, now_s + RETENTION_S)
                renewed = True
            return result(Outcome.HELD, current)

    ref, units = store.write_version(source, snapshot, fetched_at_ms, now_s + RETENTION_S)
    flipped, flip_units = store.flip_pointer(ref, source, fetched_at_ms)
    units += flip_units
    if flipped:
        return result(Outcome.PUBLISHED, ref, fetched_at_ms)  # type: ignore[arg-type]
    return result(Outcome.SUPERSEDED, store.current(snapshot.club_id))
