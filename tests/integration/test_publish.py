"""The publish policy against the real store on moto: DESIGN.md section 3, guarantee by guarantee."""

from __future__ import annotations

from typing import Any

import pytest
from support.aws import SNAPSHOT_TABLE
from support.clock import Clock
from support.stores import Stores, stores

from cappi.adapters.dynamo.table import SnapshotWriteError
from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain.publish import RENEW_BELOW_S, Outcome, publish_source
from cappi.domain.snapshot import ClubSnapshot, build_club_snapshot

TABLE = SNAPSHOT_TABLE
SOURCE = "aaa-example"
A, B = 212, 213
T0 = 1_760_000_000_000  # epoch ms
MINUTE = 60_000
HOUR = 60 * MINUTE


@pytest.fixture
def client(dynamodb: Any) -> Any:
    return dynamodb


@pytest.fixture
def clock() -> Clock:
    return Clock.at_ms(T0)


@pytest.fixture
def store(client: Any, clock: Clock) -> Stores:
    return stores(client, TABLE, clock=clock, sleep=lambda _s: None)


def reads(store: Stores) -> SnapshotReader:
    """Club-keyed reads of `store`: both clubs are served by SOURCE."""
    return SnapshotReader(store.snapshots, {A: SOURCE, B: SOURCE})


def snap(club: int, calls: int, *, offset: int = 0, techs: int = 10) -> ClubSnapshot:
    grouped: dict[str, set[int]] = {}
    for n in range(calls):
        grouped.setdefault(f"T{n % techs}", set()).add(1_000_000 + offset + n)
    return build_club_snapshot(club, grouped)


def count_items(client: Any) -> int:
    return client.scan(TableName=TABLE, Select="COUNT")["Count"]


def outcomes(results: list) -> dict[int, Outcome]:
    return {r.club_id: r.outcome for r in results}


def serves(store: Stores, snapshot: ClubSnapshot) -> bool:
    return all(reads(store).open_calls(snapshot.club_id, t).call_ids == c for t, c in snapshot.techs.items())


def test_first_poll_publishes_every_club_of_the_source(store: Stores) -> None:
    a, b = snap(A, 30), snap(B, 0)
    results = publish_source(store.writer, SOURCE, [a, b], T0)
    assert outcomes(results) == {A: Outcome.PUBLISHED, B: Outcome.PUBLISHED}
    assert serves(store, a)
    assert reads(store).open_calls(B, "T0").call_ids == ()
    assert results[0].checked_at_ms == T0


def test_unchanged_poll_writes_no_snapshot_data_and_one_unit(store: Stores, client: Any) -> None:
    a, b = snap(A, 300), snap(B, 40)
    publish_source(store.writer, SOURCE, [a, b], T0)
    items = count_items(client)

    results = publish_source(store.writer, SOURCE, [snap(A, 300), snap(B, 40)], T0 + 10 * MINUTE)

    assert outcomes(results) == {A: Outcome.UNCHANGED, B: Outcome.UNCHANGED}
    assert sum(r.write_units for r in results) == 1
    assert count_items(client) == items
    assert reads(store).current(A).checked_at_ms == T0 + 10 * MINUTE
    assert reads(store).current(A).fetched_at_ms == T0  # the content is still the one first fetched at T0


def test_one_changed_club_writes_only_its_version(store: Stores, client: Any) -> None:
    publish_source(store.writer, SOURCE, [snap(A, 300), snap(B, 40)], T0)
    version_b = reads(store).current(B).version
    a2 = snap(A, 300, offset=7)

    results = publish_source(store.writer, SOURCE, [a2, snap(B, 40)], T0 + 10 * MINUTE)

    assert outcomes(results) == {A: Outcome.PUBLISHED, B: Outcome.UNCHANGED}
    assert serves(store, a2)
    assert reads(store).current(B).version == version_b


def test_later_fetch_wins_whatever_order_polls_finish(store: Stores) -> None:
    early, late = snap(A, 50), snap(A, 50, offset=100)
    publish_source(store.writer, SOURCE, [late], T0 + 10 * MINUTE)

    results = publish_source(store.writer, SOURCE, [early], T0)

    assert outcomes(results) == {A: Outcome.SUPERSEDED}
    assert results[0].write_units == 0  # it saw the newer head and wrote nothing
    assert serves(store, late)


