"""The benchmark's reference feed is what the ingest issue describes, and deterministic."""

from __future__ import annotations

import ingest as bench


def test_reference_feed_shape() -> None:
    rows = bench.reference_rows(10_000, 2_500, seed=1)
    assert len(rows) == 10_000
    assert len({r["CallId"] for r in rows}) == 10_000
    assert all(1_000_000 <= r["CallId"] <= 9_999_999 for r in rows)
    assert len({r["TechId"] for r in rows}) == 2_500
    assert {r["ClubId"] for r in rows} == {212, 213, 214}
    assert bench.reference_rows(10_000, 2_500, seed=1) == rows


def test_changed_feed_closes_and_opens_the_same_number_of_calls() -> None:
    rows = bench.reference_rows(1_000, 250, seed=1)
    changed = bench.changed(rows, seed=2)
    assert len(changed) == len(rows)
    before, after = {r["CallId"] for r in rows}, {r["CallId"] for r in changed}
    assert 0 < len(before - after) == len(after - before) < 200
