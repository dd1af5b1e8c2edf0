"""The feed parser's fast path (msgspec) against the reference parser: the same result for every document.

Either the fast path declines a document (None, and the reference reads it) or its ParsedFeed equals the
reference's: the same groups of accepted rows, rows, rejection counts by reason, examples and warnings. Through
`parse_feed` both give the same outcome, down to the code, message and rows of a whole-document rejection.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cappi.domain import feed, ids
from cappi.domain.feed import FeedRejected, ParsedFeed, Parser, fast, parse_feed
from cappi.domain.feed.outcome import Rejections

OWNED = frozenset({212, 213})

Outcome = tuple[str, object, str, ParsedFeed | None]


def outcome(parser: Parser, body: bytes | str, ratio: float) -> Outcome:
    try:
        return ("parsed", None, "", parse_feed(body, OWNED, max_rejected_ratio=ratio, parser=parser))
    except FeedRejected as exc:
        return ("rejected", exc.code, str(exc), exc.parsed)


def same_as_reference(body: bytes | str, ratio: float = 1.0) -> tuple[bool, Outcome]:
    """Checks both paths agree on `body`; whether the fast path read it, and the reference's outcome."""
    by_fast_path = fast.parse(body, OWNED)
    reference = outcome(Parser.REFERENCE, body, ratio)
    if by_fast_path is not None:
        # The fast path reads only what the reference parses; only the share of rejected rows can still refuse it.
        assert reference[0] == "parsed" or reference[1] == feed.TOO_MANY_REJECTED, reference
        assert by_fast_path == reference[3]
    assert outcome(Parser.FAST, body, ratio) == reference
    return by_fast_path is not None, reference


def document(rows: list[str], result: str = "Result", calls: str = "Calls") -> bytes:
    return ('{"' + result + '": {"' + calls + '": [' + ", ".join(rows) + "]}}").encode()


def members(*pairs: tuple[str, str]) -> str:
    return "{" + ", ".join(f'"{name}": {value}' for name, value in pairs) + "}"


def good(call: str = "1234567", club: str = "212", tech: str = '"AB12"', names: tuple[str, ...] = ()) -> str:
    call_name, club_name, tech_name = names or ("CallId", "ClubId", "TechId")
    return members((call_name, call), (club_name, club), (tech_name, tech))


# --- what the fast path takes, and what it leaves to the reference ------------------------------------------------


def test_the_benchmark_feed_and_the_documents_spellings_take_the_fast_path() -> None:
    rows = [json.dumps({"CallId": n, "ClubId": 212 + n % 2, "TechId": f"T{n % 97}"}) for n in range(5000)]
    assert same_as_reference(document(rows))[0]
    assert same_as_reference(document([good("8679", "212", '"ab12"', ("CallId", "ClubID", "TechID"))]))[0]
    assert same_as_reference(document([good(names=("callid", "CLUBID", "techId"))], "result", "CALLS"))[0]
    assert same_as_reference(b"\xef\xbb\xbf" + document([good()]))[0]  # a byte-order mark
    assert same_as_reference(document([good()]).decode())[0]  # a str body
    assert same_as_reference(document([]))[0]
    assert same_as_reference(document([good(tech='"' + "[{" * 100 + '"')]))[0]  # brackets in a string do not nest


def test_bad_rows_of_scalar_values_are_rejected_by_the_fast_path_as_by_the_reference() -> None:
    rows = [good(str(n)) for n in range(40)]
    rows += [
        good("-1"),
        good("10000000"),
        good('"8655R"'),
        good('"0012"'),
        good('"8655r"'),
        good("null"),
        good(club="999"),
        good(club="1000"),
        good(club='"212"'),
        good(club="null"),
        good(tech='" ab12 "'),
        good(tech='"ab/12"'),
        good(tech='"\u00e1bc"'),  # written as UTF-8 bytes
        good(tech="12"),
        good(tech="null"),
        good(tech='"' + "A" * 40 + '"'),
        good('"8655S"', club="999"),  # a quoted CallId counts as a warning even when the row is rejected later
    ]
    took, (_kind, _code, _message, parsed) = same_as_reference(document(rows))
    assert took
    assert parsed is not None
    assert set(parsed.rejected) == set(feed.REJECT_REASONS) - {feed.ROW_NOT_OBJECT, feed.AMBIGUOUS_FIELD}
    assert parsed.warnings == {feed.QUOTED_CALL_ID_WARNING: 3}


