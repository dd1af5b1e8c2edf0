"""The readers' index and deltas against moto: ingest keeps every source's current pointers in a fixed number of
items and writes what changed beside each new version; the warm reader refreshes every source with one request and
follows moved clubs by delta, falling back to heads and full shards, and answers as the uncached reader does."""

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

from cappi.adapters.dynamo.cost import read_units
from cappi.adapters.dynamo.reader_index import Delta, apply_delta, decode_entry, encode_entry
from cappi.adapters.dynamo.schema import INDEX_PK, INDEX_SLOTS, PK, VERSION_HASH_CHARS, index_item_key, index_slot
from cappi.adapters.dynamo.shards import PackedShard, shard_of
from cappi.adapters.indexed_reader import IndexedSnapshotReader
from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain.heads import Head
from cappi.domain.publish import Outcome, publish_source
from cappi.domain.snapshot import ClubSnapshot, build_club_snapshot

TABLE = SNAPSHOT_TABLE
T0 = 1_760_000_000_000
TECHS = [f"T{n:03d}" for n in range(40)]


class Recording:
    """Forwards to moto; records each BatchGetItem's keys, and lets a test fail some requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []  # the partition keys each BatchGetItem asked for
        self.fail: Callable[[str, dict[str, Any]], bool] = lambda _operation, _kwargs: False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(**kwargs: Any) -> Any:
            if self.fail(name, kwargs):
                raise ClientError({"Error": {"Code": "InternalServerError"}}, name)
            if name == "batch_get_item":
                ((_table, request),) = kwargs["RequestItems"].items()
                self.batches.append([k[PK]["S"] for k in request["Keys"]])
            return method(**kwargs)

        return call


def contents(seed: int, churn: int = 40) -> dict[str, list[int]]:
    """The same techs every time; the first `churn` techs' calls change with the seed, the others never do."""
    return {
        tech: [(seed if n < churn else 0) * 1_000_000 + n * 100 + k for k in range(3)] for n, tech in enumerate(TECHS)
    }


def club(club_id: int, seed: int, churn: int = 40) -> ClubSnapshot:
    return build_club_snapshot(club_id, contents(seed, churn))


@pytest.fixture
def client(dynamodb: Any) -> Recording:
    return Recording(dynamodb)


@pytest.fixture
def store(client: Recording) -> Stores:
    return stores(client, TABLE, sleep=lambda _s: None)


def publish(store: Stores, source: str, snapshots: list[ClubSnapshot], fetched_at_ms: int) -> None:
    for result in publish_source(store.writer, source, snapshots, fetched_at_ms):
        assert result.outcome is not Outcome.SUPERSEDED


def requests(store: Stores, action: Callable[[], Any]) -> int:
    before = store.table.requests
    action()
    return store.table.requests - before


def expected(seed: int, tech: str, churn: int = 40) -> tuple[str, ...]:
    return tuple(str(c) for c in contents(seed, churn)[tech])


def test_an_entry_round_trips_and_orders_by_its_polls_fetch_time(store: Stores) -> None:
    publish(store, "a", [club(1, 1), club(2, 1)], T0)
    head = store.writer.head("a")
    assert head is not None
    for polled in (T0, T0 + 5):  # the versions' own poll (fetch time left out of the entry), and a later one
        back = decode_entry("a", encode_entry(polled, head.clubs))
        assert {
            c: (p.version, p.fetched_at_ms, p.content_hash, p.shard_count, p.call_count, p.tech_count)
            for c, p in back.clubs.items()
        } == {
            c: (
                p.version,
                p.fetched_at_ms,
                p.content_hash[:VERSION_HASH_CHARS],
                p.shard_count,
                p.call_count,
                p.tech_count,
            )
            for c, p in head.clubs.items()
        }
    assert len(encode_entry(T0, head.clubs)) < len(encode_entry(T0 + 5, head.clubs))
    assert encode_entry(T0 + 5, head.clubs) < encode_entry(T0 + 50_000, {})  # strings compare as fetch times
    assert store.snapshots.index()["a"].clubs.keys() == {1, 2}


