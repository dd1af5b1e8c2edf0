"""The query's warm reader at any number of clubs: pointers from the readers' index, moved shards by delta.

`CachedSnapshotReader` reads the head of every source it holds each `pointer_max_age`, and follows a club to a new
version by reading that version's shards: at 1,000 sources a container reads about 1,000 heads (500 read units) per
refresh and about 6.5 read units per club and version. `IndexedSnapshotReader` keeps its cache, its absence rules
and its lone head reads, and changes the two costs that grow with clubs (`cappi.adapters.dynamo.reader_index`):

- a due refresh reads the index (one BatchGetItem of a fixed number of items, about 16 read units at 1,000
  sources), and reads heads only for the sources it holds that the index does not name (an entry not written
  yet): every source in the index becomes known at once, so no source is read alone for its first query;
- the shards cached for a club's old version become the new version's by applying the new version's delta when
  its base is the old version (one BatchGetItem for every club that moved in the round, about one read unit each
  at a 5% churn); otherwise (no delta, another base, a delta that does not fit) the new shards are read in one
  batch as before.

Shards are cached packed (`shards.PackedShard`: about 100 KB for a club of 10,000 calls instead of some 875 KB as a
dict), so a container holds every club it serves: `max_shards` defaults to 2,048 (at most 512 MB of text at the
256 KB a shard is cut to, about 200 MB at 1,000 clubs of 10,000 calls; the function has 1 GB).

A reader never goes backwards: per club, a pointer older (by its version's fetch time) than the one held is
ignored, so an index replica behind a head read, or the other way round, changes nothing. Old complete or new
complete: a delta is applied to a whole cached shard of its base version, and the result replaces it atomically.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from cappi.adapters.dynamo.reader_index import Delta, apply_delta
from cappi.adapters.dynamo.shards import PackedShard, ShardKey, Techs
from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.adapters.snapshot_reader import BatchShardSource, CachedSnapshotReader, clubs_moved, successor_keys
from cappi.domain.heads import Head, Pointer


class IndexedShardSource(BatchShardSource, Protocol):
    """A store that also serves the readers' index and deltas (`cappi.adapters.dynamo.shard_source`)."""

    def index(self) -> Mapping[str, Head]: ...

    def read_deltas(self, versions: Iterable[tuple[int, str]]) -> Mapping[tuple[int, str], Delta]: ...


class IndexedSnapshotReader(CachedSnapshotReader):
    """`open_calls` for a warm Lambda whose costs do not grow with the number of clubs (see the module)."""

    def __init__(
        self, store: IndexedShardSource, sources_by_club: Mapping[int, str], *, max_shards: int = 2_048, **options: Any
    ) -> None:
        super().__init__(store, sources_by_club, max_shards=max_shards, **options)
        self._indexed = store
        self._served = frozenset(self.sources_by_club.values())

    def _keep(self, techs: Techs) -> Mapping[str, tuple[str, ...]]:
        return PackedShard.of(techs)

    def _refresh(self, sources: list[str], now: float, *, everything: bool) -> None:
        if not everything:  # a source's absent club asked again: its head alone, as the base reader does
            super()._refresh(sources, now, everything=False)
            return
        wanted = list(dict.fromkeys(sources))
        before = self._store.requests
        missing: list[str] = []
        try:
            fresh: dict[str, Head | None] = {s: h for s, h in self._indexed.index().items() if s in self._served}
            missing = [s for s in wanted if s not in fresh]
            if missing:
                fresh |= self._store.heads(missing)
        finally:
            self.stats.dynamodb_requests += self._store.requests - before
        self.stats.index_reads += 1
        self.stats.pointer_reads += 1 + (1 if missing else 0)
        self.stats.heads_read += len(missing)
        self._refreshed_at = now
        moved: dict[int, tuple[Pointer, Pointer | None]] = {}
        for source in dict.fromkeys([*self._heads, *fresh]):
            old = self._heads.get(source)
            new = _newer(old, fresh.get(source))
            self._heads[source], self._read_at[source] = new, now
            moved |= clubs_moved(old, new)
        if moved:
            self._follow(moved)

    def _follow(self, moved: Mapping[int, tuple[Pointer, Pointer | None]]) -> None:
        """Move the shards cached for moved clubs' old versions to their new versions, in place in the LRU order:
        by delta where one fits, else by reading the new shards in one batch; a shard neither brings is dropped."""
        same_format = {club for club, (old, new) in moved.items() if new and new.format_version == old.format_version}
        # A shard of another format has no successor: the query that needs it reads it afresh.
        targets = {key: to for key, to in successor_keys(self._shards, moved).items() if key[0] in same_format}
        deltas = self._deltas({(club, version) for club, version, _ in targets.values()})
        applied: dict[ShardKey, Mapping[str, tuple[str, ...]]] = {}
        for key, successor in targets.items():
            club, version, shard = successor
            delta = deltas.get((club, version))
            if delta is not None and delta.base == key[1]:
                held = self._shards[key]
                base = held.unpacked() if isinstance(held, PackedShard) else dict(held)
                followed = apply_delta(base, delta, shard, moved[club][0].shard_count)
                if followed is not None:
                    applied[successor] = self._keep(followed)
        self.stats.deltas_applied += len(applied)
        fetched = self._prefetch([s for s in targets.values() if s not in applied])
        kept: OrderedDict[ShardKey, Mapping[str, tuple[str, ...]]] = OrderedDict()
        for key, held in self._shards.items():
            if key[0] not in moved:
                kept[key] = held
            elif key in targets:
                successor = targets[key]
                if successor in applied:
                    kept[successor] = applied[successor]
                elif successor in fetched:
                    kept[successor] = self._keep(fetched[successor])
        self._shards = kept

    def _deltas(self, versions: set[tuple[int, str]]) -> Mapping[tuple[int, str], Delta]:
        if not versions:
            return {}
        before = self._store.requests
        try:
            return self._indexed.read_deltas(sorted(versions))
        except SnapshotStoreError:
            self.stats.prefetch_failures += 1  # the new shards are read in a batch instead
            return {}
        finally:
            self.stats.dynamodb_requests += self._store.requests - before


def _newer(old: Head | None, new: Head | None) -> Head | None:
    """What a reader holds after reading `new` while holding `old`: per club the later version (by fetch time), and
    a club `new` no longer names dropped only when `new` reflects a later poll."""
    if old is None or new is None:
        return new or old
    clubs = dict(new.clubs)
    for club, held in old.clubs.items():
        read = clubs.get(club)
        if (read is None and new.fetched_at_ms < old.fetched_at_ms) or (
            read is not None and read.fetched_at_ms < held.fetched_at_ms
        ):
            clubs[club] = held
    if clubs == dict(new.clubs):
        return new
    return Head(source=new.source, fetched_at_ms=max(old.fetched_at_ms, new.fetched_at_ms), clubs=clubs)
