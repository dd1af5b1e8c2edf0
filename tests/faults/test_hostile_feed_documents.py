"""Hostile feed documents, through the parser and through the ingest Lambda end to end.

Each document is one a broken or malicious club server could send. For every one: no exception escapes, the
document (or its rows) is rejected with a stable code, and what readers were served before stays served.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws
from support.aws import SNAPSHOT_TABLE, snapshot_table
from support.club_servers import LoopbackServer, respond, serve
from support.stores import Stores, stores

from cappi.adapters.club_client import ClubFeedClient
from cappi.adapters.secrets import StaticSecrets
from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain import feed
from cappi.domain.feed import FeedRejected, parse_feed
from cappi.domain.registry import parse_registry
from cappi.handlers import ingest

FEED = "/service/calls/status"
CLUBS = (212, 213)
GOOD_ROWS = [(8679, 212, "AB12"), (9999, 212, "AB12"), (8655, 213, "CD34")]
ROWS = 20  # hostile rows per row-level document: all of them rejected, so the document is too


def envelope(rows: str) -> bytes:
    return ('{"Result": {"Calls": [' + rows + "]}}").encode()


def good_rows() -> str:
    return ", ".join(json.dumps({"CallId": c, "ClubId": k, "TechId": t}) for c, k, t in GOOD_ROWS)


GOOD = envelope(good_rows())


def repeated(row_text: str) -> bytes:
    return envelope(", ".join([row_text] * ROWS))


def deep(depth: int, opener: str = "[", closer: str = "]", leaf: str = "") -> bytes:
    """The good rows plus an ignored field nested so the whole document is `depth` deep."""
    inner = depth - 4  # document, Result, Calls and the row
    value = opener * inner + leaf + closer * inner
    return envelope(good_rows() + ', {"CallId": 1, "ClubId": 212, "TechId": "ZZ1", "Extra": ' + value + "}")


def with_constant(template: str, constant: str) -> bytes:
    return envelope(good_rows() + ", " + template.replace("$", constant))


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    code: str | None  # the whole-document rejection code; None: accepted
    rejected: dict[str, int] = field(default_factory=dict)  # rows rejected by reason, when they are counted


CORPUS = [
    # nesting
    Case("deep-arrays-100k", b'{"Result": {"Calls": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "too_deep"),
    Case("deep-objects-100k", envelope('{"a": ' * 100_000 + "1" + "}" * 100_000), "too_deep"),
    Case("deep-unclosed-100k", b'{"Result": {"Calls": [' + b'{"a": [' * 50_000, "too_deep"),
    Case("deep-arrays-over-limit", deep(feed.MAX_DEPTH + 1), "too_deep"),
    Case("deep-objects-over-limit", deep(feed.MAX_DEPTH + 1, '{"x": ', "}", "1"), "too_deep"),
    Case("deep-arrays-at-limit", deep(feed.MAX_DEPTH), None),
    Case("deep-objects-at-limit", deep(feed.MAX_DEPTH, '{"x": ', "}", "1"), None),
    Case(
        "brackets-in-strings",
        envelope(good_rows() + ', {"CallId": 2, "ClubId": 212, "TechId": "Z", "N": "' + "[" * 9000 + '"}'),
        None,
    ),
    # numbers JSON does not have
    *(
        Case(f"{constant}-in-{where}", with_constant(template, constant), "not_json")
        for constant in ("NaN", "Infinity", "-Infinity")
        for where, template in (
            ("CallId", '{"CallId": $, "ClubId": 212, "TechId": "AB12"}'),
            ("ClubId", '{"CallId": 1, "ClubId": $, "TechId": "AB12"}'),
            ("TechId", '{"CallId": 1, "ClubId": 212, "TechId": $}'),
            ("ignored-field", '{"CallId": 1, "ClubId": 212, "TechId": "AB12", "Score": $}'),
            ("row", "$"),
        )
    ),
    Case("NaN-in-envelope", b'{"Result": {"Calls": []}, "Version": NaN}', "not_json"),
    # repeated keys
    Case(
        "exact-duplicate-CallId",
        repeated('{"CallId": 1111, "CallId": 2222, "ClubId": 212, "TechId": "AB12"}'),
        "too_many_rejected",
        {feed.AMBIGUOUS_FIELD: ROWS},
    ),
    Case(
        "exact-duplicate-TechId",
        repeated('{"CallId": 1111, "ClubId": 212, "TechId": "AB12", "TechId": "ZZ99"}'),
        "too_many_rejected",
        {feed.AMBIGUOUS_FIELD: ROWS},
    ),
    Case(
        "case-variant-duplicate-ClubId",
        repeated('{"CallId": 1111, "ClubId": 212, "clubid": 213, "TechId": "AB12"}'),
        "too_many_rejected",
        {feed.AMBIGUOUS_FIELD: ROWS},
    ),
    Case(
        "escaped-duplicate-CallId",
        repeated('{"CallId": 1111, "Call\\u0049d": 2222, "ClubId": 212, "TechId": "AB12"}'),
        "too_many_rejected",
        {feed.AMBIGUOUS_FIELD: ROWS},
    ),
    Case("duplicate-Result", b'{"Result": {"Calls": []}, "Result": {"Calls": []}}', "bad_shape"),
    Case("duplicate-Calls", envelope(good_rows())[:-2] + b', "Calls": []}}', "bad_shape"),
    Case("case-variant-Result", b'{"Result": {"Calls": []}, "RESULT": {"Calls": []}}', "bad_shape"),
    # text that is not UTF-8 JSON
    Case(
        "lone-surrogate-TechId",
        repeated('{"CallId": 1, "ClubId": 212, "TechId": "\\ud800"}'),
        "too_many_rejected",
        {feed.TECH_ID_INVALID: ROWS},
    ),
    Case("invalid-utf8", GOOD.replace(b'"AB12"', b'"AB\xff12"', 1), "not_json"),
    Case("encoded-surrogate", GOOD.replace(b'"AB12"', b'"AB\xed\xa0\x80"', 1), "not_json"),
    Case("utf8-bom", b"\xef\xbb\xbf" + GOOD, None),
    Case("utf16-bom", GOOD.decode().encode("utf-16"), "not_json"),
    Case("utf16-le", GOOD.decode().encode("utf-16-le"), "not_json"),
    Case("utf16-be", GOOD.decode().encode("utf-16-be"), "not_json"),
    Case("utf32", GOOD.decode().encode("utf-32"), "not_json"),
    Case("raw-control-character", GOOD.replace(b'"AB12"', b'"AB\x0112"', 1), "not_json"),
    Case("raw-nul", GOOD.replace(b'"AB12"', b'"AB\x0012"', 1), "not_json"),
    Case(
        "escaped-control-character",
        repeated('{"CallId": 1, "ClubId": 212, "TechId": "AB\\u000012"}'),
        "too_many_rejected",
        {feed.TECH_ID_INVALID: ROWS},
    ),
    # huge numbers
    Case(
        "float-beyond-range",
        repeated('{"CallId": 1e400, "ClubId": 212, "TechId": "AB12"}'),
        "too_many_rejected",
        {feed.CALL_ID_INVALID: ROWS},
    ),
    Case("int-of-5000-digits", envelope('{"CallId": 1' + "0" * 5000 + ', "ClubId": 212, "TechId": "A"}'), "not_json"),
    Case("int-of-5000-digits-ignored", envelope(good_rows() + ', {"X": ' + "9" * 5000 + "}"), "not_json"),
    # not the documented shape
    Case("empty", b"", "not_json"),
    Case("whitespace", b" \r\n\t ", "not_json"),
    Case("truncated", GOOD[: len(GOOD) // 2], "not_json"),
    Case("html", b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "not_json"),
    Case("null", b"null", "bad_shape"),
    Case("top-level-array", b"[" + GOOD + b"]", "bad_shape"),
    Case("top-level-string", json.dumps(GOOD.decode()).encode(), "bad_shape"),
    Case("calls-object", b'{"Result": {"Calls": {"CallId": 1, "ClubId": 212, "TechId": "AB12"}}}', "bad_shape"),
    Case("calls-string", b'{"Result": {"Calls": "[]"}}', "bad_shape"),
    Case("calls-null", b'{"Result": {"Calls": null}}', "bad_shape"),
    Case(
        "rows-not-objects",
        envelope(", ".join(['[8679, 212, "AB12"]', '"8679"', "null", "8679", "true"] * 4)),
        "too_many_rejected",
        {feed.ROW_NOT_OBJECT: 20},
    ),
]


def case_ids(case: Case) -> str:
    return case.id


def test_every_document_code_is_documented() -> None:
    assert {case.code for case in CORPUS} - {None} <= set(feed.DOCUMENT_REASON_TEXT)


@pytest.mark.parametrize("case", CORPUS, ids=case_ids)
def test_the_parser_rejects_each_hostile_document_with_its_code(case: Case) -> None:
    if case.code is None:
        parsed = parse_feed(case.body, CLUBS)
        assert parsed.by_club[212]["AB12"] == {8679, 9999}
        return
    with pytest.raises(FeedRejected) as caught:
        parse_feed(case.body, CLUBS)
    assert caught.value.code == case.code
    assert str(caught.value)  # a sentence for people
    parsed = caught.value.parsed
    if case.rejected:
        assert parsed is not None
        assert parsed.rejected == case.rejected
        for examples in parsed.examples.values():
            for example in examples:
                example.value.encode("utf-8")  # storable and printable, whatever the feed held


@pytest.mark.parametrize("case", CORPUS, ids=case_ids)
def test_the_parser_accepts_str_bodies_the_same_way(case: Case) -> None:
    try:
        text = case.body.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: has no str form to test")
    try:
        parse_feed(text, CLUBS)
        code = None
    except FeedRejected as exc:
        code = exc.code
    assert code == case.code


# --- end to end: the ingest Lambda against a loopback club and moto ---


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route(FEED, respond(body=GOOD))
        yield server


@dataclass
class Ingest:
    source: str
    run: Callable[[], dict[str, Any]]
    reader: SnapshotReader
    store: Stores

    def served(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.reader.open_calls(212, "AB12").call_ids, self.reader.open_calls(213, "CD34").call_ids


_SOURCE_NUMBERS = itertools.count(1)


@pytest.fixture(scope="module")
def table() -> Iterator[Any]:
    """One moto table for the module (creating one per case costs about a second each): every case polls as a
    source of its own, so cases cannot see each other's snapshots."""
    with mock_aws():
        yield snapshot_table()


