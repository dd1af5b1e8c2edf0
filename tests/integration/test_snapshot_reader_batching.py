"""The warm query cache's batched reads against moto: one BatchGetItem refreshes every held head, the shards a
flip makes stale come back in one batch, and answers stay those of the uncached reader (DESIGN.md section 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from support.aws import SNAPSHOT_TABLE, snapshot_table
from support.clock import Clock
from support.stores import Stores, stores

from cappi.adapters.dynamo import shard_source as shard_source_module
from cappi.adapters.dynamo import shards as shards_module
from cappi.adapters.dynamo.schema import HEAD_SK, PK, SK, source_item_key
from cappi.adapters.dynamo.table import SnapshotReadError
from cappi.adapters.snapshot_reader import CachedSnapshotReader, SnapshotReader
from cappi.domain.publish import publish_source
from cappi.domain.snapshot import ClubSnapshot, build_club_snapshot

TABLE = SNAPSHOT_TABLE
T0 = 1_760_000_000_000  # fetch times, epoch ms
TECHS = [f"T{n:03d}" for n in range(40)]


class Recording:
    """Forwards to moto; records each BatchGetItem's key count, and lets a test rewrite or fail its responses."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.rewrite: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        ((_table, request),) = kwargs["RequestItems"].items()
        self.batches.append(len(request["Keys"]))
        if self.rewrite is not None:
            return self.rewrite(kwargs, self.inner.batch_get_item(**kwargs))
        return self.inner.batch_get_item(**kwargs)


def contents(seed: int, calls: int = 3) -> dict[str, list[int]]:
    """TechId -> call IDs, the same techs every time, different calls per seed."""
    return {tech: [seed * 1_000_000 + n * 100 + k for k in range(calls)] for n, tech in enumerate(TECHS)}


def club(club_id: int, seed: int) -> ClubSnapshot:
    return build_club_snapshot(club_id, contents(seed))


@pytest.fixture
def client(dynamodb: Any) -> Recording:
    return Recording(dynamodb)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(client: Recording, sleeps: list[float]) -> Stores:
    return stores(client, TABLE, sleep=sleeps.append)


def publish(store: Stores, source: str, snapshots: list[ClubSnapshot], fetched_at_ms: int) -> None:
    for result in publish_source(store.writer, source, snapshots, fetched_at_ms):
        assert result.version is not None


def sources_of(count: int, first_club: int = 100) -> dict[int, str]:
    return {first_club + n: f"src-{n:03d}" for n in range(count)}


def requests(store: Stores, action: Callable[[], Any]) -> int:
    before = store.table.requests
    action()
    return store.table.requests - before


def test_one_batch_refreshes_every_held_head(store: Stores, client: Recording) -> None:
    by_club = sources_of(30)
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 1)], T0)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    for club_id in by_club:  # each source asked for the first time is read alone
        reader.open_calls(club_id, TECHS[0])

    clock.advance(10.0)
    client.batches.clear()
    assert requests(store, lambda: reader.open_calls(100, TECHS[0])) == 1
    assert client.batches == [30]  # every held head, in one request
    assert requests(store, lambda: [reader.open_calls(c, TECHS[0]) for c in by_club]) == 0  # they age together

    clock.advance(9.9)
    assert requests(store, lambda: [reader.open_calls(c, TECHS[0]) for c in by_club]) == 0
    clock.advance(0.1)
    assert requests(store, lambda: [reader.open_calls(c, TECHS[0]) for c in by_club]) == 1


def test_more_than_a_hundred_heads_take_one_request_per_hundred(store: Stores, client: Recording) -> None:
    by_club = sources_of(130)
    for club_id, source in by_club.items():
        publish(store, source, [build_club_snapshot(club_id, {"AB12": [club_id]})], T0)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    for club_id in by_club:
        reader.open_calls(club_id, "AB12")
    clock.advance(10.0)
    client.batches.clear()
    assert requests(store, lambda: reader.open_calls(100, "AB12")) == 2
    assert sorted(client.batches) == [30, 100]


