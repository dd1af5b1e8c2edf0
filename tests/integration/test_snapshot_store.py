"""The snapshot table's consumers (writer, poll log, shard source, point-in-time reads) and the snapshot readers
against moto: the guarantees of DESIGN.md section 3."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.aws import SNAPSHOT_TABLE
from support.clock import Clock
from support.stores import Stores, stores

from cappi.adapters.dynamo import schema as store_module
from cappi.adapters.dynamo import shards as shards_module
from cappi.adapters.dynamo.cost import item_size, write_units
from cappi.adapters.dynamo.schema import PK, SK, TTL_ATTRIBUTE, create_table
from cappi.adapters.dynamo.table import SnapshotReadError, SnapshotWriteError
from cappi.adapters.snapshot_reader import CachedSnapshotReader, SnapshotReader
from cappi.domain.heads import Head, Pointer, VersionRef
from cappi.domain.snapshot import FORMAT_VERSION, ClubSnapshot, build_club_snapshot

TABLE = SNAPSHOT_TABLE
SOURCE = "aaa-example"
OTHER_SOURCE = "bbb-never-polled"
CLUB = 212
SOURCES_BY_CLUB = {CLUB: SOURCE, CLUB + 1: OTHER_SOURCE}
NOW_S = 1_760_000_000  # the injected wall clock, epoch seconds
T1 = NOW_S * 1000  # fetch times, epoch ms, ten minutes apart
T2 = T1 + 600_000
T3 = T2 + 600_000
T4 = T3 + 600_000
HORIZON_S = 3 * 86_400


class ProxyClient:
    """Forwards to the moto client; subclasses interfere with chosen operations."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


class FlakyClient(ProxyClient):
    """Batch writes follow `modes` call by call, then `then`:
    ok, half (the second half comes back unprocessed), none (all unprocessed), or an error code to raise.
    `put_failures` throttles that many PutItem calls first."""

    def __init__(self, inner: Any, modes: list[str], then: str = "ok", put_failures: int = 0) -> None:
        super().__init__(inner)
        self.modes = list(modes)
        self.then = then
        self.put_failures = put_failures
        self.batch_calls = 0

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        mode = self.modes[self.batch_calls] if self.batch_calls < len(self.modes) else self.then
        self.batch_calls += 1
        if mode == "ok":
            return self.inner.batch_write_item(**kwargs)
        if mode not in ("half", "none"):
            raise client_error(mode, "BatchWriteItem")
        ((table, requests),) = kwargs["RequestItems"].items()
        keep = len(requests) // 2 if mode == "half" else 0
        if keep:
            self.inner.batch_write_item(RequestItems={table: requests[:keep]})
        return {"UnprocessedItems": {table: requests[keep:]}}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        if self.put_failures:
            self.put_failures -= 1
            raise client_error("ThrottlingException", "PutItem")
        return self.inner.put_item(**kwargs)


class PagingClient(ProxyClient):
    """Every Query returns one item per page, so callers must follow LastEvaluatedKey."""

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self.inner.query(**{**kwargs, "Limit": 1})


@pytest.fixture
def client(dynamodb: Any) -> Any:
    return dynamodb


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW_S)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_store(client: Any, clock: Clock, sleeps: list[float]) -> Callable[..., Stores]:
    def make(dynamodb: Any = None, **kwargs: Any) -> Stores:
        return stores(dynamodb or client, TABLE, clock=clock, sleep=sleeps.append, **kwargs)

    return make


@pytest.fixture
def store(make_store: Callable[..., Stores]) -> Stores:
    return make_store()


def reads(store: Stores, sources_by_club: dict[int, str] = SOURCES_BY_CLUB) -> SnapshotReader:
    """Club-keyed reads of `store`, with the registry's map of which source serves which club."""
    return SnapshotReader(store.snapshots, sources_by_club, polls=store.polls)


def random_snapshot(seed: int, techs: int, calls_per_tech: int, club_id: int = CLUB) -> ClubSnapshot:
    rng = random.Random(seed)
    ids = rng.sample(range(1_000_000, 10_000_000), techs * calls_per_tech)
    grouped = {f"T{seed}X{n:05d}": ids[n * calls_per_tech : (n + 1) * calls_per_tech] for n in range(techs)}
    return build_club_snapshot(club_id, grouped)


def publish(store: Stores, snapshot: ClubSnapshot, fetched_at_ms: int, *, shard_count: int | None = None) -> VersionRef:
    ref = store.writer.write_version(
        SOURCE, snapshot, fetched_at_ms, fetched_at_ms // 1000 + HORIZON_S, shard_count=shard_count
    )
    assert store.writer.commit_head(SOURCE, fetched_at_ms, {snapshot.club_id: ref.as_pointer(SOURCE, fetched_at_ms)})
    return ref


