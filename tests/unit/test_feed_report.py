"""The feed report (`cli.feed_report`) on many kinds of broken feeds: which rule fails (one per cause), what to
change, example rows numbered from 1 with their CallId, warnings with their rows, key casing in words, ties named
as ties, codes with words; and its renderers for a terminal and for Markdown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cappi.domain.feed import FeedRejected, parse_feed
from cli.feed_render import report_markdown, report_text
from cli.feed_report import FIXES, Fetched, check


def document(*rows: Any) -> bytes:
    return json.dumps({"Result": {"Calls": list(rows)}}).encode()


def row(call: Any = 1, club: Any = 212, tech: Any = "AB12", **extra: Any) -> dict[str, Any]:
    return {"CallId": call, "ClubId": club, "TechId": tech, **extra}


GOOD = [row(n, 212, f"T{n % 9}") for n in range(1, 101)]


def report_of(body: bytes, clubs: frozenset[int] | None = frozenset({212})) -> dict[str, Any]:
    return check(Fetched(body, "feed.json"), clubs)


def rule(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in report["rules"] + report["warning_rules"] if r["rule"] == name]
    return found


def failed(report: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in report["rules"] if r["passed"] is False]


@pytest.mark.parametrize(
    ("body", "rule_name", "code", "message"),
    [
        (b"<!DOCTYPE html><html><body>Maintenance</body></html>", "json", "not_json", "looks like an HTML"),
        (document(*GOOD)[:-40], "json", "not_json", "not valid JSON"),
        (b'{"Result": {"Calls": [{"CallId": NaN, "ClubId": 212, "TechId": "A"}]}}', "json", "not_json", "NaN"),
        (b"[" * 70 + b"]" * 70, "depth", "too_deep", "more than 64 deep"),
        (b'{"Calls": []}', "shape", "bad_shape", "no Result field"),
    ],
    ids=["html page", "truncated", "NaN", "too deep", "no Result"],
)
def test_a_document_cause_fails_one_rule_with_its_message_and_leaves_the_rest_unchecked(
    body: bytes, rule_name: str, code: str, message: str
) -> None:
    report = report_of(body)
    assert (report["verdict"], report["would"]) == ("fail", "reject")
    assert failed(report) == [rule_name]
    broken = rule(report, rule_name)
    assert broken["code"] == code
    assert message in broken["examples"][0]
    assert broken["fix"] == FIXES[code]
    after = report["rules"][report["rules"].index(broken) + 1 :]
    assert after and all(r["passed"] is None for r in after)  # not checked, neither passed nor failed
    assert report["reason"].startswith(f"{code} (")  # the code and its words in the headline
    text = report_text(report)
    assert f"FAILED      {broken['text']} ({code})" in text
    assert f"to fix: {FIXES[code]}" in text
    assert text.count("FAILED") == 1


def test_an_html_page_is_not_json_only() -> None:
    report = report_of(b"<html><body>502 Bad Gateway</body></html>")
    assert rule(report, "json")["passed"] is False
    assert rule(report, "shape")["passed"] is None
    assert rule(report, "shape")["examples"] == []


def test_a_row_rule_gives_row_numbers_from_1_and_call_ids() -> None:
    body = document(*GOOD, row(501, tech="ab/12"), row(502, tech="x y"))
    report = report_of(body)
    assert report["verdict"] == "warn"
    broken = rule(report, "tech_id_invalid")
    first, second = broken["examples"]
    assert (first["row"], first["row_number"], first["call_id"], first["value"]) == (100, 101, "501", '"ab/12"')
    assert (second["row_number"], second["call_id"]) == (102, "502")
    text = report_text(report)
    assert '  row 101, CallId 501: "ab/12"' in text
    assert "numbered from 1" in text
    assert "to fix: Send TechId as a quoted string of 1 to 32 letters and digits" in text
    assert report["reason"] == "2 rows would be dropped: tech_id_invalid (TechId not 1 to 32 letters and digits): 2"


def test_a_row_without_a_call_id_says_so() -> None:
    report = report_of(document(*GOOD, {"ClubId": 212, "TechId": "AB12"}))
    (example,) = rule(report, "call_id_missing")["examples"]
    assert (example["row_number"], example["call_id"]) == (101, None)
    assert "row 101, no CallId" in report_text(report)


def test_foreign_club_ids_name_the_clubs_the_source_owns() -> None:
    report = report_of(document(*GOOD[:-1], row(900, club=213)), frozenset({212, 214}))
    broken = rule(report, "club_not_owned")
    assert (broken["examples"][0]["row_number"], broken["examples"][0]["call_id"]) == (100, "900")
    assert broken["fix"].startswith("List only the clubs this source is registered for (212, 214)")


def test_quoted_call_ids_are_a_warning_with_their_rows() -> None:
    report = report_of(document(*GOOD, row("8655R"), row("8656")))
    assert (report["verdict"], report["warnings"]) == ("warn", {"quoted_call_id": 2})
    warning = rule(report, "quoted_call_id")
    assert [(e["row_number"], e["call_id"]) for e in warning["examples"]] == [(101, '"8655R"'), (102, '"8656"')]
    assert warning["fix"] == 'Send CallId unquoted, as a JSON number: 8679, not "8679".'
    assert '  row 101, CallId "8655R"' in report_text(report)


def test_extra_fields_are_a_warning_naming_the_fields() -> None:
    report = report_of(document(*GOOD[:-1], row(77, note="x", Status="open")))
    warning = rule(report, "extra_fields")
    (example,) = warning["examples"]
    assert (example["row_number"], example["call_id"], example["fields"]) == (100, "77", ["note", "Status"])
    assert warning["fix"].startswith("Send only CallId, ClubId and TechId")


def test_lowercase_keys_pass_with_a_note_on_the_document_s_spelling() -> None:
    report = report_of(b'{"result":{"calls":[{"callid":1,"clubid":212,"techid":"ab12"}]}}')
    assert (report["verdict"], report["warnings"]) == ("pass", {})  # a note, not a broken convention
    assert report["key_casing_words"] == "keys spelled result, calls, callid, clubid, techid"
    note = rule(report, "document_spelling")
    assert note["keys"] == ["result", "calls", "callid", "clubid", "techid"]
    assert "Result, Calls, CallId, ClubId (or ClubID), TechId (or TechID)" in note["fix"]
    text = report_text(report)
    assert "{" not in text.split("\n")[3]  # key casing in words, not a Python dict
    assert "note        keys spelled otherwise than the integration document (document_spelling)" in text


def test_the_document_s_own_spellings_need_no_note() -> None:
    body = b'{"Result":{"Calls":[{"CallId":1,"ClubID":212,"TechID":"AB12"},{"CallId":2,"ClubID":212,"TechID":"B"}]}}'
    report = report_of(body)
    assert (report["verdict"], report["warning_rules"]) == ("pass", [])
    assert report["key_casing_words"] == "keys spelled Result, Calls, CallId, ClubID, TechID"


def test_mixed_key_casing_names_the_rows_that_differ() -> None:
    rows = [*GOOD[:50], {"callid": 901, "ClubId": 212, "TechId": "AB12"}]
    report = report_of(document(*rows))
    warning = rule(report, "mixed_key_casing")
    (example,) = warning["examples"]
    assert (example["row_number"], example["call_id"]) == (51, "901")
    assert example["value"] == "callid where most rows write CallId"
    assert report["key_casing_words"].startswith("CallId spelled CallId (50 rows) and callid (1 row)")


def test_a_field_given_twice_in_a_row() -> None:
    body = b'{"Result":{"Calls":[{"CallId":1,"CallId":2,"ClubId":212,"TechId":"A"}]}}'
    report = report_of(body)
    assert failed(report) == ["ambiguous_field", "rejected_share"]
    (example,) = rule(report, "ambiguous_field")["examples"]
    assert example["row_number"] == 1
    assert rule(report, "ambiguous_field")["fix"].startswith("Give CallId, ClubId and TechId once per row")


def test_over_5_percent_rejected_fails_the_share_with_the_most_common_reason() -> None:
    rows = [*GOOD[:90], *[row(-n) for n in range(1, 8)], *[row(n, tech="a/b") for n in range(800, 803)]]
    report = report_of(document(*rows))
    assert failed(report) == ["call_id_invalid", "tech_id_invalid", "rejected_share"]
    share = rule(report, "rejected_share")
    assert share["most_common"] == "most common reason: call_id_invalid (CallId not a whole number of up to 7 digits)"
    assert "10 of 100 rows failed validation" in share["examples"][0]
    assert report["reason"].startswith("too_many_rejected (too many rows rejected): 10 of 100 rows")


def test_a_tie_is_named_as_a_tie() -> None:
    rows = [*GOOD[:90], *[row(-n) for n in range(1, 6)], *[row(n, tech="a/b") for n in range(800, 805)]]
    with pytest.raises(FeedRejected) as rejected:
        parse_feed(document(*rows), [212])
    message = str(rejected.value)
    assert "; most common reason:" not in message  # no one reason named the most common
    assert (
        "no single most common reason: 2 tied at 5 rows each: call_id_invalid (CallId not a whole number of up to "
        "7 digits), tech_id_invalid (TechId not 1 to 32 letters and digits)"
    ) in message
    report = report_of(document(*rows))
    assert "tied at 5 rows each" in report["reason"]


def test_the_markdown_report_has_fixes_and_escapes_the_feed() -> None:
    report = report_of(document(*GOOD, row(4242, tech="<b>x|y</b>")))
    text = report_markdown(report)
    assert "| TechId not 1 to 32 letters and digits (`tech_id_invalid`) | FAILED | 1 | row 101, CallId `4242`: " in text
    assert '`"<b>x\\|y</b>"` |' in text  # in a code span (no HTML there), its `|` escaped: the table keeps its columns
    assert "## What to change" in text


def test_a_report_holds_only_json_values() -> None:
    report = report_of(document(*GOOD, row("8655R"), row(5, tech="a/b", x=1)))
    assert json.loads(json.dumps(report)) == report


def raw_controls(text: str) -> list[str]:
    import unicodedata

    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


def test_feed_text_in_keys_values_and_tech_ids_stays_inert() -> None:
    from cappi.domain.heads import Pointer
    from cappi.domain.snapshot import build_club_snapshot
    from cli.feed_plan import PublishedClub, plan
    from cli.feed_render import plan_markdown, plan_text

    hostile = "\x1b[2J\u202e\x9b31m"
    rows = [*GOOD, row(7, tech=f"A{hostile}"), {"CallId": 8, "ClubId": 212, "TechId": "B", f"x{hostile}": 1}]
    rows.append({f"CallId{hostile}": 9, "CallId": 9, "ClubId": 212, "TechId": "C"})
    report = report_of(document(*rows))
    for text in (report_text(report), report_markdown(report)):
        assert raw_controls(text) == []
        assert "\\x1b[2J" in text
    published = build_club_snapshot(212, {"OLD1": [5]})
    pointer = Pointer(212, "v1", published.content_hash, 0, 0, 1, 1, 1, "s", 1, 0)
    changes = plan(document(*GOOD), frozenset({212}), {212: PublishedClub(pointer, {f"OLD{hostile}": ("5",)})})
    for text in (plan_text(changes), plan_markdown(changes)):
        assert raw_controls(text) == []
        assert "OLD\\x1b[2J" in text


def test_a_report_from_a_poll_s_record_without_fetching() -> None:
    from cappi.domain.feed import RowExample
    from cappi.domain.last_poll import LastPoll
    from cli.feed_last_poll import report_of_last_poll

    poll = LastPoll(
        "aaa",
        "rejected",
        1,
        0.5,
        error_code="too_many_rejected",
        error="10 of 100 rows failed validation (10.0% > 5%); most common reason: tech_id_invalid (...)",
        rows=100,
        accepted=90,
        rejected={"tech_id_invalid": 10},
        examples={"tech_id_invalid": (RowExample(41, '"a/b"'),)},
        warnings={"quoted_call_id": 3},
    )
    report = report_of_last_poll(poll, frozenset({212}))
    assert (report["verdict"], report["would"]) == ("fail", "reject")
    assert failed(report) == ["tech_id_invalid", "rejected_share"]
    (example,) = rule(report, "tech_id_invalid")["examples"]
    assert (example["row_number"], "call_id" in example) == (42, False)  # the record keeps no CallId
    assert rule(report, "quoted_call_id")["count"] == 3
    text = report_text(report)
    assert '  row 42: "a/b"' in text
    assert "to fix: Send TechId as a quoted string" in text
    assert report["reason"].startswith("too_many_rejected (too many rows rejected): 10 of 100 rows")

    html = LastPoll("aaa", "rejected", 1, 0.5, error_code="not_json", error="the feed is not valid JSON (HTML)")
    report = report_of_last_poll(html, frozenset({212}))
    assert failed(report) == ["json"]
    assert rule(report, "json")["examples"] == ["the feed is not valid JSON (HTML)"]
    assert report_of_last_poll(LastPoll("aaa", "ok", 1, 0.5, rows=5, accepted=5), frozenset({212}))["verdict"] == "pass"
    held = report_of_last_poll(LastPoll("aaa", "held", 1, 0.5, rows=5, accepted=5, held_clubs=(212,)), frozenset({212}))
    assert (held["would"], held["verdict"]) == ("hold", "warn")
    failed_poll = LastPoll("aaa", "failed", 1, 0.5, error_code="timeout", error="no answer", http_status=None)
    assert report_of_last_poll(failed_poll, frozenset({212}))["fetch_error"]["code"] == "timeout"
