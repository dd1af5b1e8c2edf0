"""Hostile TechIds: every control character (C0 but tab, DEL, C1) and the Unicode separators and spaces that
Python's str.strip() would trim, at either end or inside, are refused by both feed parsers and by the query's path
check alike; only surrounding spaces and tabs are trimmed (cappi.domain.ids)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from cappi.domain import query
from cappi.domain.feed import FeedRejected, Parser, parse_feed

CONTROLS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) != "\t"]
SPACES_STRIP_WOULD_TAKE = ["\xa0", "\u1680", "\u2000", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
HOSTILE = [
    placed
    for char in CONTROLS + SPACES_STRIP_WOULD_TAKE
    for placed in (f"{char}AB12", f"AB12{char}", f"AB{char}12", f" {char}AB12\t")
]


def _feed_refuses(tech: str, parser: Parser) -> bool:
    body = json.dumps({"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": tech}]}}).encode()
    try:
        parse_feed(body, {212}, parser=parser)
    except FeedRejected as refused:
        return refused.parsed is not None and refused.parsed.rejected == {"tech_id_invalid": 1}
    return False


def _path_refuses(tech: str) -> bool:
    try:
        query.parse_path("212", tech)
    except query.MalformedRequest as refused:
        return refused.code == "invalid_tech_id"
    return False


@pytest.mark.parametrize("tech", HOSTILE, ids=[quote(t) for t in HOSTILE])
def test_a_tech_id_holding_a_control_or_separator_is_refused_everywhere(tech: str) -> None:
    assert _feed_refuses(tech, Parser.FAST)
    assert _feed_refuses(tech, Parser.REFERENCE)
    assert _path_refuses(tech)


def test_spaces_and_tabs_around_a_tech_id_are_trimmed_on_both_sides() -> None:
    assert query.parse_path("212", " \tab12\t ") == (212, "AB12")
    body = json.dumps({"Result": {"Calls": [{"CallId": 1, "ClubId": 212, "TechId": "\t ab12 "}]}}).encode()
    for parser in (Parser.FAST, Parser.REFERENCE):
        assert list(parse_feed(body, {212}, parser=parser).by_club[212]) == ["AB12"]