def commit(store: Stores, fetched_at_ms: int, *refs: VersionRef) -> tuple[bool, int]:
    """(whether the head moved, the write units that cost)."""
    return commit_pointers(store, fetched_at_ms, {r.club_id: r.as_pointer(SOURCE, fetched_at_ms) for r in refs})


def commit_pointers(store: Stores, fetched_at_ms: int, pointers: dict[int, Pointer]) -> tuple[bool, int]:
    before = store.table.meter.units
    applied = store.writer.commit_head(SOURCE, fetched_at_ms, pointers)
    return applied, store.table.meter.units - before


def write(store: Stores, snapshot: ClubSnapshot, fetched_at_ms: int, expires_at: int, **kwargs: Any) -> VersionRef:
    return store.writer.write_version(SOURCE, snapshot, fetched_at_ms, expires_at, **kwargs)


def priced_write(store: Stores, snapshot: ClubSnapshot, *args: Any, **kwargs: Any) -> tuple[VersionRef, int]:
    """(the version written, the write units the table's meter counted for it)."""
    before = store.table.meter.units
    ref = write(store, snapshot, *args, **kwargs)
    return ref, store.table.meter.units - before


def all_items(client: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def version_items(client: Any, version: str) -> list[dict[str, Any]]:
    return [i for i in all_items(client) if i[SK]["S"].startswith(f"V#{version}")]


def get_raw(client: Any, club_id: int, sk: str) -> dict[str, Any] | None:
    return client.get_item(TableName=TABLE, Key={PK: {"S": f"CLUB#{club_id:03d}"}, SK: {"S": sk}}).get("Item")


def raw_head(client: Any, source: str = SOURCE) -> dict[str, Any] | None:
    return client.get_item(TableName=TABLE, Key={PK: {"S": f"SOURCE#{source}"}, SK: {"S": "HEAD"}}).get("Item")


def assert_serves(
    read: Callable[[int, str], Any], snapshot: ClubSnapshot, also: frozenset[str] = frozenset(), sample: int = 0
) -> None:
    """Every tech of the snapshot gets exactly its calls; every other tech in `also` gets none.

    With `sample`, only that many techs (chosen at random, reproducibly) are asked, to keep moto tests fast.
    """
    techs = sorted(set(snapshot.techs) | also)
    for tech in random.Random(len(techs)).sample(techs, sample) if sample else techs:
        answer = read(snapshot.club_id, tech)
        assert answer is not None
        assert answer.call_ids == snapshot.open_call_ids(tech), tech
        assert answer.content_hash == snapshot.content_hash


# --- table ----------------------------------------------------------------------------------------------------------


def test_create_table_is_idempotent_with_the_documented_schema(client: Any) -> None:
    create_table(client, TABLE)  # the fixture already created it once

    table = client.describe_table(TableName=TABLE)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {(PK, "HASH"), (SK, "RANGE")}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", TTL_ATTRIBUTE)


# --- round trips ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shard_count", [None, 3])
def test_round_trip_returns_exact_calls(store: Stores, shard_count: int | None) -> None:
    snapshot = build_club_snapshot(
        CLUB, {"AB12": [8679, "8655R", 9999], "X1": [1], "Z" * 32: [9_999_999, 0], "TWIN": [8679]}
    )
    ref = publish(store, snapshot, T1, shard_count=shard_count)

    assert_serves(reads(store).open_calls, snapshot)
    answer = reads(store).open_calls(CLUB, "AB12")
    assert answer is not None
    assert answer.call_ids == ("8655R", "8679", "9999")
    assert (answer.version, answer.fetched_at_ms, answer.checked_at_ms) == (ref.version, T1, T1)
    assert ref.version == f"{T1:013d}-{snapshot.content_hash[:12]}"
    assert reads(store).open_calls(CLUB, "NOBODY").call_ids == ()
    assert reads(store).open_calls(CLUB + 1, "AB12") is None
    pointer = reads(store).current(CLUB)
    assert pointer is not None
    assert (pointer.call_count, pointer.tech_count, pointer.source) == (6, 4, SOURCE)


def test_empty_snapshot_round_trips_as_no_calls(store: Stores, client: Any) -> None:
    snapshot = build_club_snapshot(CLUB, {})
    ref = publish(store, snapshot, T1)

    assert reads(store).open_calls(CLUB, "AB12").call_ids == ()
    (part,) = [i for i in version_items(client, ref.version) if "#S#" in i[SK]["S"]]
    assert part["d"]["B"] == b""


def test_as_of_returns_the_version_newest_at_each_moment(store: Stores) -> None:
    v1 = random_snapshot(1, techs=40, calls_per_tech=3)
    v2 = random_snapshot(2, techs=40, calls_per_tech=3)
    v3 = random_snapshot(3, techs=40, calls_per_tech=3)
    refs = {}
    refs[v1.content_hash] = publish(store, v1, T1)
    refs[v2.content_hash] = publish(store, v2, T2, shard_count=4)
    refs[v3.content_hash] = publish(store, v3, T3, shard_count=2)

    everyone = frozenset(v1.techs) | frozenset(v2.techs) | frozenset(v3.techs)
    for at_ms, expected in [(T1, v1), (T1 + 1, v1), (T2 - 1, v1), (T2, v2), (T3 - 1, v2), (T3, v3), (T4 * 2, v3)]:
        assert store.history.version_as_of(CLUB, at_ms) == refs[expected.content_hash]
        assert_serves(
            lambda club, tech, at=at_ms: store.history.open_calls_as_of(club, tech, at), expected, everyone, 6
        )
    assert store.history.open_calls_as_of(CLUB, next(iter(v1.techs)), T1 - 1) is None
    assert store.history.open_calls_as_of(CLUB + 1, "AB12", T3) is None
    answer = store.history.open_calls_as_of(CLUB, next(iter(v2.techs)), T2 + 5)
    assert answer is not None
    assert (answer.fetched_at_ms, answer.checked_at_ms) == (T2, None)


def test_as_of_jumps_over_a_version_parts_to_its_manifest(store: Stores) -> None:
    ref = publish(store, random_snapshot(1, techs=50, calls_per_tech=2), T1, shard_count=12)
    before = store.table.requests_by_operation["query"]

    assert store.history.version_as_of(CLUB, T2) == ref

    # One page lands among the twelve parts, the next starts at the manifest (paging through would take four).
    assert store.table.requests_by_operation["query"] - before == 2


def test_reads_follow_pagination(make_store: Callable[..., Stores], client: Any, monkeypatch) -> None:
    # Small parts make several items per shard; one-item pages make every read paginate.
    monkeypatch.setattr(shards_module, "MAX_PART_BYTES", 512)
    store = make_store(PagingClient(client))
    v1 = random_snapshot(1, techs=200, calls_per_tech=4)
    v2 = random_snapshot(2, techs=200, calls_per_tech=4)
    ref1 = publish(store, v1, T1, shard_count=2)
    publish(store, v2, T2, shard_count=3)

    assert min(ref1.parts) > 1
    assert_serves(reads(store).open_calls, v2, frozenset(v1.techs), sample=10)
    assert_serves(
        lambda club, tech: store.history.open_calls_as_of(club, tech, T2 - 1), v1, frozenset(v2.techs), sample=10
    )


# --- atomic visibility and ordering ---------------------------------------------------------------------------------


def test_readers_see_old_or_new_version_entirely_never_a_mix(store: Stores) -> None:
    v1 = random_snapshot(1, techs=60, calls_per_tech=3)
    # v2 keeps some of v1's techs with new calls, drops others, adds new ones, and changes the shard count.
    kept = list(v1.techs)[:40]
    grouped = {tech: [int(c) + 1 for c in v1.techs[tech]] for tech in kept}
    grouped |= {f"NEW{n}": [n + 10] for n in range(30)}
    v2 = build_club_snapshot(CLUB, grouped)
    everyone = frozenset(v1.techs) | frozenset(v2.techs)
    publish(store, v1, T1, shard_count=3)

    ref2 = write(store, v2, T2, T2 // 1000 + HORIZON_S, shard_count=5)
    assert_serves(reads(store).open_calls, v1, everyone)

    assert commit(store, T2, ref2)[0]
    assert_serves(reads(store).open_calls, v2, everyone)


def test_all_clubs_of_a_source_move_together_in_one_write(store: Stores, client: Any) -> None:
    a1, b1 = random_snapshot(1, 30, 2, club_id=CLUB), random_snapshot(2, 30, 2, club_id=CLUB + 1)
    a2, b2 = random_snapshot(3, 30, 2, club_id=CLUB), random_snapshot(4, 30, 2, club_id=CLUB + 1)
    both = {CLUB: SOURCE, CLUB + 1: SOURCE}
    refs1 = [write(store, s, T1, NOW_S + HORIZON_S) for s in (a1, b1)]
    assert commit(store, T1, *refs1) == (True, 1)
    refs2 = [write(store, s, T2, NOW_S + HORIZON_S) for s in (a2, b2)]
    assert_serves(reads(store, both).open_calls, a1, sample=5)
    assert_serves(reads(store, both).open_calls, b1, sample=5)

    assert commit(store, T2, *refs2) == (True, 1)

    assert_serves(reads(store, both).open_calls, a2, sample=5)
    assert_serves(reads(store, both).open_calls, b2, sample=5)
    head = store.snapshots.head(SOURCE)
    assert (head.source, head.fetched_at_ms, sorted(head.clubs)) == (SOURCE, T2, [CLUB, CLUB + 1])
    assert item_size(raw_head(client)) < 1024


@pytest.mark.parametrize("order", ["early_then_late", "late_then_early"])
def test_head_never_moves_backwards(store: Stores, order: str) -> None:
    early, late = random_snapshot(1, 20, 2), random_snapshot(2, 20, 2)
    ref_early = write(store, early, T1, NOW_S + HORIZON_S)
    ref_late = write(store, late, T2, NOW_S + HORIZON_S)

    if order == "early_then_late":
        assert commit(store, T1, ref_early)[0]
        assert commit(store, T2, ref_late)[0]
    else:
        assert commit(store, T2, ref_late)[0]
        assert commit(store, T1, ref_early) == (False, 1)

    assert reads(store).current(CLUB).version == ref_late.version
    assert_serves(reads(store).open_calls, late, frozenset(early.techs))
    assert commit(store, T2, ref_late)[0] is False  # the same fetch again is not newer


def test_older_poll_cannot_replace_content_a_later_poll_confirmed(store: Stores) -> None:
    # Poll A (T1) published; a slow poll fetched at T2 saw B; a poll at T3 saw A again and confirmed it.
    a, b = random_snapshot(1, 10, 2), random_snapshot(2, 10, 2)
    ref_a = publish(store, a, T1)
    ref_b = write(store, b, T2, NOW_S + HORIZON_S)
    confirmed = replace(reads(store).current(CLUB), checked_at_ms=T3)
    assert store.writer.commit_head(SOURCE, T3, {CLUB: confirmed})

    assert commit(store, T2, ref_b)[0] is False
    pointer = reads(store).current(CLUB)
    assert (pointer.version, pointer.checked_at_ms) == (ref_a.version, T3)
    assert_serves(reads(store).open_calls, a)


def test_a_head_commit_without_new_versions_writes_no_snapshot_data(store: Stores, client: Any) -> None:
    snapshot = random_snapshot(1, 200, 3)
    ref = publish(store, snapshot, T1)
    before = all_items(client)
    unchanged = replace(reads(store).current(CLUB), checked_at_ms=T2)

    assert commit_pointers(store, T2, {CLUB: unchanged}) == (True, 1)

    after = all_items(client)
    not_head = [i for i in after if i[SK]["S"] != "HEAD"]
    assert not_head == [i for i in before if i[SK]["S"] != "HEAD"]
    pointer = reads(store).current(CLUB)
    assert (pointer.version, pointer.fetched_at_ms, pointer.checked_at_ms) == (ref.version, T1, T2)


def test_head_round_trips_held_polls(store: Stores) -> None:
    published = random_snapshot(1, 120, 3)
    publish(store, published, T1)
    held = replace(reads(store).current(CLUB), held_hash="f" * 64, held_count=2, held_fetched_at_ms=T2)

    assert commit_pointers(store, T2, {CLUB: held}) == (True, 1)

    assert reads(store).current(CLUB) == held
    assert_serves(reads(store).open_calls, published, sample=30)


def test_clubs_without_a_source_or_a_head_read_as_none(store: Stores) -> None:
    assert reads(store).current(999) is None
    assert reads(store).current(CLUB + 1) is None
    assert store.snapshots.head(OTHER_SOURCE) is None
    assert reads(store).open_calls(CLUB + 1, "AB12") is None


# --- size limits and write units ------------------------------------------------------------------------------------


def test_large_snapshot_respects_the_item_limit_and_round_trips(store: Stores, client: Any) -> None:
    rng = random.Random(7)
    ids = rng.sample(range(1_000_000, 10_000_000), 120_000)
    grouped: dict[str, list[int]] = {"BIGTECH": ids[:60_000]}
    grouped |= {f"T{n:05d}": ids[60_000 + n * 10 : 60_000 + (n + 1) * 10] for n in range(6_000)}
    snapshot = build_club_snapshot(CLUB, grouped)
    assert snapshot.call_count == 120_000

    ref, units = priced_write(store, snapshot, T1, NOW_S + HORIZON_S)
    commit(store, T1, ref)

    items = all_items(client)
    sizes = [item_size(i) for i in items]
    assert max(sizes) < 400 * 1024
    assert ref.shard_count > 1
    assert units == sum(write_units(item_size(i)) for i in version_items(client, ref.version))
    assert item_size(raw_head(client)) < 1024
    assert reads(store).open_calls(CLUB, "BIGTECH").call_ids == snapshot.open_call_ids("BIGTECH")
    for tech in random.Random(1).sample(sorted(snapshot.techs), 200):
        assert reads(store).open_calls(CLUB, tech).call_ids == snapshot.open_call_ids(tech)


def test_reference_snapshot_costs_under_100_write_units(store: Stores, client: Any) -> None:
    snapshot = random_snapshot(42, techs=2_500, calls_per_tech=4)
    assert (snapshot.call_count, snapshot.tech_count) == (10_000, 2_500)

    ref, units = priced_write(store, snapshot, T1, NOW_S + HORIZON_S)

    print(f"write_version of 10,000 calls / 2,500 techs: {units} write units (one item per call: 10,000)")
    assert units < 100
    # Units follow the stored bytes, checked independently of the store's own bookkeeping.
    assert units == sum(write_units(item_size(i)) for i in version_items(client, ref.version))
    _, head_units = commit(store, T1, ref)
    assert head_units == 1


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "CLUB#001"}}, 2 + 8),
        ({"é": {"S": "ü"}}, 2 + 2),
        ({"d": {"B": b"\x00" * 10}}, 1 + 10),
        ({"d": {"B": b""}}, 1),
        ({"n": {"N": "123"}}, 1 + 3),  # 3 significant digits: (3 + 1) // 2 + 1
        ({"n": {"N": "1700000000000"}}, 1 + 2),  # trailing zeros are not significant: "17"
        ({"n": {"N": "1760000000123"}}, 1 + 8),  # 13 significant digits: 7 + 1
        ({"n": {"N": "-0.0120"}}, 1 + 3),  # "12", plus one byte for the sign
        ({"n": {"N": "0"}}, 1 + 1),
        ({"flag": {"BOOL": True}, "x": {"NULL": True}}, 4 + 1 + 1 + 1),
        ({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (2 + 1) + (2 + 1)),
        ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + (1 + 1 + 1)),
        ({"ss": {"SS": ["a", "bc"]}}, 2 + 3),
    ],
)
def test_item_size_matches_hand_computed_examples(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_write_units_round_up_per_started_kilobyte() -> None:
    assert [write_units(n) for n in (0, 1, 1024, 1025, 400 * 1024)] == [1, 1, 1, 2, 400]


# --- retries --------------------------------------------------------------------------------------------------------


def test_write_version_survives_unprocessed_items(
    make_store: Callable[..., Stores], client: Any, sleeps: list[float]
) -> None:
    # Throttling is botocore's to retry (test_botocore_retries_throttling_once_for_the_store); what it cannot
    # retry is a batch that succeeds with items left over, which the store resends with backoff.
    flaky = FlakyClient(client, modes=["ok", "half", "none", "half", "none"])
    store = make_store(flaky)
    snapshot = random_snapshot(1, techs=400, calls_per_tech=3)

    ref, units = priced_write(store, snapshot, T1, NOW_S + HORIZON_S, shard_count=60)  # 3 batches

    assert flaky.batch_calls > 3
    assert len(version_items(client, ref.version)) == 60 + 1
    assert len(sleeps) == flaky.batch_calls - 3
    assert store.writer.manifest(CLUB, ref.version) == ref
    assert units == sum(write_units(item_size(i)) for i in version_items(client, ref.version))
    assert commit(store, T1, ref)[0]
    assert_serves(reads(store).open_calls, snapshot, sample=40)


@pytest.mark.parametrize("failure", ["none"])
def test_write_version_gives_up_without_exposing_the_partial_version(
    make_store: Callable[..., Stores], client: Any, sleeps: list[float], failure: str
) -> None:
    published = random_snapshot(1, techs=100, calls_per_tech=3)
    publish(make_store(), published, T1)
    store = make_store(FlakyClient(client, modes=["ok"], then=failure), max_attempts=5, max_delay=0.3)
    failing = random_snapshot(2, techs=100, calls_per_tech=3)

    with pytest.raises(SnapshotWriteError) as caught:
        write(store, failing, T2, NOW_S + HORIZON_S, shard_count=30)

    message = str(caught.value)
    assert TABLE in message
    assert str(CLUB) in message
    assert store.table.meter.units == 25  # the first batch was written and billed
    assert len(sleeps) == 4  # five attempts, backoff between them
    for attempt, slept in enumerate(sleeps):  # exponential from 50 ms, capped, jittered down to half
        ceiling = min(0.3, 0.05 * 2**attempt)
        assert ceiling / 2 <= slept <= ceiling
    failed_version = f"{T2:013d}-{failing.content_hash[:12]}"
    assert get_raw(client, CLUB, f"V#{failed_version}") is None
    assert store.history.version_as_of(CLUB, T2).content_hash == published.content_hash
    assert_serves(reads(store).open_calls, published, frozenset(failing.techs), sample=40)


@pytest.mark.parametrize(
    ("code", "message"),
    [("ValidationException", "ValidationException"), ("ThrottlingException", "still throttled after botocore")],
)
def test_errors_that_retrying_cannot_fix_fail_at_once(
    make_store: Callable[..., Stores], client: Any, code: str, message: str
) -> None:
    # A throttling error that reaches the store is one botocore already retried: the store does not stack more.
    flaky = FlakyClient(client, modes=[], then=code)
    store = make_store(flaky)

    with pytest.raises(SnapshotWriteError, match=message):
        write(store, random_snapshot(1, 5, 1), T1, NOW_S + HORIZON_S)
    assert flaky.batch_calls == 1


def test_botocore_retries_throttling_once_for_the_store(client: Any) -> None:
    """The functions' client retries throttled requests in botocore (standard mode), so the store never has to."""
    from botocore.awsrequest import AWSResponse

    from cappi.adapters.dynamo.client import INGEST_ATTEMPTS, dynamodb_client

    class Body:
        def stream(self, **_kwargs: Any) -> Iterator[bytes]:
            yield b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}'

    dynamodb = dynamodb_client(region_name="us-east-1")
    sent: list[str] = []

    def throttle_twice(request: Any, **_kwargs: Any) -> AWSResponse | None:
        sent.append(request.url)
        return AWSResponse(request.url, 400, {}, Body()) if len(sent) <= 2 else None

    dynamodb.meta.events.register_first("before-send.dynamodb.PutItem", throttle_twice)
    store = stores(dynamodb, TABLE)
    ref = write(store, random_snapshot(1, 5, 1), T1, NOW_S + HORIZON_S)

    assert len(sent) == 3  # the manifest's PutItem: throttled twice, then written
    assert store.table.requests_by_operation["put_item"] == 1
    assert store.writer.manifest(CLUB, ref.version) == ref
    assert dynamodb.meta.config.retries["total_max_attempts"] == INGEST_ATTEMPTS


