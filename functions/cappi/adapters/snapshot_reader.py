"""Reads for the query side: which source serves a club (the registry's map), and that club's current answer.

The table is read by source (heads, last polls) and by version (shards); readers ask by club. `SnapshotReader` reads
through on every call (tests, tools); `CachedSnapshotReader` caches heads and shards for a warm Lambda, and
`cappi.adapters.indexed_reader.IndexedSnapshotReader`, what the query Lambda uses, builds on it with the readers'
index and deltas so that its costs do not grow with the number of clubs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cappi.adapters.dynamo.shard_source import shard_address
from cappi.adapters.dynamo.shards import ShardKey, Techs
from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.domain.heads import Head, OpenCalls, Pointer, open_calls_from

if TYPE_CHECKING:  # read only while a club has no snapshot (the poll log loads it then)
    from cappi.domain.last_poll import LastPoll


class ShardSource(Protocol):
    """What readers need of a store: heads by source, decoded shards by version, and a request counter."""

    @property
    def table_name(self) -> str: ...

    @property
    def requests(self) -> int: ...

    def head(self, source: str, *, consistent: bool = True) -> Head | None: ...

    def read_shard(self, club_id: int, version: str, shard: int, *, expected_parts: int | None = None) -> Techs: ...


class LastPolls(Protocol):
    """Where the readers learn when a club with no list yet is worth asking again: its source's last poll."""

    @property
    def requests(self) -> int: ...

    def last_poll(self, source: str) -> LastPoll | None: ...


class BatchShardSource(ShardSource, Protocol):
    """What the warm cache needs besides: many heads in one request, and many shards in few."""

    def heads(self, sources: Iterable[str]) -> Mapping[str, Head | None]: ...

    def read_shards(self, shards: Iterable[ShardKey]) -> Mapping[ShardKey, Techs]: ...


class SnapshotReader:
    """Club-keyed reads straight from the store (consistent by default). Without `polls`, no last poll is known."""

    def __init__(
        self, store: ShardSource, sources_by_club: Mapping[int, str], *, polls: LastPolls | None = None
    ) -> None:
        self._store = store
        self._poll_log = polls
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
        return self._poll_log.last_poll(source) if source and self._poll_log is not None else None


def clubs_moved(old: Head | None, new: Head | None) -> dict[int, tuple[Pointer, Pointer | None]]:
    """The clubs of `old` whose version `new` no longer names: (old pointer, new pointer or None) by club."""
    moved: dict[int, tuple[Pointer, Pointer | None]] = {}
    for club, old_pointer in old.clubs.items() if old else ():
        new_pointer = new.clubs.get(club) if new else None
        if new_pointer is None or new_pointer.version != old_pointer.version:
            moved[club] = (old_pointer, new_pointer)
    return moved


def successor_keys(
    held: Iterable[ShardKey], moved: Mapping[int, tuple[Pointer, Pointer | None]]
) -> dict[ShardKey, ShardKey]:
    """For each held shard of a moved club's old version, the same shard of its new version (when the club still has
    one, cut into as many shards)."""
    successors: dict[ShardKey, ShardKey] = {}
    for club, version, shard in held:
        if club in moved:
            old, new = moved[club]
            if new is not None and version == old.version and new.shard_count == old.shard_count:
                successors[(club, version, shard)] = (club, new.version, shard)
    return successors


@dataclass(slots=True)
class ReaderStats:
    """What a CachedSnapshotReader did; `dynamodb_requests / queries` is the figure benchmarks report."""

    queries: int = 0
    pointer_reads: int = 0  # head reads: one round of BatchGetItem each, however many heads it carries
    heads_read: int = 0  # heads those rounds carried
    shard_reads: int = 0  # shards a query had to read itself (one Query each)
    shard_hits: int = 0
    shards_prefetched: int = 0  # shards of new versions read in batches when heads moved
    prefetch_failures: int = 0  # batches that failed (their shards are then read by the queries that need them)
    index_reads: int = 0  # rounds that read the readers' index (IndexedSnapshotReader)
    deltas_applied: int = 0  # cached shards moved to a new version by a delta instead of a read
    dynamodb_requests: int = 0


@dataclass(slots=True)
class _CachedPoll:
    poll: LastPoll | None
    loaded_at: float