def test_one_request_refreshes_every_source_at_a_fixed_number_of_keys(store: Stores, client: Recording) -> None:
    by_club = {100 + n: f"src-{n:03d}" for n in range(150)}
    for club_id, source in by_club.items():
        publish(store, source, [build_club_snapshot(club_id, {"AB12": [club_id]})], T0)
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, by_club, clock=clock)
    # The first query reads the index and learns every source at once: no source is read alone later.
    assert requests(store, lambda: reader.open_calls(100, "AB12")) == 2  # the index, then that club's shard
    assert client.batches == [[INDEX_PK] * INDEX_SLOTS]
    client.batches.clear()
    for club_id in by_club:
        assert reader.open_calls(club_id, "AB12").call_ids == (str(club_id),)
    assert client.batches == []
    clock.advance(10.0)
    assert requests(store, lambda: [reader.open_calls(c, "AB12") for c in by_club]) == 1
    assert client.batches == [[INDEX_PK] * INDEX_SLOTS]


def test_moved_clubs_follow_by_delta_in_one_batch(store: Stores, client: Recording) -> None:
    by_club = {1: "a", 2: "b", 3: "c"}
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 1, churn=5)], T0)
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, by_club, clock=clock)
    for club_id in by_club:
        reader.open_calls(club_id, TECHS[0])
    for club_id, source in by_club.items():
        publish(store, source, [club(club_id, 2, churn=5)], T0 + 600_000)
    clock.advance(10.0)
    client.batches.clear()
    assert requests(store, lambda: reader.open_calls(1, TECHS[0])) == 2  # the index, then every club's delta
    assert client.batches[1] == ["CLUB#001", "CLUB#002", "CLUB#003"]
    assert reader.stats.deltas_applied == 3
    for club_id in by_club:
        for tech in TECHS:
            assert requests(store, lambda c=club_id, t=tech: reader.open_calls(c, t)) == 0
            assert reader.open_calls(club_id, tech).call_ids == expected(2, tech, churn=5)


def test_a_delta_whose_base_is_not_the_held_version_falls_back_to_the_shards(store: Stores, client: Recording) -> None:
    publish(store, "a", [club(1, 1)], T0)
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, {1: "a"}, clock=clock)
    reader.open_calls(1, TECHS[0])
    publish(store, "a", [club(1, 2)], T0 + 600_000)
    publish(store, "a", [club(1, 3)], T0 + 1_200_000)  # two versions within one refresh: C's base is B
    clock.advance(10.0)
    assert reader.open_calls(1, TECHS[0]).call_ids == expected(3, TECHS[0])
    assert (reader.stats.deltas_applied, reader.stats.shards_prefetched, reader.stats.shard_reads) == (0, 1, 1)