@pytest.fixture
def ingest_lambda(club: LoopbackServer, table: Any, lambda_context: Any) -> Ingest:
    source = f"hostile-{next(_SOURCE_NUMBERS)}"
    registry = parse_registry({"sources": [{"name": source, "club_ids": list(CLUBS), "base_url": club.base_url}]})
    store = stores(table, SNAPSHOT_TABLE)
    deps = ingest.IngestDependencies(registry, ClubFeedClient(StaticSecrets({})), store.writer, poll_log=store.polls)
    handler = ingest.make_handler(lambda: deps)

    def run() -> dict[str, Any]:
        return handler({"source": source, "scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context)

    reader = SnapshotReader(stores(table, SNAPSHOT_TABLE).snapshots, dict.fromkeys(CLUBS, source))
    return Ingest(source, run, reader, store)


SERVED = (("8679", "9999"), ("8655",))


@pytest.mark.parametrize("case", CORPUS, ids=case_ids)
def test_ingest_keeps_serving_the_last_good_snapshot_through_each_hostile_document(
    case: Case, club: LoopbackServer, ingest_lambda: Ingest
) -> None:
    assert ingest_lambda.run()["status"] == "ok"
    assert ingest_lambda.served() == SERVED
    club.route(FEED, respond(body=case.body))

    result = ingest_lambda.run()  # no exception: a hostile club is a result, not a crash

    json.dumps(result, ensure_ascii=False).encode("utf-8")  # the Lambda's return value is valid JSON text
    if case.code is None:
        assert (result["status"], result["error_code"]) == ("ok", None)
    else:
        assert (result["status"], result["error_code"]) == ("rejected", case.code)
        assert result["rejected"] == case.rejected
        recorded = ingest_lambda.store.polls.last_poll(ingest_lambda.source)
        assert recorded is not None
        assert (recorded.status, recorded.error_code) == ("rejected", case.code)
    assert ingest_lambda.served() == SERVED

    club.route(FEED, respond(body=GOOD))
    assert ingest_lambda.run()["status"] == "ok"  # and the club recovers by itself on the next poll
    assert ingest_lambda.served() == SERVED
