"""One TechId rule for the feed and the query (cappi.domain.ids): surrounding spaces and tabs are trimmed on both
sides, and only those (every other control character refuses the TechId); then 1 to 32 ASCII letters or digits,
upper-cased. The feed (either parser) accepts a TechId exactly when a request path may name it, and files it under
the name the path finds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cappi.domain import ids, query
from cappi.domain.feed import FeedRejected, Parser, parse_feed

# (TechId as written, canonical form or None when refused)
EDGES = [
    ("AB12", "AB12"),
    ("ab12", "AB12"),
    (" ab12 ", "AB12"),
    ("\tAB12\t", "AB12"),
    (" \t ab12\t ", "AB12"),
    # Control characters other than tab are never trimmed: the TechId is refused.
    ("\tAB12\n", None),
    ("\r\nab12\r\n", None),
    ("\fAB12\v", None),
    ("\x00AB12", None),
    ("AB12\x7f", None),
    ("\x1bAB12", None),
    (" " + "A" * 32 + " ", "A" * 32),
    (" " + "A" * 33, None),
    ("", None),
    (" \t\n\r\f\v", None),
    ("AB 12", None),
    ("AB\t12", None),
    # Not a space or tab: never trimmed (str.strip() would take all of these), so the TechId is refused.
    ("\x1fSEPT\x1e", None),
    ("\x1cAB12", None),
    ("AB12\x1d", None),
    ("\x85AB12", None),
    ("\xa0AB12", None),
    ("AB12\u2028", None),
    ("\u3000AB12", None),
    ("\u200bAB12", None),
    ("\x00AB12", None),
]


def by_the_feed(tech: str, parser: Parser) -> str | None:
    body = json.dumps({"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": tech}]}}).encode()
    try:
        parsed = parse_feed(body, {212}, parser=parser)
    except FeedRejected as refused:
        assert refused.parsed is not None
        assert refused.parsed.rejected == {"tech_id_invalid": 1}
        return None
    [filed] = parsed.by_club[212]
    return filed


def by_the_path(tech: str) -> str | None:
    try:
        club, filed = query.parse_path("212", tech)
    except query.MalformedRequest as refused:
        assert refused.code == "invalid_tech_id"
        return None
    assert club == 212
    return filed


def by_the_rule(tech: str) -> str | None:
    checked = ids.tech_id(tech)
    return None if isinstance(checked, ids.Reason) else checked


@pytest.mark.parametrize(("tech", "expected"), EDGES, ids=[repr(tech) for tech, _ in EDGES])
def test_the_feed_and_the_path_read_a_tech_id_alike(tech: str, expected: str | None) -> None:
    assert by_the_rule(tech) == expected
    assert by_the_path(tech) == expected
    assert by_the_feed(tech, Parser.FAST) == expected
    assert by_the_feed(tech, Parser.REFERENCE) == expected


def test_only_spaces_and_tabs_are_trimmed_not_str_strips_whitespace() -> None:
    assert set(ids.TECH_ID_TRIMMED) == {" ", "\t"}
    assert {chr(c) for c in range(0x110000) if chr(c).isspace()} - set(ids.TECH_ID_TRIMMED) >= {
        "\n",
        "\r",
        "\f",
        "\v",
        "\x1c",
        "\x1d",
        "\x1e",
        "\x1f",
        "\x85",
        "\xa0",
        "\u3000",
    }


spaces = st.text(alphabet=" \t\n\r\f\v\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000", max_size=3)
tech_ids = st.one_of(
    st.tuples(spaces, st.text(alphabet="abXY09", min_size=0, max_size=34), spaces).map("".join),
    st.text(max_size=36),
)


@settings(max_examples=300, deadline=None)
@given(tech_ids)
def test_property_the_feed_and_the_path_read_any_tech_id_alike(tech: str) -> None:
    expected = by_the_rule(tech)
    assert by_the_path(tech) == expected
    assert by_the_feed(tech, Parser.FAST) == expected
    assert by_the_feed(tech, Parser.REFERENCE) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (9_999_999, 9_999_999),
        ("0012", 12),
        ("08655R", "8655R"),
        (10_000_000, ids.Reason.CALL_ID_INVALID),
        (-1, ids.Reason.CALL_ID_INVALID),
        (True, ids.Reason.CALL_ID_INVALID),
        (12.0, ids.Reason.CALL_ID_INVALID),
        ("8655r", ids.Reason.CALL_ID_INVALID),
        (" 12", ids.Reason.CALL_ID_INVALID),
        (None, ids.Reason.CALL_ID_MISSING),
        (ids.ABSENT, ids.Reason.CALL_ID_MISSING),
    ],
)
def test_call_id_rule(raw: object, expected: object) -> None:
    assert ids.call_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (999, 999),
        (1000, ids.Reason.CLUB_ID_INVALID),
        (-1, ids.Reason.CLUB_ID_INVALID),
        (True, ids.Reason.CLUB_ID_INVALID),
        (212.0, ids.Reason.CLUB_ID_INVALID),
        ("212", ids.Reason.CLUB_ID_INVALID),
        (None, ids.Reason.CLUB_ID_MISSING),
        (ids.ABSENT, ids.Reason.CLUB_ID_MISSING),
    ],
)
def test_club_id_rule(raw: object, expected: object) -> None:
    assert ids.club_id(raw) == expected


def test_a_path_club_id_is_not_trimmed() -> None:
    assert ids.path_club_id("004") == 4
    for raw in (" 212", "212 ", "\t4", "212\n"):
        assert ids.path_club_id(raw) is ids.Reason.CLUB_ID_INVALID