class CachedSnapshotReader:
    """`open_calls` for a warm Lambda: heads cached briefly and refreshed together, decoded shards kept in an LRU.

    Heads are read eventually consistent, and every head the reader holds is read again in one BatchGetItem
    as soon as `pointer_max_age` seconds have passed since they were last read together: they age in lockstep, so
    a container costs one head request per `pointer_max_age` whatever the number of sources it serves (one per 100
    sources). A new version becomes visible within that age plus DynamoDB's replication lag (normally well under a
    second), inside the 30 seconds DESIGN.md allows. A head read that comes back older than the cached one, or
    missing (a replica that has not seen it yet: heads are never deleted), is ignored, so one reader never goes
    backwards.

    Shards are keyed by (club, version, shard); versions are immutable, so a cached shard is never stale, only
    unused once the pointer moves on. When a refresh shows clubs on new versions, the shards cached for their old
    versions are swapped for the same shards of the new ones, read in one batch (`read_shards`), so the queries
    after a flip stay warm instead of costing a request per club; a shard without a counterpart (the shard count
    changed) is dropped.

    Absence is not cached like presence: a head that does not name the club (nothing published for it yet) is
    read again, alone, after `absent_max_age` seconds, so the first list a club publishes is served within about a
    second of its poll, while a flood of queries for a club still pending costs at most one read a second per
    source. A source asked for the first time is read alone and joins the others at their next refresh. While a
    club has no list, its source's last poll (from `polls`; none known without it) is read at most once per
    `absent_max_age`, to say when to ask again.
    Not thread-safe: one Lambda execution environment serves one request at a time.
    """

    def __init__(
        self,
        store: BatchShardSource,
        sources_by_club: Mapping[int, str],
        *,
        polls: LastPolls | None = None,
        pointer_max_age: float = 10.0,
        absent_max_age: float = 1.0,
        max_shards: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")
        self._store = store
        self._poll_log = polls
        self.sources_by_club: dict[int, str] = dict(sources_by_club)
        self._pointer_max_age = pointer_max_age
        self._absent_max_age = min(absent_max_age, pointer_max_age)
        self._max_shards = max_shards
        self._clock = clock
        self._heads: dict[str, Head | None] = {}  # every source asked for so far: the heads it holds
        self._read_at: dict[str, float] = {}  # when each held head was last read
        self._refreshed_at: float | None = None  # when all held heads were last read together
        self._polls: dict[str, _CachedPoll] = {}  # last polls read, by source
        self._shards: OrderedDict[ShardKey, Mapping[str, tuple[str, ...]]] = OrderedDict()
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
            techs = self._keep(self._store.read_shard(*key))
            self.stats.dynamodb_requests += self._store.requests - before
            self.stats.shard_reads += 1
            self._shards[key] = techs
            if len(self._shards) > self._max_shards:
                self._shards.popitem(last=False)
        else:
            self.stats.shard_hits += 1
            self._shards.move_to_end(key)
        return open_calls_from(pointer, tech_id, techs)

    def _keep(self, techs: Techs) -> Mapping[str, tuple[str, ...]]:
        """The form a decoded shard is cached in (subclasses may pack it)."""
        return techs

    def last_poll(self, club_id: int) -> LastPoll | None:
        """The serving source's last poll, read at most once per `absent_max_age` (asked only while a club has
        no snapshot, to say when to retry)."""
        source = self.sources_by_club.get(club_id)
        if source is None or self._poll_log is None:
            return None
        now = self._clock()
        cached = self._polls.get(source)
        if cached is None or now - cached.loaded_at >= self._absent_max_age:
            before = self._poll_log.requests
            cached = self._polls[source] = _CachedPoll(self._poll_log.last_poll(source), now)
            self.stats.dynamodb_requests += self._poll_log.requests - before
        return cached.poll

    @property
    def cached_shards(self) -> int:
        return len(self._shards)

    def _pointer(self, club_id: int) -> Pointer | None:
        source = self.sources_by_club.get(club_id)
        if source is None:
            return None
        now = self._clock()
        due = self._refreshed_at is None or now - self._refreshed_at >= self._pointer_max_age
        if not due and source in self._heads:
            head = self._heads[source]
            pointer = head.clubs.get(club_id) if head else None
            if pointer is not None or now - self._read_at[source] < self._absent_max_age:
                return pointer
        self._refresh([*self._heads, source] if due else [source], now, everything=due)
        head = self._heads[source]
        return head.clubs.get(club_id) if head else None

    def _refresh(self, sources: list[str], now: float, *, everything: bool) -> None:
        """Read `sources`' heads in one round, keep each unless it went backwards, then follow the clubs that moved."""
        wanted = list(dict.fromkeys(sources))
        before = self._store.requests
        try:
            fresh = self._store.heads(wanted)
        finally:
            self.stats.dynamodb_requests += self._store.requests - before
        self.stats.pointer_reads += 1
        self.stats.heads_read += len(wanted)
        if everything:
            self._refreshed_at = now
        moved: dict[int, tuple[Pointer, Pointer | None]] = {}
        for source in wanted:
            old, new = self._heads.get(source), fresh.get(source)
            if old is not None and (new is None or new.fetched_at_ms < old.fetched_at_ms):
                new = old  # a lagging replica
            self._heads[source], self._read_at[source] = new, now
            moved |= clubs_moved(old, new)
        if moved:
            self._follow(moved)

    def _follow(self, moved: Mapping[int, tuple[Pointer, Pointer | None]]) -> None:
        """Swap the shards cached for moved clubs' old versions for the same shards of their new versions, in place
        in the LRU order; a shard the batch did not bring (no counterpart, not visible yet) is dropped."""
        successors = successor_keys(self._shards, moved)
        fetched = self._prefetch(list(successors.values()))
        kept: OrderedDict[ShardKey, Mapping[str, tuple[str, ...]]] = OrderedDict()
        for key, techs in self._shards.items():
            if key[0] not in moved:
                kept[key] = techs
            elif (successor := successors.get(key)) is not None and successor in fetched:
                kept[successor] = self._keep(fetched[successor])
        self._shards = kept

    def _prefetch(self, keys: list[ShardKey]) -> Mapping[ShardKey, Techs]:
        if not keys:
            return {}
        before = self._store.requests
        try:
            fetched = self._store.read_shards(keys)
        except SnapshotStoreError:
            # Prefetching only saves requests: a query that needs one of these shards reads it itself, and a store
            # that is still failing then answers that query with the error.
            self.stats.prefetch_failures += 1
            return {}
        finally:
            self.stats.dynamodb_requests += self._store.requests - before
        self.stats.shards_prefetched += len(fetched)
        return fetched