# --- expiry ---------------------------------------------------------------------------------------------------------


def test_extend_expiry_moves_every_item_of_the_current_version(store: Stores, client: Any) -> None:
    ref1 = publish(store, random_snapshot(1, 50, 2), T1, shard_count=2)
    ref2 = publish(store, random_snapshot(2, 1_500, 4), T2, shard_count=3)
    old_v1 = version_items(client, ref1.version)
    later = NOW_S + 10 * 86_400

    units = store.units(lambda: store.writer.extend_expiry(reads(store).current(CLUB), later))

    v2_items = version_items(client, ref2.version)
    assert len(v2_items) == 3 + 1
    assert {int(i[TTL_ATTRIBUTE]["N"]) for i in v2_items} == {later}
    assert version_items(client, ref1.version) == old_v1
    # Updating an item costs its whole size (parts here are several KB each); the head is the caller's to commit.
    assert units == sum(write_units(item_size(i)) for i in v2_items)
    assert units > len(v2_items)


def test_extend_expiry_does_not_recreate_deleted_parts(store: Stores, client: Any) -> None:
    ref = publish(store, random_snapshot(1, 50, 2), T1, shard_count=2)
    part_key = {PK: {"S": f"CLUB#{CLUB:03d}"}, SK: {"S": f"V#{ref.version}#S#0001#P#000"}}
    client.delete_item(TableName=TABLE, Key=part_key)

    with pytest.raises(SnapshotWriteError, match="gone"):
        store.writer.extend_expiry(reads(store).current(CLUB), NOW_S + 10 * 86_400)
    assert "Item" not in client.get_item(TableName=TABLE, Key=part_key)


