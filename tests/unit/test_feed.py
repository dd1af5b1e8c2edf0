"""Feed parsing and validation: the rules of DESIGN.md section 2, example by example and as properties."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cappi.domain import feed
from cappi.domain.feed import FeedRejected, Parser

ParseFeed = Callable[..., feed.ParsedFeed]


@pytest.fixture(scope="module", params=[Parser.FAST, Parser.REFERENCE], ids=["fast path", "reference"])
def parse_feed(request: pytest.FixtureRequest) -> ParseFeed:
    """Every test here runs twice: through parse_feed as ingest calls it (the fast path where it applies, else the
    reference) and with the reference parser alone, so the reference keeps meeting all its own rules."""
    return functools.partial(feed.parse_feed, parser=request.param)


def doc(*rows: object) -> bytes:
    return json.dumps({"Result": {"Calls": list(rows)}}).encode()


def row(call: object = 1234567, club: object = 212, tech: object = "AB12") -> dict:
    return {"CallId": call, "ClubId": club, "TechId": tech}


def calls_of(parsed: feed.ParsedFeed, club: int, tech: str) -> set:
    return parsed.by_club[club].get(tech, set())


def test_documented_example_with_both_spellings_of_field_names(parse_feed: ParseFeed) -> None:
    body = b"""{"Result": {"Calls": [
        {"CallId": 8679, "ClubID": 212, "TechID": "ab12"},
        {"CallId": 9999, "ClubId": 212, "TechId": "AB12"}
    ]}}"""
    parsed = parse_feed(body, {212})
    assert calls_of(parsed, 212, "AB12") == {8679, 9999}
    assert parsed.rows == 2
    assert parsed.accepted == 2
    assert parsed.rejected == {}


def test_keys_are_case_insensitive_at_every_level(parse_feed: ParseFeed) -> None:
    body = json.dumps({"result": {"CALLS": [{"callid": 1, "CLUBID": 5, "techid": "x1"}]}}).encode()
    assert calls_of(parse_feed(body, {5}), 5, "X1") == {1}


def test_rows_with_mixed_spellings_in_one_feed(parse_feed: ParseFeed) -> None:
    body = doc(row(1), {"callId": 2, "clubId": 212, "techId": "AB12"}, {"CALLID": 3, "CLUBID": 212, "TECHID": "ab12"})
    assert calls_of(parse_feed(body, {212}), 212, "AB12") == {1, 2, 3}


def test_extra_fields_are_ignored(parse_feed: ParseFeed) -> None:
    body = doc({**row(7), "Status": "open", "Priority": 3})
    parsed = parse_feed(body, {212})
    assert calls_of(parsed, 212, "AB12") == {7}
    assert parsed.rejected == {}


def test_field_given_twice_in_different_case_is_ambiguous(parse_feed: ParseFeed) -> None:
    rows = [row(i) for i in range(1, 100)] + [{"CallId": 1, "callid": 2, "ClubId": 212, "TechId": "A"}]
    parsed = parse_feed(doc(*rows), {212})
    assert parsed.rejected == {feed.AMBIGUOUS_FIELD: 1}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (0, 0),
        (9_999_999, 9_999_999),
        ("8655R", "8655R"),
        ("0012", 12),
        ("08655R", "8655R"),
        ("1234567", 1234567),
    ],
)
def test_valid_call_ids(parse_feed: ParseFeed, call: object, expected: object) -> None:
    assert calls_of(parse_feed(doc(row(call)), {212}), 212, "AB12") == {expected}


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (10_000_000, feed.CALL_ID_INVALID),
        (-1, feed.CALL_ID_INVALID),
        (12.0, feed.CALL_ID_INVALID),
        (12.5, feed.CALL_ID_INVALID),
        (True, feed.CALL_ID_INVALID),
        (None, feed.CALL_ID_MISSING),
        ("12345678", feed.CALL_ID_INVALID),
        ("8655r", feed.CALL_ID_INVALID),
        ("86 55", feed.CALL_ID_INVALID),
        ("1,234", feed.CALL_ID_INVALID),
        ("", feed.CALL_ID_INVALID),
        ([1], feed.CALL_ID_INVALID),
    ],
)
def test_invalid_call_ids_are_rejected_by_reason(parse_feed: ParseFeed, call: object, reason: str) -> None:
    rows = [row(i) for i in range(1, 40)] + [row(call)]
    parsed = parse_feed(doc(*rows), {212}, max_rejected_ratio=0.5)
    assert parsed.rejected == {reason: 1}
    assert parsed.accepted == 39


def test_quoted_call_ids_are_accepted_with_a_warning(parse_feed: ParseFeed) -> None:
    parsed = parse_feed(doc(row("8655R"), row(8679)), {212})
    assert parsed.warnings == {feed.QUOTED_CALL_ID_WARNING: 1}


@pytest.mark.parametrize(
    ("club", "reason"),
    [
        (999, feed.CLUB_NOT_OWNED),
        (0, feed.CLUB_NOT_OWNED),
        (1000, feed.CLUB_ID_INVALID),
        (-212, feed.CLUB_ID_INVALID),
        ("212", feed.CLUB_ID_INVALID),
        (212.0, feed.CLUB_ID_INVALID),
        (True, feed.CLUB_ID_INVALID),
        (None, feed.CLUB_ID_MISSING),
    ],
)
def test_club_ids_outside_the_source_are_rejected(parse_feed: ParseFeed, club: object, reason: str) -> None:
    rows = [row(i) for i in range(1, 40)] + [row(77, club)]
    parsed = parse_feed(doc(*rows), {212, 213}, max_rejected_ratio=0.5)
    assert parsed.rejected == {reason: 1}
    assert 999 not in parsed.by_club


def test_missing_fields(parse_feed: ParseFeed) -> None:
    rows = [row(i) for i in range(1, 40)] + [{"ClubId": 212, "TechId": "A"}, {"CallId": 5, "TechId": "A"}]
    rows.append({"CallId": 5, "ClubId": 212})
    parsed = parse_feed(doc(*rows), {212}, max_rejected_ratio=0.5)
    assert parsed.rejected == {feed.CALL_ID_MISSING: 1, feed.CLUB_ID_MISSING: 1, feed.TECH_ID_MISSING: 1}


@pytest.mark.parametrize("tech", ["AB12", "ab12", "  ab12 ", "Z", "A" * 32, "0000"])
def test_valid_tech_ids_are_trimmed_and_upper_cased(parse_feed: ParseFeed, tech: str) -> None:
    parsed = parse_feed(doc(row(1, 212, tech)), {212})
    assert list(parsed.by_club[212]) == [tech.strip().upper()]


@pytest.mark.parametrize(
    "tech",
    [
        "",
        "   ",
        "A" * 33,
        "ab'12",
        'ab"12',
        "ab/12",
        "ab\\12",
        "ab 12",
        "ab-12",
        "ab_12",
        "ábc",
        "１２",
        "ab\n12",
        12,
        None,
    ],
)
def test_invalid_tech_ids_are_rejected(parse_feed: ParseFeed, tech: object) -> None:
    rows = [row(i) for i in range(1, 40)] + [row(99, 212, tech)]
    parsed = parse_feed(doc(*rows), {212}, max_rejected_ratio=0.5)
    assert parsed.rejected_total == 1
    assert parsed.accepted == 39


def test_duplicates_merge_and_a_call_under_two_techs_stays_with_both(parse_feed: ParseFeed) -> None:
    parsed = parse_feed(doc(row(1, 212, "a1"), row(1, 212, "A1"), row(1, 212, "b2")), {212})
    assert calls_of(parsed, 212, "A1") == {1}
    assert calls_of(parsed, 212, "B2") == {1}
    assert parsed.duplicates == 1


def test_every_owned_club_is_present_even_without_calls(parse_feed: ParseFeed) -> None:
    parsed = parse_feed(doc(row(1, 212)), {212, 213})
    assert parsed.by_club[213] == {}


def test_empty_calls_array_is_a_valid_empty_feed(parse_feed: ParseFeed) -> None:
    parsed = parse_feed(doc(), {212})
    assert parsed.rows == 0
    assert parsed.by_club == {212: {}}


def test_five_percent_of_rows_may_fail_but_not_more(parse_feed: ParseFeed) -> None:
    good = [row(i) for i in range(1, 96)]
    five_bad = [row(i, 212, "bad/tech") for i in range(5)]
    assert parse_feed(doc(*good, *five_bad), {212}).rejected_total == 5
    with pytest.raises(FeedRejected) as caught:
        parse_feed(doc(*good, *five_bad, row(0, 212, "x y")), {212})
    assert caught.value.code == "too_many_rejected"
    assert "tech_id_invalid" in str(caught.value)
    assert caught.value.parsed is not None
    assert caught.value.parsed.rejected == {feed.TECH_ID_INVALID: 6}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "not_json"),
        (b"   \n", "not_json"),
        (b"<html><body>502 Bad Gateway</body></html>", "not_json"),
        (b'{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "Tech', "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b"[]", "bad_shape"),
        (b"null", "bad_shape"),
        (b'"Result"', "bad_shape"),
        (b"{}", "bad_shape"),
        (b'{"Result": null}', "bad_shape"),
        (b'{"Result": []}', "bad_shape"),
        (b'{"Result": {}}', "bad_shape"),
        (b'{"Result": {"Calls": {}}}', "bad_shape"),
        (b'{"Result": {"Calls": "none"}}', "bad_shape"),
        (b'{"Calls": []}', "bad_shape"),
        (b'{"Result": {"Calls": []}, "result": {"Calls": []}}', "bad_shape"),
    ],
)
def test_documents_of_the_wrong_shape_are_rejected_whole(parse_feed: ParseFeed, body: bytes, code: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_feed(body, {212})
    assert caught.value.code == code


def test_html_page_is_named_in_the_message(parse_feed: ParseFeed) -> None:
    with pytest.raises(FeedRejected, match="HTML"):
        parse_feed(b"<!DOCTYPE html><title>Error</title>", {212})


def test_utf8_byte_order_mark_is_tolerated(parse_feed: ParseFeed) -> None:
    assert parse_feed(b"\xef\xbb\xbf" + doc(row(5)), {212}).accepted == 1


def test_rows_that_are_not_objects(parse_feed: ParseFeed) -> None:
    rows = [row(i) for i in range(1, 40)] + [[1, 212, "A"], "x", None]
    parsed = parse_feed(doc(*rows), {212}, max_rejected_ratio=0.5)
    assert parsed.rejected == {feed.ROW_NOT_OBJECT: 3}


def test_large_feed_of_over_100000_calls(parse_feed: ParseFeed) -> None:
    rows = [row(i, 212 + i % 3, f"T{i % 25000}") for i in range(120_000)]
    parsed = parse_feed(doc(*rows), {212, 213, 214})
    assert parsed.accepted == 120_000
    pairs = {(212 + i % 3, i % 25000) for i in range(120_000)}
    assert sum(len(t) for t in parsed.by_club.values()) == len(pairs)
    assert calls_of(parsed, 213, "T1") == {i for i in range(120_000) if i % 3 == 1 and i % 25000 == 1}


# --- properties -----------------------------------------------------------------------------------------------

valid_tech = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=32)
valid_row = st.fixed_dictionaries(
    {"CallId": st.integers(0, 9_999_999), "ClubId": st.sampled_from([212, 213]), "TechId": valid_tech}
)
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
any_row = st.one_of(
    valid_row,
    st.fixed_dictionaries({"CallId": junk, "ClubId": junk, "TechId": junk}),
    st.dictionaries(st.sampled_from(["CallId", "callid", "ClubID", "clubid", "TechId", "TECHID", "x"]), junk),
    junk,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_row, max_size=60))
def test_property_valid_rows_are_all_kept_grouped_by_club_and_tech(parse_feed: ParseFeed, rows: list[dict]) -> None:
    parsed = parse_feed(doc(*rows), {212, 213})
    assert parsed.rejected == {}
    expected: dict[int, dict[str, set]] = {212: {}, 213: {}}
    for r in rows:
        expected[r["ClubId"]].setdefault(r["TechId"].upper(), set()).add(r["CallId"])
    assert parsed.by_club == expected
    assert parsed.duplicates == len(rows) - sum(len(c) for t in expected.values() for c in t.values())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_row, max_size=40))
def test_property_any_rows_either_parse_consistently_or_reject_whole(parse_feed: ParseFeed, rows: list) -> None:
    try:
        parsed = parse_feed(doc(*rows), {212, 213})
    except FeedRejected as exc:
        assert exc.code == "too_many_rejected"
        assert exc.parsed is not None
        assert exc.parsed.rejected_ratio > 0.05
        return
    assert parsed.accepted + parsed.rejected_total == parsed.rows == len(rows)
    assert set(parsed.rejected) <= set(feed.REJECT_REASONS)
    for club, techs in parsed.by_club.items():
        assert club in (212, 213)
        for tech, calls in techs.items():
            assert tech.isascii() and tech.isalnum() and tech == tech.upper() and 1 <= len(tech) <= 32
            for call in calls:
                text = str(call)
                assert feed.QUOTED_CALL_ID.fullmatch(text)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_never_crash(parse_feed: ParseFeed, body: bytes) -> None:
    try:
        parse_feed(body, {212})
    except FeedRejected as exc:
        assert exc.code in feed.DOCUMENT_REASON_TEXT


def test_rejected_rows_come_with_examples_naming_row_and_value(parse_feed: ParseFeed) -> None:
    from cappi.domain.feed import MAX_EXAMPLES, RowExample

    good = [{"CallId": n, "ClubId": 212, "TechId": "AB12"} for n in range(200)]
    bad = [
        {"CallId": 1.5, "ClubId": 212, "TechId": "AB12"},
        {"CallId": 7, "ClubId": 999, "TechId": "AB12"},
        {"CallId": 8, "ClubId": 212, "TechId": " a/b "},
        "not a row",
        {"CallId": 9, "ClubId": 212},
        {"CallId": 10, "callid": 11, "ClubId": 212, "TechId": "AB12"},
        {"CallId": 12, "ClubId": 212, "TechId": "X" * 100},
    ]
    parsed = parse_feed(json.dumps({"Result": {"Calls": good + bad}}).encode(), [212], max_rejected_ratio=1.0)

    assert parsed.examples == {
        "call_id_invalid": [RowExample(200, "1.5")],
        "club_not_owned": [RowExample(201, "999")],
        "tech_id_invalid": [RowExample(202, '" a/b "'), RowExample(206, '"' + "X" * 56 + "...")],
        "row_not_object": [RowExample(203, '"not a row"')],
        "tech_id_missing": [RowExample(204, "(missing)")],
        "ambiguous_field": [RowExample(205, '["CallId", "ClubId", "TechId", "callid"]')],
    }
    assert {reason: len(kept) for reason, kept in parsed.examples.items()} == {
        reason: min(count, MAX_EXAMPLES) for reason, count in parsed.rejected.items()
    }


def test_examples_stop_at_the_limit_while_counts_go_on(parse_feed: ParseFeed) -> None:
    from cappi.domain.feed import MAX_EXAMPLES

    rows = [{"CallId": -n, "ClubId": 212, "TechId": "AB12"} for n in range(1, 50)]
    parsed = parse_feed(json.dumps({"Result": {"Calls": rows}}).encode(), [212], max_rejected_ratio=1.0)

    assert parsed.rejected == {"call_id_invalid": 49}
    assert [e.index for e in parsed.examples["call_id_invalid"]] == list(range(MAX_EXAMPLES))
    assert parsed.examples["call_id_invalid"][0].value == "-1"


def test_every_rule_and_warning_has_words_for_people() -> None:
    assert set(feed.REASON_TEXT) == set(feed.REJECT_REASONS)
    assert set(feed.WARNING_TEXT) == {feed.QUOTED_CALL_ID_WARNING}
    assert set(feed.DOCUMENT_REASON_TEXT) == {"not_json", "too_deep", "bad_shape", "too_many_rejected"}


# --- strict decoding: nesting, NaN/Infinity, repeated keys, encodings ---------------------------------------------


def rejection(parse_feed: ParseFeed, body: bytes | str) -> FeedRejected:
    with pytest.raises(FeedRejected) as caught:
        parse_feed(body, {212})
    return caught.value


def nested_in_a_row(depth: int, kind: str = "[") -> bytes:
    """A valid feed whose one row carries an ignored field nested so the document is `depth` deep."""
    inner = depth - 4  # document, Result, Calls and the row itself
    value = "[" * inner + "]" * inner if kind == "[" else '{"x":' * inner + "1" + "}" * inner
    return ('{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12", "Extra": ' + value + "}]}}").encode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"Result": {"Calls": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b'{"Result": {"Calls": [' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"]}}",
        b"[" * 100_000,  # never closed
        b'{"Result": {"Calls": [' + b'{"a": [' * 50_000,
    ],
    ids=["arrays", "objects", "unclosed-arrays", "unclosed-mixed"],
)
def test_a_deeply_nested_document_is_rejected_whole_not_a_crash(parse_feed: ParseFeed, body: bytes) -> None:
    assert rejection(parse_feed, body).code == "too_deep"


@pytest.mark.parametrize("kind", ["[", "{"])
def test_nesting_up_to_the_limit_is_read_and_one_level_more_is_too_deep(parse_feed: ParseFeed, kind: str) -> None:
    assert parse_feed(nested_in_a_row(feed.MAX_DEPTH, kind), {212}).accepted == 1
    too_deep = rejection(parse_feed, nested_in_a_row(feed.MAX_DEPTH + 1, kind))
    assert too_deep.code == "too_deep"
    assert str(feed.MAX_DEPTH) in str(too_deep)


def test_brackets_inside_strings_do_not_count_as_nesting(parse_feed: ParseFeed) -> None:
    brackets = "[" * 500 + '\\"' + "{" * 500  # an escaped backslash and an escaped quote among them
    body = json.dumps({"Result": {"Calls": [{**row(1), "Note": brackets}]}}).encode()
    assert parse_feed(body, {212}).accepted == 1


def test_a_truncated_body_is_still_not_json(parse_feed: ParseFeed) -> None:
    assert rejection(parse_feed, doc(row(1), row(2))[:-7]).code == "not_json"
    assert rejection(parse_feed, b'{"Result": {"Calls": [{"CallId": 1, "TechId": "a[[[').code == "not_json"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "template",
    [
        '{"Result": {"Calls": [{"CallId": %s, "ClubId": 212, "TechId": "AB12"}]}}',
        '{"Result": {"Calls": [{"CallId": 1, "ClubId": %s, "TechId": "AB12"}]}}',
        '{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12", "Score": %s}]}}',
        '{"Result": {"Calls": [], "Generated": %s}}',
        '{"Result": {"Calls": [%s]}}',
    ],
    ids=["CallId", "ClubId", "ignored-field", "envelope", "row"],
)
def test_nan_and_infinity_are_not_json(parse_feed: ParseFeed, constant: str, template: str) -> None:
    refused = rejection(parse_feed, (template % constant).encode())
    assert refused.code == "not_json"
    assert constant in str(refused)


@pytest.mark.parametrize(
    "fields",
    [
        '"CallId": 1111, "CallId": 2222, "ClubId": 212, "TechId": "AB12"',
        '"CallId": 1111, "ClubId": 212, "ClubId": 213, "TechId": "AB12"',
        '"CallId": 1111, "ClubId": 212, "TechId": "AB12", "TechId": "CD34"',
        '"CallId": 1111, "callid": 2222, "CallId": 3333, "ClubId": 212, "TechId": "AB12"',
        '"CallId": 1111, "Call\\u0049d": 2222, "ClubId": 212, "TechId": "AB12"',  # the same name, escaped
        '"CallId": 1111, "CallId": 1111, "ClubId": 212, "TechId": "AB12"',  # even with the same value
    ],
    ids=["CallId", "ClubId", "TechId", "exact-and-case", "escaped", "same-value"],
)
def test_a_field_given_twice_exactly_is_ambiguous(parse_feed: ParseFeed, fields: str) -> None:
    rows = ",".join([json.dumps(row(n)) for n in range(1, 40)] + ["{" + fields + "}"])
    body = ('{"Result": {"Calls": [' + rows + "]}}").encode()
    parsed = parse_feed(body, {212, 213}, max_rejected_ratio=0.5)
    assert parsed.rejected == {feed.AMBIGUOUS_FIELD: 1}
    assert 1111 not in calls_of(parsed, 212, "AB12") | calls_of(parsed, 213, "AB12")
    assert 2222 not in calls_of(parsed, 212, "AB12")
    (example,) = parsed.examples[feed.AMBIGUOUS_FIELD]
    assert example.index == 39


def test_an_exact_repeat_is_found_among_colons_in_strings_and_nested_objects(parse_feed: ParseFeed) -> None:
    # Both defeat the cheap check (a ':' in a string, members of nested objects), so the careful one runs.
    rows = [{**row(n), "At": "10:20", "Where": {"lat": 1, "lng": 2}} for n in range(1, 40)]
    text = json.dumps({"Result": {"Calls": rows}})
    body = text.replace('{"CallId": 1,', '{"CallId": 1, "CallId": 7777777,', 1).encode()
    parsed = parse_feed(body, {212}, max_rejected_ratio=0.5)
    assert parsed.rejected == {feed.AMBIGUOUS_FIELD: 1}
    assert calls_of(parsed, 212, "AB12") == set(range(2, 40))
    assert parsed.examples[feed.AMBIGUOUS_FIELD][0].value == '["At", "CallId", "CallId", "ClubId", "TechId", "Where"]'


def test_an_ignored_field_given_twice_leaves_the_row_valid(parse_feed: ParseFeed) -> None:
    body = b'{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12", "Note": "a", "Note": "b"}]}}'
    parsed = parse_feed(body, {212})
    assert (parsed.accepted, parsed.rejected) == (1, {})


@pytest.mark.parametrize(
    "body",
    [
        b'{"Result": {"Calls": []}, "Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12"}]}}',
        b'{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12"}]}, "Result": {"Calls": []}}',
        b'{"Result": {"Calls": [], "Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12"}]}}',
        b'{"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12"}], "calls": []}}',
    ],
    ids=["Result-twice", "Result-twice-last-empty", "Calls-twice", "Calls-and-calls"],
)
def test_result_or_calls_given_twice_make_the_document_ambiguous(parse_feed: ParseFeed, body: bytes) -> None:
    refused = rejection(parse_feed, body)
    assert refused.code == "bad_shape"
    assert "more than one" in str(refused) or "more than once" in str(refused)


def test_an_ignored_envelope_field_given_twice_is_harmless(parse_feed: ParseFeed) -> None:
    body = b'{"Meta": 1, "Meta": 2, "Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "AB12"}]}}'
    assert parse_feed(body, {212}).accepted == 1


@pytest.mark.parametrize(
    "body",
    [
        doc(row(1)).decode().encode("utf-16"),
        doc(row(1)).decode().encode("utf-16-le"),
        doc(row(1)).decode().encode("utf-32"),
        doc(row(1)).replace(b'"AB12"', b'"AB\xed\xa0\x8012"'),  # an encoded surrogate: not UTF-8
        doc(row(1)).replace(b'"AB12"', b'"AB\xff12"'),
    ],
    ids=["utf-16-bom", "utf-16-le", "utf-32", "encoded-surrogate", "invalid-byte"],
)
def test_only_utf8_is_read(parse_feed: ParseFeed, body: bytes) -> None:
    assert rejection(parse_feed, body).code == "not_json"


def test_a_number_too_long_for_python_is_not_json_with_a_clear_message(parse_feed: ParseFeed) -> None:
    refused = rejection(
        parse_feed, b'{"Result": {"Calls": [{"CallId": 1' + b"0" * 5000 + b', "ClubId": 212, "TechId": "A"}]}}'
    )
    assert refused.code == "not_json"
    assert "number too long" in str(refused)


def test_a_number_beyond_float_range_is_an_invalid_call_id(parse_feed: ParseFeed) -> None:
    rows = [row(n) for n in range(1, 40)]
    body = doc(*rows)[:-3] + b', {"CallId": 1e400, "ClubId": 212, "TechId": "AB12"}]}}'
    assert parse_feed(body, {212}, max_rejected_ratio=0.5).rejected == {feed.CALL_ID_INVALID: 1}


def test_an_example_of_a_lone_surrogate_is_storable_text(parse_feed: ParseFeed) -> None:
    body = doc(*[row(n) for n in range(1, 40)])[:-3] + b', {"CallId": 5, "ClubId": 212, "TechId": "\\ud800"}]}}'
    parsed = parse_feed(body, {212}, max_rejected_ratio=0.5)
    (example,) = parsed.examples[feed.TECH_ID_INVALID]
    assert example.value == '"\\ud800"'
    example.value.encode("utf-8")  # would raise for the raw surrogate


def test_str_bodies_are_read_like_bytes(parse_feed: ParseFeed) -> None:
    assert parse_feed("\ufeff" + doc(row(5)).decode(), {212}).accepted == 1
    assert rejection(parse_feed, '{"Result": {"Calls": [NaN]}}').code == "not_json"
    assert rejection(parse_feed, '{"Result": {"Calls": ' + "[" * 70 + "]" * 70 + "}}").code == "too_deep"


# Hypothesis: nesting measured on the bytes agrees with the parsed document, whatever strings hold.
tricky_text = st.text(alphabet='[]{}":\\,ab \n', max_size=6)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@st.composite
def nested_values(draw: st.DrawFn) -> object:
    depth = draw(st.integers(feed.MAX_DEPTH - 8, feed.MAX_DEPTH + 2))
    value: object = draw(tricky_text)
    for _ in range(depth):
        siblings = draw(st.lists(tricky_text, max_size=2))
        if draw(st.booleans()):
            value = [*siblings, value] if draw(st.booleans()) else [value, *siblings]
        else:
            value = {**{f"{s}{n}": s for n, s in enumerate(siblings)}, draw(tricky_text): value}
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(nested_values(), st.booleans())
def test_property_too_deep_exactly_when_the_document_nests_past_the_limit(
    parse_feed: ParseFeed, extra: object, compact: bool
) -> None:
    document = {"Result": {"Calls": [{**row(1), "Extra": extra}]}}
    body = json.dumps(document, separators=(",", ":") if compact else None).encode()
    if _depth(document) > feed.MAX_DEPTH:
        assert rejection(parse_feed, body).code == "too_deep"
    else:
        assert parse_feed(body, {212}).accepted == 1


# Hypothesis: rows written as raw JSON text, so they can repeat names; ambiguous exactly when a row gives one of
# the three fields twice (in any casing), whatever else the rows and their strings hold.
field_names = st.sampled_from(["CallId", "callid", "CALLID", "ClubId", "clubID", "TechId", "techid", "Note", "a:b"])
field_values = st.sampled_from(["1", "212", '"AB12"', '"x:y"', "[1, {}]", '{"k": 1, "k": 2}', "null"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(field_names, field_values), max_size=6), min_size=1, max_size=8))
def test_property_rows_repeating_a_field_are_ambiguous_and_only_those(
    parse_feed: ParseFeed, rows: list[list[tuple[str, str]]]
) -> None:
    texts = ["{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members) + "}" for members in rows]
    body = ('{"Result": {"Calls": [' + ", ".join(texts) + "]}}").encode()
    parsed = parse_feed(body, {212}, max_rejected_ratio=1.0)
    ambiguous = []
    for index, members in enumerate(rows):
        named = [k.lower() for k, _ in members if k.lower() in ("callid", "clubid", "techid")]
        if len(named) != len(set(named)):
            ambiguous.append(index)
    assert parsed.rejected.get(feed.AMBIGUOUS_FIELD, 0) == len(ambiguous)
    assert [e.index for e in parsed.examples.get(feed.AMBIGUOUS_FIELD, [])] == ambiguous[: feed.MAX_EXAMPLES]


def test_clubs_guide_lists_every_rejection_code() -> None:
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "clubs.md").read_text()
    for code in [*feed.DOCUMENT_REASON_TEXT, *feed.REJECT_REASONS]:
        assert f"`{code}`" in guide, code
