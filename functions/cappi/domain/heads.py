"""What readers see: the data types of a source's head and of the versions it names (DESIGN.md section 3).

A source's head maps each of its club IDs to a `Pointer` (the version readers see, plus the drop guard's pending
poll); a `VersionRef` describes one complete stored version; `OpenCalls` is the answer to one query. Any store
(DynamoDB, or a fake in tests) speaks in these types; the domain decides with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cappi.domain.snapshot import FORMAT_VERSION

if TYPE_CHECKING:  # only ingest reads or writes a head's body record: the query's cold path skips it
    from cappi.domain.body_record import BodyRecord


@dataclass(frozen=True, slots=True)
class Pointer:
    """One club's entry in its source's head: which version readers see. `held_*` is the drop guard's pending poll."""

    club_id: int
    version: str
    content_hash: str
    fetched_at_ms: int
    checked_at_ms: int  # fetch time of the latest successful poll that confirmed this content
    shard_count: int
    call_count: int
    tech_count: int
    source: str
    format_version: int
    data_expires_at: int  # epoch seconds at which this version's items expire
    held_hash: str | None = None
    held_count: int | None = None
    held_fetched_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A complete version of one club's snapshot, as described by its manifest."""

    club_id: int
    version: str
    content_hash: str
    fetched_at_ms: int
    shard_count: int
    parts: tuple[int, ...]  # number of part items of each shard
    call_count: int
    tech_count: int
    expires_at: int  # epoch seconds
    part_bytes: tuple[tuple[int, ...], ...] = ()  # byte length of each part, per shard
    format_version: int = FORMAT_VERSION

    def as_pointer(self, source: str, checked_at_ms: int) -> Pointer:
        """The head entry that makes this version current, confirmed by the poll fetched at `checked_at_ms`."""
        return Pointer(
            club_id=self.club_id,
            version=self.version,
            content_hash=self.content_hash,
            fetched_at_ms=self.fetched_at_ms,
            checked_at_ms=checked_at_ms,
            shard_count=self.shard_count,
            call_count=self.call_count,
            tech_count=self.tech_count,
            source=source,
            format_version=self.format_version,
            data_expires_at=self.expires_at,
        )


@dataclass(frozen=True, slots=True)
class Head:
    """The head item of a source: for each of its club IDs, the version readers see.

    `fetched_at_ms` is the fetch time of the latest poll the head reflects (published, confirmed or held). `body`:
    what that poll's body was, when it published or confirmed every club (`cappi.domain.body_record`); only the
    ingest side reads it.
    """

    source: str
    fetched_at_ms: int
    clubs: Mapping[int, Pointer]
    body: BodyRecord | None = None


@dataclass(frozen=True, slots=True)
class OpenCalls:
    """The answer to one query. `checked_at_ms` is None for point-in-time answers (not recorded per version)."""

    club_id: int
    tech_id: str
    call_ids: tuple[str, ...]
    version: str
    content_hash: str
    fetched_at_ms: int
    checked_at_ms: int | None


def open_calls_from(pointer: Pointer, tech_id: str, techs: Mapping[str, tuple[str, ...]]) -> OpenCalls:
    """Assemble an answer from a pointer and the decoded shard that holds `tech_id`."""
    return OpenCalls(
        club_id=pointer.club_id,
        tech_id=tech_id,
        call_ids=techs.get(tech_id, ()),
        version=pointer.version,
        content_hash=pointer.content_hash,
        fetched_at_ms=pointer.fetched_at_ms,
        checked_at_ms=pointer.checked_at_ms,
    )