def test_as_of_skips_expired_versions(store: Stores, clock: Clock) -> None:
    v1, v2, v3 = (random_snapshot(n, 20, 2) for n in (1, 2, 3))
    write(store, v1, T1, NOW_S + 100)
    write(store, v2, T2, NOW_S + 10_000)
    write(store, v3, T3, NOW_S + 200, shard_count=3)
    tech = next(iter(v2.techs))

    assert store.history.open_calls_as_of(CLUB, tech, T1).content_hash == v1.content_hash
    clock.now = NOW_S + 300  # v1 and v3 have expired; TTL may not have deleted them yet

    assert store.history.open_calls_as_of(CLUB, tech, T1) is None
    assert store.history.open_calls_as_of(CLUB, tech, T2 - 1) is None
    assert store.history.open_calls_as_of(CLUB, tech, T2).content_hash == v2.content_hash
    assert store.history.open_calls_as_of(CLUB, tech, T4).content_hash == v2.content_hash  # skips expired v3


# --- refusing bad data ----------------------------------------------------------------------------------------------


def test_unknown_format_is_refused(store: Stores, client: Any) -> None:
    publish(store, random_snapshot(1, 5, 2), T1)
    client.update_item(
        TableName=TABLE,
        Key={PK: {"S": f"SOURCE#{SOURCE}"}, SK: {"S": "HEAD"}},
        UpdateExpression="SET clubs.#club.fmt = :f",
        ExpressionAttributeNames={"#club": str(CLUB)},
        ExpressionAttributeValues={":f": {"N": "99"}},
    )
    with pytest.raises(SnapshotReadError, match="format 99"):
        reads(store).open_calls(CLUB, "ANY")