def test_a_lagging_head_is_ignored_per_source(store: Stores, client: Recording, dynamodb: Any) -> None:
    by_club = {1: "a", 2: "b", 3: "c"}
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 1)], T0)
    old_head_a = dynamodb.get_item(TableName=TABLE, Key=source_item_key("a", HEAD_SK))["Item"]
    publish(store, "a", [club(1, 2)], T0 + 600_000)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    for club_id in by_club:
        reader.open_calls(club_id, TECHS[0])
    publish(store, "b", [club(2, 3)], T0 + 600_000)

    def lagging(_request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        # This replica has not seen a's latest poll, nor c's head at all; b's flip it has seen.
        items = response["Responses"][TABLE]
        kept = [i for i in items if i[PK]["S"] not in ("SOURCE#a", "SOURCE#c")]
        response["Responses"][TABLE] = [*kept, old_head_a]
        return response

    client.rewrite = lagging
    clock.advance(10.0)
    assert reader.open_calls(1, TECHS[0]).call_ids == tuple(str(c) for c in contents(2)[TECHS[0]])
    assert reader.open_calls(2, TECHS[0]).call_ids == tuple(str(c) for c in contents(3)[TECHS[0]])
    assert reader.open_calls(3, TECHS[0]) is not None  # a head never disappears: a missing one is a lagging replica


def test_absent_clubs_are_read_again_alone_within_absent_max_age(store: Stores, client: Recording) -> None:
    by_club = {1: "a", 2: "b", 3: "pending"}
    publish(store, "a", [club(1, 1)], T0)
    publish(store, "b", [club(2, 1)], T0)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    reader.open_calls(1, TECHS[0])
    reader.open_calls(2, TECHS[0])
    client.batches.clear()

    assert reader.open_calls(3, TECHS[0]) is None
    clock.advance(0.5)
    assert requests(store, lambda: reader.open_calls(3, TECHS[0])) == 0  # at most one read per absent_max_age
    clock.advance(0.5)
    assert requests(store, lambda: reader.open_calls(3, TECHS[0])) == 1
    assert client.batches == [1, 1]  # the pending source alone: the other heads keep their age

    publish(store, "pending", [club(3, 1)], T0)
    clock.advance(1.0)
    assert reader.open_calls(3, TECHS[0]) is not None
    clock.advance(10.0)
    client.batches.clear()
    reader.open_calls(1, TECHS[0])
    assert client.batches == [3]  # and it refreshes with the others from then on


def warm(reader: CachedSnapshotReader, clubs: list[int]) -> None:
    for club_id in clubs:
        for tech in TECHS:
            reader.open_calls(club_id, tech)


def answers(reader: Any, clubs: list[int]) -> dict[tuple[int, str], tuple[str, ...]]:
    return {(c, t): reader.open_calls(c, t).call_ids for c in clubs for t in TECHS}


def test_flipped_shards_are_prefetched_in_one_batch(store: Stores, client: Recording) -> None:
    by_club = {1: "a", 2: "a", 3: "b", 4: "c", 5: "d"}
    clubs = list(by_club)

    def publish_all(seed: int, fetched_at_ms: int, shards: dict[int, int]) -> None:
        for source in sorted(set(by_club.values())):
            pointers = {}
            for club_id in [c for c, s in by_club.items() if s == source]:
                expires_at = fetched_at_ms // 1000 + 86_400
                snapshot = club(club_id, seed)
                ref = store.writer.write_version(
                    source, snapshot, fetched_at_ms, expires_at, shard_count=shards[club_id]
                )
                pointers[club_id] = ref.as_pointer(source, fetched_at_ms)
            store.writer.commit_head(source, fetched_at_ms, pointers)

    publish_all(1, T0, dict.fromkeys(clubs, 4))
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    warm(reader, clubs)
    assert reader.cached_shards == 20

    publish_all(2, T0 + 600_000, {**dict.fromkeys(clubs, 4), 5: 2})  # club 5's layout changes: no counterparts
    clock.advance(10.0)
    client.batches.clear()
    assert requests(store, lambda: reader.open_calls(1, TECHS[0])) == 2  # the heads, then every moved shard
    assert client.batches == [4, 4 + 16]  # 4 manifests and part 0 of 16 shards: all of each shard here
    assert reader.stats.shards_prefetched == 16
    assert reader.cached_shards == 16  # club 5's four old shards dropped, none of its new ones guessed

    expected = answers(SnapshotReader(store.snapshots, by_club), clubs)
    assert requests(store, lambda: answers(reader, clubs[:4])) == 0  # warm straight after the flip
    assert answers(reader, clubs) == expected
    assert reader.stats.shard_reads == 20 + 2  # club 5's two new shards were read by the queries that needed them


def test_shards_of_several_parts_are_prefetched_in_two_rounds(
    store: Stores, client: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards_module, "MAX_PART_BYTES", 100)  # several parts per shard
    by_club = {1: "a", 2: "b", 3: "c"}
    for club_id, source in by_club.items():
        publish(store, source, [build_club_snapshot(club_id, contents(1, calls=8))], T0)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=clock)
    warm(reader, list(by_club))
    for club_id, source in by_club.items():
        publish(store, source, [build_club_snapshot(club_id, contents(2, calls=8))], T0 + 600_000)
    clock.advance(10.0)
    client.batches.clear()

    assert requests(store, lambda: reader.open_calls(1, TECHS[0])) == 3  # heads, manifests + part 0s, the rest
    assert len(client.batches) == 3
    assert requests(store, lambda: answers(reader, list(by_club))) == 0
    assert answers(reader, list(by_club)) == answers(SnapshotReader(store.snapshots, by_club), list(by_club))