@pytest.mark.parametrize(
    "body",
    [
        document([good(), good(names=("CallId", "ClubID", "TechID"))]),  # two spellings in one feed
        document([members(("CallId", "1"), ("ClubId", "212"), ("TechId", '"A"'), ("Note", '"x"'))]),  # extra field
        document([members(("CallId", "1"), ("CallId", "2"), ("ClubId", "212"), ("TechId", '"A"'))]),  # repeated
        document([members(("CallId", "1"), ("callid", "2"), ("ClubId", "212"), ("TechId", '"A"'))]),  # other case
        document([members(("CallId", "1"), ("ClubId", "212"))]),  # missing field
        document([good(call="1.0")]),  # a float
        document([good(club="true")]),  # a boolean
        document([good(tech="[1]")]),  # a nested value
        document([good(), '"not a row"']),
        document([good(tech='"a:b"')]),  # a `:` in a string: the member count cannot tell
        document([good(call="NaN")]),
        document([good(call="1" + "0" * 4300)]),
        document([good(tech='"\\ud800"')]),
        document([good(tech="[" * 100 + "]" * 100)]),
        document([good()]).replace(b"AB12", b"AB\xff2"),
        document([good()]).replace(b'"Result"', b'"Result": {"Calls": []}, "result"'),
        b'{"Result": {"Calls": [], "Calls": []}}',
        b'{"Meta": 1, "Result": {"Calls": []}}',
        document([good()]) + b" trailing",
        document([good()])[:-3],
        b"",
        b"[]",
        document([good()]).decode().encode("utf-16"),
    ],
)
def test_documents_the_fast_path_is_not_sure_of_go_to_the_reference(body: bytes) -> None:
    took, _reference = same_as_reference(body)
    assert not took


def test_every_rejection_reason_warning_and_document_code_is_compared() -> None:
    bad_rows = {
        feed.ROW_NOT_OBJECT: "[1, 212]",
        feed.AMBIGUOUS_FIELD: members(("CallId", "1"), ("CALLID", "2"), ("ClubId", "212"), ("TechId", '"A"')),
        feed.CALL_ID_MISSING: members(("ClubId", "212"), ("TechId", '"A"')),
        feed.CALL_ID_INVALID: good("12.5"),
        feed.CLUB_ID_MISSING: good(club="null"),
        feed.CLUB_ID_INVALID: good(club="-4"),
        feed.CLUB_NOT_OWNED: good(club="214"),
        feed.TECH_ID_MISSING: members(("CallId", "1"), ("ClubId", "212")),
        feed.TECH_ID_INVALID: good(tech='"a b"'),
    }
    assert set(bad_rows) == set(feed.REASON_TEXT)
    seen_reasons: set[str] = set()
    seen_warnings: set[str] = set()
    for bad in bad_rows.values():
        for ratio in (1.0, feed.MAX_REJECTED_RATIO):
            _took, reference = same_as_reference(document([good(), good('"8655R"'), bad]), ratio)
            parsed = reference[3]
            assert parsed is not None
            seen_reasons |= set(parsed.rejected)
            seen_warnings |= set(parsed.warnings)
    assert seen_reasons == set(feed.REASON_TEXT)
    assert seen_warnings == set(feed.WARNING_TEXT)

    codes = set()
    for body in (b"<html>", b'{"Result": ' + b"[" * 70 + b"]" * 70 + b"}", b"{}", document([good(club="214")] * 3)):
        _took, (kind, code, _message, _parsed) = same_as_reference(body, feed.MAX_REJECTED_RATIO)
        assert kind == "rejected"
        codes.add(code)
    assert codes == set(feed.DOCUMENT_REASON_TEXT)


def test_msgspec_is_loaded_by_the_first_feed_not_by_importing_the_domain() -> None:
    code = (
        "import sys\n"
        "import cappi.domain.feed, cappi.domain.poll, cappi.domain.last_poll\n"
        "before = 'msgspec' in sys.modules\n"
        'cappi.domain.feed.parse_feed(b\'{"Result": {"Calls": []}}\', [212])\n'
        "print(before, 'msgspec' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["False", "True"]


# --- properties: generated documents -------------------------------------------------------------------------------


def casings(name: str) -> st.SearchStrategy[str]:
    flags = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flags.map(lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True)))


def spelling(name: str, *documented: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, *documented]) | casings(name)