def test_deltas_apply_per_shard_and_refuse_what_does_not_fit(store: Stores) -> None:
    old, new = club(1, 1, churn=7), club(1, 2, churn=7)
    refs = []
    for snapshot, at in ((old, T0), (new, T0 + 600_000)):
        refs.append(store.writer.write_version("a", snapshot, at, at // 1000 + 86_400, shard_count=3))
        store.writer.commit_head("a", at, {1: refs[-1].as_pointer("a", at)})
    store.writer.record_for_readers("a", T0 + 600_000, None, {}, {})  # nothing moved: no delta
    previous = {1: refs[0].as_pointer("a", T0)}
    store.writer.record_for_readers(
        "a", T0 + 600_000, Head("a", T0, previous), {1: refs[1].as_pointer("a", T0 + 600_000)}, {1: new}
    )
    (delta,) = store.snapshots.read_deltas([(1, refs[1].version)]).values()
    assert delta.base == refs[0].version
    assert len(delta.changes) == 7
    for shard in range(3):
        base = store.snapshots.read_shard(1, refs[0].version, shard)
        assert apply_delta(base, delta, shard, 3) == store.snapshots.read_shard(1, refs[1].version, shard)
    tech = delta.changes[0][0]
    shard = shard_of(tech, 3)
    broken = dict(store.snapshots.read_shard(1, refs[0].version, shard))
    broken[tech] = ()  # a call the delta removes is not there
    assert apply_delta(broken, delta, shard, 3) is None
    assert apply_delta({}, Delta("x", ((tech, (), ("9",)),)), shard, 3) == {tech: ("9",)}


def test_a_club_without_an_index_entry_is_read_from_its_head(store: Stores, client: Recording, dynamodb: Any) -> None:
    publish(store, "a", [club(1, 1)], T0)
    publish(store, "b", [club(2, 1)], T0)
    dynamodb.delete_item(TableName=TABLE, Key=index_item_key(index_slot("b")))  # as before the index existed
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, {1: "a", 2: "b"}, clock=clock)
    assert reader.open_calls(2, TECHS[0]).call_ids == expected(1, TECHS[0])
    assert reader.open_calls(1, TECHS[0]).call_ids == expected(1, TECHS[0])
    publish(store, "b", [club(2, 2)], T0 + 600_000)  # writes b's entry again
    clock.advance(10.0)
    client.batches.clear()
    assert reader.open_calls(2, TECHS[0]).call_ids == expected(2, TECHS[0])
    assert [keys[0] for keys in client.batches] == [INDEX_PK, "CLUB#002"]  # no head read once b is indexed


def test_a_failed_entry_write_is_repaired_by_the_next_poll(store: Stores, client: Recording) -> None:
    publish(store, "a", [club(1, 1)], T0)
    client.fail = lambda operation, kwargs: operation == "update_item" and kwargs["Key"][PK]["S"] == INDEX_PK
    publish(store, "a", [club(1, 2)], T0 + 600_000)  # the head moved; its entry did not
    assert store.writer.readers_index.failures == 1
    assert store.snapshots.index()["a"].clubs[1].version != store.writer.head("a").clubs[1].version  # type: ignore
    client.fail = lambda _operation, _kwargs: False
    before = store.table.read_meter.units
    publish(store, "a", [club(1, 2)], T0 + 1_200_000)  # unchanged: it reads its slot and rewrites the entry
    assert store.table.read_meter.units - before >= 0.5
    assert store.snapshots.index()["a"].clubs[1].version == store.writer.head("a").clubs[1].version  # type: ignore
    written = store.table.meter.units
    publish(store, "a", [club(1, 2)], T0 + 1_800_000)  # unchanged and in step: the head's write only
    assert store.table.meter.units - written == 1


def test_an_entry_never_goes_backwards(store: Stores) -> None:
    publish(store, "a", [club(1, 1)], T0)
    later = store.writer.head("a")
    publish(store, "a", [club(1, 2)], T0 + 600_000)
    newest = store.snapshots.index()["a"]
    assert later is not None
    store.writer.readers_index.record("a", T0, None, later.clubs, {})  # a late writer of an older poll
    assert store.snapshots.index()["a"].clubs == newest.clubs


def test_a_reader_keeps_a_newer_pointer_than_a_lagging_index(store: Stores, client: Recording, dynamodb: Any) -> None:
    publish(store, "a", [club(1, 1)], T0)
    stale = dynamodb.get_item(TableName=TABLE, Key=index_item_key(index_slot("a")))["Item"]
    publish(store, "a", [club(1, 2)], T0 + 600_000)
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, {1: "a"}, clock=clock)
    assert reader.open_calls(1, TECHS[0]).call_ids == expected(2, TECHS[0])
    dynamodb.put_item(TableName=TABLE, Item=stale)  # a replica behind
    clock.advance(10.0)
    assert reader.open_calls(1, TECHS[0]).call_ids == expected(2, TECHS[0])


def test_a_failed_delta_read_leaves_the_new_shards_to_a_batch(store: Stores, client: Recording) -> None:
    publish(store, "a", [club(1, 1)], T0)
    clock = Clock(0.0)
    reader = IndexedSnapshotReader(store.snapshots, {1: "a"}, clock=clock)
    reader.open_calls(1, TECHS[0])
    publish(store, "a", [club(1, 2)], T0 + 600_000)

    def deltas(operation: str, kwargs: dict[str, Any]) -> bool:
        if operation != "batch_get_item":
            return False
        ((_table, asked),) = kwargs["RequestItems"].items()
        return any(k["sk"]["S"].endswith("#D") for k in asked["Keys"])

    client.fail = deltas
    clock.advance(10.0)
    assert reader.open_calls(1, TECHS[0]).call_ids == expected(2, TECHS[0])
    assert (reader.stats.prefetch_failures, reader.stats.shards_prefetched) == (1, 1)