def unprocessed_first(times: int, *, keep: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """The first `times` responses return only `keep` of the keys asked for, the rest as UnprocessedKeys."""
    calls = 0

    def rewrite(request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls > times:
            return response
        ((table, asked),) = request["RequestItems"].items()
        kept = {(k[PK]["S"], k[SK]["S"]) for k in asked["Keys"][:keep]}
        items = [i for i in response["Responses"][table] if (i[PK]["S"], i[SK]["S"]) in kept]
        left = [k for k in asked["Keys"] if (k[PK]["S"], k[SK]["S"]) not in kept]
        return {"Responses": {table: items}, "UnprocessedKeys": {table: {**asked, "Keys": left}} if left else {}}

    return rewrite


def test_unprocessed_keys_are_resent_at_once_after_progress(
    store: Stores, client: Recording, sleeps: list[float]
) -> None:
    by_club = sources_of(6)
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 1)], T0)
    client.rewrite = unprocessed_first(2, keep=2)  # as when a response reaches the 16 MB cap
    heads = store.snapshots.heads(by_club.values())
    assert {s: h.clubs.keys() for s, h in heads.items() if h} == {s: {c} for c, s in by_club.items()}
    assert client.batches == [6, 4, 2]
    assert sleeps == []


def test_throttled_keys_back_off_briefly_then_fail_as_a_read_error(
    store: Stores, client: Recording, sleeps: list[float]
) -> None:
    by_club = sources_of(3)
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 1)], T0)
    client.rewrite = unprocessed_first(2, keep=0)
    assert all(store.snapshots.heads(by_club.values()).values())
    assert len(sleeps) == 2 and max(sleeps) <= 0.1

    sleeps.clear()
    client.rewrite = unprocessed_first(99, keep=0)
    reader = CachedSnapshotReader(store.snapshots, by_club, clock=Clock(0.0))
    with pytest.raises(SnapshotReadError, match="unprocessed"):
        reader.open_calls(100, TECHS[0])
    assert len(sleeps) == shard_source_module.READ_BATCH_ATTEMPTS - 1
    assert sum(sleeps) < 0.5  # a query waits for this: short and bounded


def test_a_failing_batch_raises_the_stores_read_error(store: Stores, client: Recording) -> None:
    publish(store, "a", [club(1, 1)], T0)

    def throttled(_request: dict[str, Any], _response: dict[str, Any]) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchGetItem")

    client.rewrite = throttled
    with pytest.raises(SnapshotReadError, match="ProvisionedThroughputExceededException"):
        CachedSnapshotReader(store.snapshots, {1: "a"}, clock=Clock(0.0)).open_calls(1, TECHS[0])