def test_missing_shard_data_is_an_error_not_an_empty_answer(store: Stores, client: Any) -> None:
    snapshot = random_snapshot(1, 5, 2)
    ref = publish(store, snapshot, T1)
    client.delete_item(TableName=TABLE, Key={PK: {"S": f"CLUB#{CLUB:03d}"}, SK: {"S": f"V#{ref.version}#S#0000#P#000"}})
    with pytest.raises(SnapshotReadError, match="incomplete"):
        reads(store).open_calls(CLUB, next(iter(snapshot.techs)))


# --- cached reads ---------------------------------------------------------------------------------------------------


def test_cached_reader_serves_repeated_queries_with_few_requests(store: Stores) -> None:
    snapshot = random_snapshot(1, techs=300, calls_per_tech=3)
    publish(store, snapshot, T1, shard_count=2)
    reader = CachedSnapshotReader(store.snapshots, SOURCES_BY_CLUB, polls=store.polls, clock=Clock(0.0))
    techs = sorted(snapshot.techs)

    for n in range(1_000):
        tech = techs[n % len(techs)]
        assert reader.open_calls(CLUB, tech).call_ids == snapshot.open_call_ids(tech)

    print(f"cached reader: {reader.stats.dynamodb_requests} DynamoDB requests per 1,000 queries")
    assert reader.stats.queries == 1_000
    assert reader.stats.dynamodb_requests == 3  # one pointer read and one read per shard
    assert (reader.stats.pointer_reads, reader.stats.shard_reads) == (1, 2)


