"""The head's body record: when a poll may take it for a parse of its body, and how it is stored."""

from __future__ import annotations

import dataclasses

import pytest

from cappi.domain.body_record import BodyRecord, body_digest, parse_context, validator
from cappi.domain.heads import Head, Pointer
from cappi.domain.poll import usable_record
from cappi.domain.registry import ClubSource
from cappi.domain.row_example import RowExample

CONTEXT = parse_context({212, 213}, snapshot_format=1, max_rejected_ratio=0.05)
RECORD = BodyRecord(
    digest=body_digest(b"{}"),
    context=CONTEXT,
    rows=10,
    accepted=9,
    duplicates=1,
    rejected={"tech_id_invalid": 1},
    warnings={"quoted_call_id": 2},
    examples={"tech_id_invalid": (RowExample(3, '"bad/tech"'),)},
    body_bytes=2,
    etag='W/"x"',
    last_modified="Wed, 02 Dec 2026 10:00:00 GMT",
)
SOURCE = ClubSource(name="aaa", club_ids=frozenset({212, 213}), base_url="https://club.example")


def pointer(club_id: int, **changes: object) -> Pointer:
    base = Pointer(club_id, "v1", "h", 1, 1, 1, 5, 2, "aaa", 1, 2_000_000_000)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def head(**clubs: Pointer) -> Head:
    chosen = clubs or {"212": pointer(212), "213": pointer(213)}
    return Head("aaa", 1, {int(k): p for k, p in chosen.items()}, body=RECORD)


def test_the_record_stands_for_a_parse_only_when_nothing_else_changed() -> None:
    assert usable_record(head(), SOURCE, CONTEXT) is RECORD
    assert usable_record(None, SOURCE, CONTEXT) is None
    assert usable_record(dataclasses.replace(head(), body=None), SOURCE, CONTEXT) is None
    held = head(**{"212": pointer(212, held_hash="g", held_count=1, held_fetched_at_ms=5), "213": pointer(213)})
    assert usable_record(held, SOURCE, CONTEXT) is None
    assert usable_record(head(**{"212": pointer(212)}), SOURCE, CONTEXT) is None  # a club the head lacks
    for other in (
        parse_context({212, 213, 214}, snapshot_format=1, max_rejected_ratio=0.05),
        parse_context({212, 213}, snapshot_format=2, max_rejected_ratio=0.05),
        parse_context({212, 213}, snapshot_format=1, max_rejected_ratio=0.1),
    ):
        assert other != CONTEXT
        assert usable_record(head(), SOURCE, other) is None


def test_the_record_reads_back_as_written() -> None:
    assert BodyRecord.from_text(RECORD.to_text()) == RECORD
    bare = BodyRecord(digest="d", context="c", rows=0, accepted=0)
    assert BodyRecord.from_text(bare.to_text()) == bare


@pytest.mark.parametrize("value", [None, "", 5, "x" * 201, '"a"\r\nX-Evil: 1', 'W/"caf\u00e9"'])
def test_a_validator_that_cannot_be_sent_back_as_it_is_is_not_kept(value: object) -> None:
    assert validator(value) is None
    assert RECORD.with_validators(value, value).has_validators is False  # type: ignore[arg-type]


def test_the_digest_is_the_bodys_sha256() -> None:
    assert body_digest(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