def test_a_poll_overtaken_between_its_read_and_its_commit_changes_nothing(store: Stores, client: Any) -> None:
    early, late = snap(A, 50), snap(A, 50, offset=100)

    class Overtaken:
        """The store as the slow poll sees it: a later poll commits while this one is writing its version."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store.writer, name)

        def commit_head(self, *args: Any, **kwargs: Any) -> bool:
            publish_source(store.writer, SOURCE, [late], T0 + 10 * MINUTE)
            return store.writer.commit_head(*args, **kwargs)

    results = publish_source(Overtaken(), SOURCE, [early], T0)  # type: ignore[arg-type]

    assert outcomes(results) == {A: Outcome.SUPERSEDED}
    assert serves(store, late)


def test_sudden_drop_is_held_until_the_next_poll_confirms_it(store: Stores) -> None:
    big = snap(A, 500)
    publish_source(store.writer, SOURCE, [big, snap(B, 5)], T0)

    held = publish_source(store.writer, SOURCE, [snap(A, 20), snap(B, 5)], T0 + 10 * MINUTE)
    assert outcomes(held) == {A: Outcome.HELD, B: Outcome.UNCHANGED}
    assert serves(store, big)
    assert reads(store).current(A).held_count == 20

    confirmed_drop = snap(A, 30)
    confirmed = publish_source(store.writer, SOURCE, [confirmed_drop, snap(B, 5)], T0 + 20 * MINUTE)
    assert outcomes(confirmed)[A] is Outcome.PUBLISHED
    assert serves(store, confirmed_drop)
    assert reads(store).current(A).held_fetched_at_ms is None


def test_a_drop_that_recovers_is_never_published_and_the_hold_is_cleared(store: Stores) -> None:
    big = snap(A, 500)
    publish_source(store.writer, SOURCE, [big], T0)
    assert outcomes(publish_source(store.writer, SOURCE, [snap(A, 3)], T0 + 10 * MINUTE)) == {A: Outcome.HELD}

    assert outcomes(publish_source(store.writer, SOURCE, [snap(A, 500)], T0 + 20 * MINUTE)) == {A: Outcome.UNCHANGED}
    assert reads(store).current(A).held_fetched_at_ms is None
    # A new drop later is held again: the old hold does not count as its confirmation.
    assert outcomes(publish_source(store.writer, SOURCE, [snap(A, 3)], T0 + 30 * MINUTE)) == {A: Outcome.HELD}
    assert serves(store, big)


@pytest.mark.parametrize(("published", "new"), [(99, 0), (100, 10), (40, 0)])
def test_small_clubs_and_moderate_drops_publish_at_once(store: Stores, published: int, new: int) -> None:
    publish_source(store.writer, SOURCE, [snap(A, published)], T0)
    assert outcomes(publish_source(store.writer, SOURCE, [snap(A, new, offset=9)], T0 + MINUTE)) == {
        A: Outcome.PUBLISHED
    }


def test_a_failed_version_write_leaves_readers_on_the_last_snapshot(client: Any, clock: Clock) -> None:
    good = stores(client, TABLE, clock=clock)
    first = snap(A, 300)
    publish_source(good.writer, SOURCE, [first], T0)

    class Throttled:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
            return {"UnprocessedItems": kwargs["RequestItems"]}

    failing = stores(Throttled(), TABLE, clock=clock, sleep=lambda _s: None, max_attempts=3)
    with pytest.raises(SnapshotWriteError):
        publish_source(failing.writer, SOURCE, [snap(A, 300, offset=1)], T0 + 10 * MINUTE)
    assert serves(good, first)
    assert good.snapshots.head(SOURCE).fetched_at_ms == T0


def poll_unchanged_for(store: Stores, clock: Clock, snapshot: ClubSnapshot, start: int, days: int) -> int:
    """Unchanged polls every 6 hours (the rule depends on time, not on the poll count); returns renewals seen."""
    renewals = 0
    for hours in range(6, days * 24 + 1, 6):
        now = start + hours * HOUR
        clock.now_ms = now
        (result,) = publish_source(store.writer, SOURCE, [snapshot], now)
        assert result.outcome is Outcome.UNCHANGED
        renewals += result.renewed
        # The version readers see always has more than a day left, whatever happens next.
        assert reads(store).current(snapshot.club_id).data_expires_at - now // 1000 >= RENEW_BELOW_S - 6 * 3600 > 86_400
    return renewals


def test_earlier_versions_stay_readable_24_hours_and_the_current_never_expires(store: Stores, clock: Clock) -> None:
    steady, tech = snap(A, 200), "T3"
    publish_source(store.writer, SOURCE, [steady], T0)
    assert poll_unchanged_for(store, clock, steady, T0, days=5) >= 2
    assert reads(store).open_calls(A, tech).call_ids == steady.techs[tech]

    changed_at = T0 + 5 * 24 * HOUR + 10 * MINUTE
    clock.now_ms = changed_at
    changed = snap(A, 200, offset=5)
    publish_source(store.writer, SOURCE, [changed], changed_at)

    clock.now_ms = changed_at + 24 * HOUR  # support asks a day later: the old version is still there
    old = store.history.open_calls_as_of(A, tech, changed_at - MINUTE)
    assert old is not None
    assert old.call_ids == steady.techs[tech]

    assert poll_unchanged_for(store, clock, changed, changed_at, days=4) >= 1
    now_s = clock.now_ms // 1000
    assert store.history.open_calls_as_of(A, tech, changed_at - MINUTE) is None  # expired: TTL deletes it
    assert store.writer.manifest(A, reads(store).current(A).version).expires_at > now_s  # the current one was renewed
    assert reads(store).open_calls(A, tech).call_ids == changed.techs[tech]