def test_cached_reader_sees_a_new_version_once_the_pointer_ages(store: Stores) -> None:
    v1 = random_snapshot(1, techs=100, calls_per_tech=2)
    v2 = random_snapshot(2, techs=100, calls_per_tech=2)
    everyone = frozenset(v1.techs) | frozenset(v2.techs)
    publish(store, v1, T1)
    monotonic = Clock(500.0)
    reader = CachedSnapshotReader(
        store.snapshots, SOURCES_BY_CLUB, polls=store.polls, pointer_max_age=10.0, clock=monotonic
    )
    assert_serves(reader.open_calls, v1, everyone)

    publish(store, v2, T2)
    monotonic.now += 9.9
    assert_serves(reader.open_calls, v1, everyone)
    assert reader.stats.pointer_reads == 1

    monotonic.now += 0.1
    assert_serves(reader.open_calls, v2, everyone)
    assert reader.stats.pointer_reads == 2
    assert reader.cached_shards == 1  # v1's shard was dropped when the pointer moved on


def test_cached_reader_caches_unknown_clubs_and_bounds_its_shards(store: Stores) -> None:
    snapshot = random_snapshot(1, techs=200, calls_per_tech=2)
    publish(store, snapshot, T1, shard_count=6)
    reader = CachedSnapshotReader(store.snapshots, SOURCES_BY_CLUB, polls=store.polls, max_shards=2, clock=Clock(0.0))

    assert reader.open_calls(CLUB + 1, "AB12") is None
    assert reader.open_calls(CLUB + 1, "AB12") is None
    assert reader.stats.dynamodb_requests == 1
    assert_serves(reader.open_calls, snapshot)
    assert reader.cached_shards == 2


