"""Reads for the query side: which source serves a club (the registry's map), and that club's current answer.

The store reads by source (heads) and by version (shards); readers ask by club. `SnapshotReader` reads through
on every call (tests, tools); `CachedSnapshotReader` is what a warm query Lambda uses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cappi.adapters.dynamo.store import shard_address
from cappi.domain.heads import Head, OpenCalls, Pointer, open_calls_from
from cappi.domain.last_poll import LastPoll


class ShardSource(Protocol):
    """What readers need of a store: heads by source, decoded shards by version, and a request counter."""

    table_name: str
    requests: int

    def head(self, source: str, *, consistent: bool = True) -> Head | None: ...

    def read_shard(
        self, club_id: int, version: str, shard: int, *, expected_parts: int | None = None
    ) -> dict[str, tuple[str, ...]]: ...

    def last_poll(self, source: str) -> LastPoll | None: ...


class SnapshotReader:
    """Club-keyed reads straight from the store (consistent by default)."""

    def __init__(self, store: ShardSource, sources_by_club: Mapping[int, str]) -> None:
        self._store = store
        self.sources_by_club: dict[int, str] = dict(sources_by_club)

    def current(self, club_id: int, *, consistent: bool = True) -> Pointer | None:
        """The club's pointer, or None when no known source serves it or nothing was published for it yet."""
        source = self.sources_by_club.get(club_id)
        head = self._store.head(source, consistent=consistent) if source else None
        return head.clubs.get(club_id) if head else None

    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None:
        """Calls open for a (canonical) TechId in the club's current version; None when nothing was published."""
        pointer = self.current(club_id)
        if pointer is None:
            return None
        techs = self._store.read_shard(*shard_address(pointer, tech_id, self._store.table_name))
        return open_calls_from(pointer, tech_id, techs)

    def last_poll(self, club_id: int) -> LastPoll | None:
        """The last poll of the source serving the club (when the next list is due), or None."""
        source = self.sources_by_club.get(club_id)
        return self._store.last_poll(source) if source else None


@dataclass(slots=True)
class ReaderStats:
    """What a CachedSnapshotReader did; `dynamodb_requests / queries` is the figure benchmarks report."""

    queries: int = 0
    pointer_reads: int = 0
    shard_reads: int = 0
    shard_hits: int = 0
    dynamodb_requests: int = 0


@dataclass(slots=True)
class _CachedHead:
    head: Head | None
    loaded_at: float


@dataclass(slots=True)
class _CachedPoll:
    poll: LastPoll | None
    loaded_at: float


class CachedSnapshotReader:
    """`open_calls` for a warm Lambda: pointers cached briefly, decoded shards kept in an LRU.

    Head reads are eventually consistent and cached per source for `pointer_max_age` seconds, so a new version
    becomes visible within that age plus DynamoDB's replication lag (normally well under a second), inside the 30
    seconds DESIGN.md allows. A head read that comes back older than the cached one (a lagging replica) is ignored,
    so one reader never goes backwards. Shards are keyed by (club, version, shard); versions are immutable, so a
    cached shard is never stale, only unused once the pointer moves on (then it is dropped).

    Absence is not cached like presence: a head that does not name the club (nothing published for it yet) is
    read again after `absent_max_age` seconds, so the first list a club publishes is served within about a second
    of its poll, while a flood of queries for a club still pending costs at most one read a second per source.
    Not thread-safe: one Lambda execution environment serves one request at a time.
    """

    def __init__(
        self,
        store: ShardSource,
        sources_by_club: Mapping[int, str],
        *,
        pointer_max_age: float = 10.0,
        absent_max_age: float = 1.0,
        max_shards: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")
        self._store = store
        self.sources_by_club: dict[int, str] = dict(sources_by_club)
        self._pointer_max_age = pointer_max_age
        self._absent_max_age = min(absent_max_age, pointer_max_age)
        self._max_shards = max_shards
        self._clock = clock
        self._heads: dict[str, _CachedHead] = {}
        self._polls: dict[str, _CachedPoll] = {}
        self._shards: OrderedDict[tuple[int, str, int], dict[str, tuple[str, ...]]] = OrderedDict()
        self.stats = ReaderStats()

    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None:
        """Same contract as SnapshotReader.open_calls, served from cache when possible."""
        self.stats.queries += 1
        pointer = self._pointer(club_id)
        if pointer is None:
            return None
        key = shard_address(pointer, tech_id, self._store.table_name)
        techs = self._shards.get(key)
        if techs is None:
            before = self._store.requests
            techs = self._store.read_shard(*key)
            self.stats.dynamodb_requests += self._store.requests - before
            self.stats.shard_reads += 1
            self._shards[key] = techs
            if len(self._shards) > self._max_shards:
                self._shards.popitem(last=False)
        else:
            self.stats.shard_hits += 1
            self._shards.move_to_end(key)
        return open_calls_from(pointer, tech_id, techs)

    def last_poll(self, club_id: int) -> LastPoll | None:
        """The serving source's last poll, read at most once per `absent_max_age` (asked only while a club has
        no snapshot, to say when to retry)."""
        source = self.sources_by_club.get(club_id)
        if source is None:
            return None
        now = self._clock()
        cached = self._polls.get(source)
        if cached is None or now - cached.loaded_at >= self._absent_max_age:
            before = self._store.requests
            cached = self._polls[source] = _CachedPoll(self._store.last_poll(source), now)
            self.stats.dynamodb_requests += self._store.requests - before
        return cached.poll

    @property
    def cached_shards(self) -> int:
        return len(self._shards)

    def _pointer(self, club_id: int) -> Pointer | None:
        source = self.sources_by_club.get(club_id)
        if source is None:
            return None
        now = self._clock()
        cached = self._heads.get(source)
        if cached is not None:
            pointer = cached.head.clubs.get(club_id) if cached.head else None
            max_age = self._pointer_max_age if pointer is not None else self._absent_max_age
            if now - cached.loaded_at < max_age:
                return pointer
        before = self._store.requests
        fresh = self._store.head(source, consistent=False)
        self.stats.dynamodb_requests += self._store.requests - before
        self.stats.pointer_reads += 1
        old = cached.head if cached else None
        if fresh is not None and old is not None and fresh.fetched_at_ms < old.fetched_at_ms:
            fresh = old
        if old is not None:
            for old_club, old_pointer in old.clubs.items():
                new_pointer = fresh.clubs.get(old_club) if fresh else None
                if new_pointer is None or new_pointer.version != old_pointer.version:
                    self._forget_versions_except(old_club, new_pointer.version if new_pointer else None)
        self._heads[source] = _CachedHead(fresh, now)
        return fresh.clubs.get(club_id) if fresh else None

    def _forget_versions_except(self, club_id: int, version: str | None) -> None:
        for key in [k for k in self._shards if k[0] == club_id and k[1] != version]:
            del self._shards[key]
