"""ID rules shared by both sides, the snapshot (hash), and how the store encodes one (shards, parts)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from cappi.adapters.dynamo.shards import MAX_PART_BYTES, decode_shard, encode_shards, shard_count_for, shard_of
from cappi.domain.ids import Reason, call_id_sort_key, path_club_id, tech_id
from cappi.domain.snapshot import build_club_snapshot


def test_tech_id_rules() -> None:
    assert tech_id(" ab12 ") == "AB12"
    assert tech_id("A" * 32) == "A" * 32
    for bad in ["", "A" * 33, "a b", "a/b", "a'b", "é", 5]:
        assert tech_id(bad) is Reason.TECH_ID_INVALID
    assert tech_id(None) is Reason.TECH_ID_MISSING


def test_path_club_id_rules() -> None:
    assert path_club_id("004") == 4
    assert path_club_id("999") == 999
    for bad in ["", "1000", "-1", "1.0", "٣", " 1", "abc"]:
        assert path_club_id(bad) is Reason.CLUB_ID_INVALID


def test_call_ids_sort_naturally() -> None:
    assert sorted(["9999", "8679", "8655R", "10", "8655"], key=call_id_sort_key) == [
        "10",
        "8655",
        "8655R",
        "8679",
        "9999",
    ]


def test_hash_ignores_order_and_duplicates_but_not_content() -> None:
    a = build_club_snapshot(212, {"AB12": [3, 1, 2], "CD34": ["8655R"]})
    b = build_club_snapshot(212, {"CD34": {"8655R"}, "AB12": [1, 2, 3, 3]})
    assert a.content_hash == b.content_hash
    assert a.techs == {"AB12": ("1", "2", "3"), "CD34": ("8655R",)}
    assert a.call_count == 4
    assert a.tech_count == 2
    assert build_club_snapshot(213, {"AB12": [1, 2, 3], "CD34": ["8655R"]}).content_hash != a.content_hash
    assert build_club_snapshot(212, {"AB12": [1, 2], "CD34": ["8655R"]}).content_hash != a.content_hash
    assert build_club_snapshot(212, {"AB12": [1, 2, 3], "CD35": ["8655R"]}).content_hash != a.content_hash


def test_a_call_under_two_techs_counts_once() -> None:
    snap = build_club_snapshot(1, {"A": [5], "B": [5]})
    assert snap.call_count == 1
    assert snap.open_call_ids("B") == ("5",)
    assert snap.open_call_ids("C") == ()


def test_empty_snapshot_encodes_to_one_empty_shard() -> None:
    snap = build_club_snapshot(1, {})
    assert encode_shards(snap) == [[b""]]
    assert decode_shard([b""]) == {}


@given(
    st.dictionaries(st.text("ABC0123456789", min_size=1, max_size=6), st.sets(st.integers(0, 9_999_999), min_size=1))
)
def test_property_shards_round_trip_and_each_tech_lives_in_its_shard(grouped: dict) -> None:
    snap = build_club_snapshot(7, grouped)
    for count in (1, 3):
        shards = encode_shards(snap, count)
        assert len(shards) == count
        merged: dict = {}
        for index, parts in enumerate(shards):
            decoded = decode_shard(parts)
            assert all(shard_of(tech, count) == index for tech in decoded)
            merged.update(decoded)
        assert merged == dict(snap.techs)


def test_big_snapshots_get_more_shards_and_parts_stay_under_the_item_limit() -> None:
    rnd = random.Random(3)
    grouped = {f"T{i}": {rnd.randrange(10**7) for _ in range(4)} for i in range(60_000)}
    grouped["HUGE"] = set(rnd.sample(range(10**7), 300_000))  # one tech whose list alone exceeds an item
    snap = build_club_snapshot(5, grouped)
    shards = encode_shards(snap)
    assert len(shards) == shard_count_for(snap) > 1
    assert all(len(part) <= MAX_PART_BYTES for parts in shards for part in parts)
    assert any(len(parts) > 1 for parts in shards)
    huge_shard = shards[shard_of("HUGE", len(shards))]
    assert decode_shard(huge_shard)["HUGE"] == snap.techs["HUGE"]


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True),
        st.sets(st.integers(min_value=0, max_value=9_999_999), max_size=8),
        max_size=8,
    ),
    st.sets(st.from_regex(r"[0-9]{1,7}[A-Z]", fullmatch=True), max_size=3),
)
def test_property_numeric_call_ids_take_the_short_way_to_the_same_snapshot(
    grouped: dict[str, set[int]], suffixed: set[str]
) -> None:
    # Sets of ints are sorted as ints; the same calls as strings (or beside a quoted "8655R") go through the sort key.
    as_text: dict[str, set[int | str]] = {tech: {str(c) for c in calls} for tech, calls in grouped.items()}
    assert build_club_snapshot(212, grouped) == build_club_snapshot(212, as_text)  # type: ignore[arg-type]
    mixed = {tech: set(calls) | suffixed for tech, calls in grouped.items()}
    with_text = {tech: calls | suffixed for tech, calls in as_text.items()}
    assert build_club_snapshot(212, mixed) == build_club_snapshot(212, with_text)  # type: ignore[arg-type]
    as_lists = {tech: [*calls, *calls] for tech, calls in grouped.items()}
    assert build_club_snapshot(212, as_lists) == build_club_snapshot(212, grouped)  # type: ignore[arg-type]