def test_cached_reader_never_goes_back_to_an_older_pointer() -> None:
    newer = Pointer(CLUB, "v2", "h2", T2, T2, 1, 1, 1, SOURCE, FORMAT_VERSION, NOW_S)
    older = replace(newer, version="v1", content_hash="h1", fetched_at_ms=T1, checked_at_ms=T1)

    class LaggingStore:
        """A store whose eventually consistent head reads return the new head, then a stale one."""

        table_name = TABLE
        requests = 0

        def __init__(self) -> None:
            self.replies = [Head(SOURCE, T2, {CLUB: newer}), Head(SOURCE, T1, {CLUB: older})]

        def heads(self, sources: list[str]) -> dict[str, Head]:
            self.requests += 1
            return {SOURCE: self.replies.pop(0)}

        def read_shard(self, club_id: int, version: str, shard: int) -> dict[str, tuple[str, ...]]:
            self.requests += 1
            return {"AB12": (version,)}

        def read_shards(self, keys: list[tuple[int, str, int]]) -> dict[tuple[int, str, int], dict]:
            self.requests += 1
            return {key: {"AB12": (key[1],)} for key in keys}

    monotonic = Clock(0.0)
    reader = CachedSnapshotReader(LaggingStore(), SOURCES_BY_CLUB, clock=monotonic)  # type: ignore[arg-type]
    assert reader.open_calls(CLUB, "AB12").call_ids == ("v2",)
    monotonic.now = 60.0
    assert reader.open_calls(CLUB, "AB12").call_ids == ("v2",)