# Values of the types the fast path reads (JSON integers, strings without a lone surrogate or a `:`, null), valid
# or not; and values only the reference reads.
tech_text = st.text(alphabet="abcXYZ019 /-_'\"\\\u00e1\u0101\uff11[]{}", min_size=0, max_size=34)
typed_call_values = st.one_of(
    st.integers(0, 9_999_999).map(str),
    st.sampled_from(["-1", "-0", "10000000", "18446744073709551616", "-" + "9" * 30, "1" + "0" * 4299]),
    st.from_regex(r"[0-9]{1,8}[A-Za-z]?", fullmatch=True).map(json.dumps),
    st.sampled_from(['""', '" 12"', '"1,234"', '"\\u0038655R"', "null"]),
)
typed_club_values = st.sampled_from(["212", "213", "0", "214", "999", "1000", "-212", '"212"', "null"])
typed_tech_values = st.one_of(
    st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True).map(json.dumps),
    tech_text.map(lambda t: json.dumps(t, ensure_ascii=False)),
    tech_text.map(json.dumps),
    st.sampled_from(['"\\ud83d\\ude00"', '"AB\\u0031"', "12", "null"]),
)
untyped_values = st.sampled_from(
    [
        *("true", "false", "12.0", "1e400", "NaN", "Infinity", "-Infinity", "[1]", "{}", '{"a": 1, "a": 2}'),
        *("[" * 70 + "]" * 70, "1" + "0" * 4300, '"\\ud800"', '"AB\\udc00"', '"a:b"'),
    ]
)
# Mostly typed values, so that most documents are JSON and many take the fast path.
call_values = st.one_of(typed_call_values, typed_call_values, typed_call_values, untyped_values)
club_values = st.one_of(typed_club_values, typed_club_values, typed_club_values, untyped_values)
tech_values = st.one_of(typed_tech_values, typed_tech_values, typed_tech_values, untyped_values)
extra_names = st.sampled_from(["Note", "At", "a:b", "Call\\u0049d", ""])
extra_values = st.sampled_from(['"x"', '"10:20"', "1", "[1, {}]", '{"k": 1, "k": 2}', "NaN", "1" + "0" * 4301])


@st.composite
def rows_of(draw: st.DrawFn, names: tuple[str, str, str], *, regular_only: bool) -> str:
    """A row as JSON text: mostly the three fields spelled as the document does; sometimes anything else."""
    if regular_only:
        values = [draw(typed_call_values), draw(typed_club_values), draw(typed_tech_values)]
        return members(*draw(st.permutations(list(zip(names, values, strict=True)))))
    values = [draw(call_values), draw(club_values), draw(tech_values)]
    pairs = list(zip(names, values, strict=True))
    kind = draw(st.sampled_from(["regular"] * 6 + ["respelled", "missing", "extra", "repeated", "not-object"]))
    event(f"row: {kind}")
    if kind == "respelled":
        index = draw(st.integers(0, 2))
        pairs[index] = (draw(casings(names[index])), pairs[index][1])
    elif kind == "missing":
        del pairs[draw(st.integers(0, 2))]
    elif kind == "extra":
        pairs.insert(draw(st.integers(0, 3)), (draw(extra_names), draw(extra_values)))
    elif kind == "repeated":
        index = draw(st.integers(0, 2))
        again = draw(st.sampled_from([names[index], names[index].lower(), names[index].upper()]))
        pairs.insert(draw(st.integers(0, 3)), (again, draw([call_values, club_values, tech_values][index])))
    elif kind == "not-object":
        return draw(st.sampled_from(["1", '"row"', "null", '[1, 212, "A"]', "true", "NaN", "[[[]]]"]))
    return members(*draw(st.permutations(pairs)))