def test_a_failed_prefetch_leaves_the_shards_to_the_queries(store: Stores, client: Recording) -> None:
    publish(store, "a", [club(1, 1)], T0)
    clock = Clock(0.0)
    reader = CachedSnapshotReader(store.snapshots, {1: "a"}, clock=clock)
    warm(reader, [1])
    publish(store, "a", [club(1, 2)], T0 + 600_000)

    def fail_shards(request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        ((_table, asked),) = request["RequestItems"].items()
        if any(k[PK]["S"].startswith("CLUB#") for k in asked["Keys"]):
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchGetItem")
        return response

    client.rewrite = fail_shards
    clock.advance(10.0)
    assert reader.open_calls(1, TECHS[0]).call_ids == tuple(str(c) for c in contents(2)[TECHS[0]])
    assert reader.stats.prefetch_failures == 1
    assert reader.stats.shards_prefetched == 0


# --- the cached reader answers as the uncached one does -------------------------------------------------------------

SOURCES = {10: "s0", 11: "s0", 12: "s1", 13: "s2"}
step = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(sorted(set(SOURCES.values()))), st.integers(1, 4), st.integers(1, 3)),
    st.tuples(st.just("wait"), st.sampled_from([0.3, 1.0, 4.0, 10.0]), st.just(0), st.just(0)),
    st.tuples(st.just("query"), st.sampled_from(sorted(SOURCES)), st.integers(0, len(TECHS) - 1), st.just(0)),
)


@contextmanager
def fresh_table() -> Iterator[Stores]:
    with mock_aws():
        yield stores(snapshot_table(), TABLE)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_answers_are_the_uncached_readers_within_the_pointer_age(steps: list[tuple[str, Any, int, int]]) -> None:
    with fresh_table() as store:
        clock = Clock(0.0)
        cached = CachedSnapshotReader(store.snapshots, SOURCES, clock=clock)
        direct = SnapshotReader(store.snapshots, SOURCES)
        fetched_at, published_at, seed = T0, {}, 0
        history: dict[int, list[tuple[float, str]]] = {c: [] for c in SOURCES}  # (published at, version) per club
        served: dict[int, str] = {}
        shard_counts: dict[str, int] = {}
        for kind, what, a, b in steps:
            if kind == "publish":
                fetched_at, seed = fetched_at + 1_000, seed + 1
                pointers = {}
                for c in [c for c, s in SOURCES.items() if s == what]:
                    snapshot = build_club_snapshot(c, contents(seed + c % a))
                    shards = b if c % 2 else 1  # some clubs change layout between versions, some never do
                    ref = store.writer.write_version(
                        what, snapshot, fetched_at, fetched_at // 1000 + 86_400, shard_count=shards
                    )
                    history[c].append((clock.now, ref.version))
                    shard_counts[ref.version] = shards
                    pointers[c] = ref.as_pointer(what, fetched_at)
                store.writer.commit_head(what, fetched_at, pointers)
                published_at[what] = clock.now
            elif kind == "wait":
                clock.advance(what)
            else:
                tech, expected = TECHS[a], direct.open_calls(what, TECHS[a])
                got = cached.open_calls(what, tech)
                if expected is None:
                    assert got is None or got.version in {v for _, v in history[what]}
                    continue
                settled = clock.now - published_at[SOURCES[what]] >= 10.0
                if settled:
                    assert got == expected  # every publish seen: exactly the uncached answer
                if got is None:
                    continue
                versions = [v for _, v in history[what]]
                assert versions.index(got.version) >= versions.index(served.get(what, versions[0]))  # never back
                served[what] = got.version
                # The version served was current at some moment within the last pointer_max_age seconds.
                later = [t for t, v in history[what] if versions.index(v) > versions.index(got.version)]
                assert not later or clock.now - min(later) < 10.0
                shard = shards_module.shard_of(tech, shard_counts[got.version])
                assert got.call_ids == store.snapshots.read_shard(what, got.version, shard).get(tech, ())