def test_read_units_follow_dynamodbs_rules(store: Stores) -> None:
    assert read_units([0, 4096, 4097]) == 2.0
    assert read_units([10_000], consistent=True) == 3
    publish(store, "a", [club(1, 1)], T0)
    before = store.table.read_meter.units
    store.snapshots.index()  # every slot: one absent or small item each, eventually consistent
    assert store.table.read_meter.units - before == INDEX_SLOTS / 2
    before = store.table.read_meter.units
    (version,) = [p.version for p in store.snapshots.index()["a"].clubs.values()]
    store.snapshots.read_deltas([(1, version)])  # absent: the minimum
    assert store.table.read_meter.units - before == INDEX_SLOTS / 2 + 0.5


# --- the indexed reader answers as the uncached one does -------------------------------------------------------------

SOURCES = {10: "s0", 11: "s0", 12: "s1", 13: "s2"}
step = st.one_of(
    st.tuples(
        st.just("publish"), st.sampled_from(sorted(set(SOURCES.values()))), st.integers(1, 4), st.integers(0, 40)
    ),
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
        indexed = IndexedSnapshotReader(store.snapshots, SOURCES, clock=clock)
        direct = SnapshotReader(store.snapshots, SOURCES)
        fetched_at, published_at = T0, {}
        history: dict[int, list[tuple[float, str]]] = {c: [] for c in SOURCES}
        served: dict[int, str] = {}
        for kind, what, a, b in steps:
            if kind == "publish":
                fetched_at += 1_000
                snapshots = [club(c, a + c % 2, churn=b) for c, s in SOURCES.items() if s == what]
                for result in publish_source(store.writer, what, snapshots, fetched_at):
                    if result.version and (
                        not history[result.club_id] or history[result.club_id][-1][1] != result.version
                    ):
                        history[result.club_id].append((clock.now, result.version))
                published_at[what] = clock.now
            elif kind == "wait":
                clock.advance(what)
            else:
                tech, want = TECHS[a], direct.open_calls(what, TECHS[a])
                got = indexed.open_calls(what, tech)
                if want is None:
                    assert got is None
                    continue
                if clock.now - published_at[SOURCES[what]] >= 10.0:
                    assert (got.version, got.call_ids) == (want.version, want.call_ids)  # type: ignore[union-attr]
                if got is None:
                    continue
                versions = [v for _, v in history[what]]
                assert versions.index(got.version) >= versions.index(served.get(what, versions[0]))  # never back
                served[what] = got.version
                later = [t for t, v in history[what] if versions.index(v) > versions.index(got.version)]
                assert not later or clock.now - min(later) < 10.0
                manifest = store.writer.manifest(what, got.version)
                assert manifest is not None
                shard = shard_of(tech, manifest.shard_count)
                assert got.call_ids == store.snapshots.read_shard(what, got.version, shard).get(tech, ())


def test_a_packed_shard_answers_as_its_dict() -> None:
    techs = {"AB1": ("7",), "AB12": ("1", "2"), "B": (), "C9": ("10", "9")}
    packed = PackedShard.of(techs)
    assert dict(packed) == techs == packed.unpacked()
    assert len(packed) == 4
    assert [packed.get(t) for t in ("AB1", "AB12", "B", "C9", "A", "AB", "B1", "C")] == [
        ("7",),
        ("1", "2"),
        (),
        ("10", "9"),
        None,
        None,
        None,
        None,
    ]
    assert PackedShard.of({}).get("AB12", ()) == ()


def test_a_packed_shard_finds_every_technician_across_its_sampled_lines() -> None:
    techs = {f"T{n:04d}": tuple(str(n * 10 + k) for k in range(n % 4)) for n in range(0, 400, 2)}
    packed = PackedShard.of(techs)
    assert len(packed) == 200
    for n in range(-1, 402):
        assert packed.get(f"T{n:04d}") == techs.get(f"T{n:04d}")
    assert packed.get("S9999") is None and packed.get("U0000") is None and packed.get("T") is None