@st.composite
def feeds(draw: st.DrawFn, *, regular_only: bool = False) -> bytes | str:
    result = draw(spelling("Result"))
    calls = draw(spelling("Calls"))
    names = (draw(spelling("CallId", "CallID")), draw(spelling("ClubId", "ClubID")), draw(spelling("TechId", "TechID")))
    rows = draw(st.lists(rows_of(names, regular_only=regular_only), max_size=30))
    separator = draw(st.sampled_from([", ", ",", ",\n  ", " ,\t"]))
    text = '{"' + result + '": {"' + calls + '": [' + separator.join(rows) + "]}}"
    if not regular_only:
        envelope = draw(st.sampled_from(["plain"] * 8 + ["extra", "repeated", "respelled"]))
        event(f"envelope: {envelope}")
        if envelope == "extra":
            text = text.replace('{"', '{"Meta": 1, "', 1)
        elif envelope == "repeated":
            text = text[:-1] + ', "' + draw(st.sampled_from([result, result.swapcase()])) + '": {"Calls": []}}'
        elif envelope == "respelled":
            text = '{"Result": {"Calls": [], "' + calls.swapcase() + '": []}, "' + text[2:]
    body: bytes | str = text.encode()
    assert isinstance(body, bytes)
    mutation = "none" if regular_only else draw(st.sampled_from(["none"] * 8 + ["truncated", "byte", "bom", "str"]))
    event(f"mutation: {mutation}")
    if mutation == "truncated":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif mutation == "byte":
        at = draw(st.integers(0, len(body)))
        body = (
            body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\\", b":", b"[", b",", b"\n"])) + body[at:]
        )
    elif mutation == "bom":
        body = b"\xef\xbb\xbf" + body
    elif mutation == "str":
        body = text
    return body


@settings(max_examples=700, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(feeds(), st.sampled_from([1.0, feed.MAX_REJECTED_RATIO]))
def test_property_both_paths_agree_on_any_document(body: bytes | str, ratio: float) -> None:
    took, reference = same_as_reference(body, ratio)
    event("fast path" if took else "reference")
    event(f"outcome: {reference[0]} {reference[1] or ''}".strip())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(feeds(regular_only=True))
def test_property_documents_of_the_documented_shape_take_the_fast_path(body: bytes | str) -> None:
    took, _reference = same_as_reference(body)
    assert took


# --- the common row: the one rule test written inline, held equal to the ID rules -------------------------------------


class Row:
    """A row as msgspec hands it to the fast path's loop: three fields, each an int, a str or None."""

    __slots__ = ("call", "club", "tech")

    def __init__(self, call: object, club: object, tech: object) -> None:
        self.call, self.club, self.tech = call, club, tech


def by_the_rules(rows: list[Row], owned: frozenset[int]) -> ParsedFeed:
    """What `cappi.domain.ids`'s rules say of `rows`, each rule called on each row, with no shortcut."""
    by_club: dict[int, dict[str, set[int | str]]] = {club: {} for club in owned}
    rejections = Rejections()
    quoted = 0
    for index, row in enumerate(rows):
        call = ids.call_id(row.call)
        if isinstance(call, ids.Reason):
            rejections.add(call.value, index, row.call)
            continue
        quoted += type(row.call) is str
        club = ids.club_id(row.club)
        if isinstance(club, ids.Reason):
            rejections.add(club.value, index, row.club)
            continue
        if club not in owned:
            rejections.add(feed.CLUB_NOT_OWNED, index, row.club)
            continue
        tech = ids.tech_id(row.tech)
        if isinstance(tech, ids.Reason):
            rejections.add(tech.value, index, row.tech)
            continue
        by_club[club].setdefault(tech, set()).add(call)
    return ParsedFeed(
        by_club=by_club,
        rows=len(rows),
        accepted=len(rows) - sum(rejections.counts.values()),
        rejected=rejections.counts,
        warnings={feed.QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        examples=rejections.examples,
    )


edge_spaces = st.text(alphabet=" \t\n\r\f\v\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000", max_size=2)
scalars = st.one_of(
    st.none(),
    st.integers(),
    st.integers(-2, 10_000_001),
    st.sampled_from([0, 212, 213, 214, 999, 1000, 9_999_999, 10_000_000, 2**63, -(2**63)]),
    st.from_regex(r"[0-9]{1,8}[A-Za-z]?", fullmatch=True),
    st.tuples(edge_spaces, st.text(alphabet="abXY09", max_size=34), edge_spaces).map("".join),
    st.text(max_size=40),  # any Unicode
    st.text(alphabet="A1 \x1f\u00e1", min_size=30, max_size=40),  # about the length limit
    st.sampled_from(["212", "AB12", " AB12", "\x1fAB12\x1e", "8655R", "", " "]),
)
near_limits = st.sampled_from([-1, 0, 1, 9_999_999, 10_000_000, -(2**63), 2**64])


@st.composite
def repeated_rows(draw: st.DrawFn) -> list[Row]:
    """Rows drawn from a few values per field, one of each valid, so that values recur: a TechId as written, once
    accepted, sends every later row of its club that has an int CallId through the common row test."""
    calls = [draw(st.integers(0, 9_999_999)), draw(near_limits), *draw(st.lists(scalars, max_size=2))]
    clubs = [draw(st.sampled_from(sorted(OWNED))), *draw(st.lists(scalars, max_size=2))]
    techs = [
        draw(st.from_regex(r"[ \t]?[A-Za-z0-9]{1,32}[ \n]?", fullmatch=True)),
        *draw(st.lists(scalars, max_size=3)),
    ]
    picks = st.tuples(st.sampled_from(calls), st.sampled_from(clubs), st.sampled_from(techs))
    return [Row(*values) for values in draw(st.lists(picks, max_size=40))]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(repeated_rows())
def test_property_the_common_row_test_equals_the_id_rules(rows: list[Row]) -> None:
    assert fast._validate(rows, OWNED) == by_the_rules(rows, OWNED)


@pytest.mark.parametrize("body", [document([good()]), b"{not json", document([good(), '"not a row"'])])
def test_the_cycle_collector_is_left_as_it_was_found(body: bytes) -> None:
    import gc

    assert gc.isenabled()
    fast.parse(body, frozenset({212}))
    assert gc.isenabled()
    gc.disable()
    try:
        fast.parse(body, frozenset({212}))
        assert not gc.isenabled()
    finally:
        gc.enable()