def test_store_reads_use_the_documented_consistency(store: Stores, client: Any) -> None:
    seen: list[tuple[str, bool]] = []

    class Recording(ProxyClient):
        def get_item(self, **kwargs: Any) -> dict[str, Any]:
            seen.append(("get_item", kwargs.get("ConsistentRead", False)))
            return self.inner.get_item(**kwargs)

        def query(self, **kwargs: Any) -> dict[str, Any]:
            seen.append(("query", kwargs.get("ConsistentRead", False)))
            return self.inner.query(**kwargs)

        def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
            seen.extend(("batch_get_item", r.get("ConsistentRead", False)) for r in kwargs["RequestItems"].values())
            return self.inner.batch_get_item(**kwargs)

    snapshot = random_snapshot(1, 5, 2)
    publish(store, snapshot, T1)
    recording = stores(Recording(client), TABLE)
    reads(recording).open_calls(CLUB, next(iter(snapshot.techs)))
    CachedSnapshotReader(recording.snapshots, SOURCES_BY_CLUB).open_calls(CLUB, next(iter(snapshot.techs)))

    assert seen == [("get_item", True), ("query", False), ("batch_get_item", False), ("query", False)]


def test_module_exports_the_schema_constants() -> None:
    assert (store_module.PK, store_module.SK, store_module.TTL_ATTRIBUTE) == ("pk", "sk", "expires_at")


# --- last polls -----------------------------------------------------------------------------------------------------


def a_poll(fetched_at_ms: int, status: str = "ok", **fields: Any) -> Any:
    from cappi.domain.last_poll import LastPoll

    success = fetched_at_ms if status in ("ok", "held") else None
    return LastPoll(SOURCE, status, fetched_at_ms, 1.25, last_success_ms=success, **fields)


def test_a_last_poll_round_trips_and_a_failure_keeps_the_last_success(store: Stores) -> None:
    from cappi.domain.feed import RowExample

    assert store.polls.last_poll(SOURCE) is None
    good = a_poll(
        T1,
        rows=10,
        accepted=9,
        rejected={"tech_id_invalid": 1},
        examples={"tech_id_invalid": (RowExample(4, '"a/b"'),)},
    )
    assert store.units(lambda: store.polls.record_poll(good)) == 1
    assert store.polls.last_poll(SOURCE) == good

    failed = a_poll(T2, "failed", error_code="timeout", error="no answer within 10 s", http_status=None)
    assert store.units(lambda: store.polls.record_poll(failed)) == 1
    assert store.polls.last_poll(SOURCE) == replace(failed, last_success_ms=T1)


def test_an_earlier_sent_poll_never_replaces_a_later_ones_record(store: Stores) -> None:
    later = a_poll(T2, "rejected", error_code="not_json")
    store.polls.record_poll(later)
    store.polls.record_poll(a_poll(T1))
    assert store.polls.last_poll(SOURCE) == later


def test_a_last_poll_fits_one_write_unit_whatever_it_holds(store: Stores, client: Any) -> None:
    from cappi.domain import feed
    from cappi.domain.feed import RowExample

    examples = {
        r: tuple(RowExample(10_000_000 + n, '"' + "x" * 56 + '..."') for n in range(3)) for r in feed.REJECT_REASONS
    }
    huge = a_poll(
        T1,
        "rejected",
        error_code="too_many_rejected",
        error="é" * 300,
        rows=10**9,
        rejected=dict.fromkeys(feed.REJECT_REASONS, 10**8),
        examples=examples,
        warnings={"quoted_call_id": 10**8},
    )
    assert store.units(lambda: store.polls.record_poll(huge)) == 1
    item = client.get_item(TableName=TABLE, Key={PK: {"S": f"SOURCE#{SOURCE}"}, SK: {"S": "POLL"}})["Item"]
    assert item_size(item) <= 1024
    kept = store.polls.last_poll(SOURCE)
    assert (kept.rejected, kept.rows, kept.error_code) == (huge.rejected, huge.rows, huge.error_code)
    assert all(len(v) <= 3 for v in kept.examples.values())
