"""Local mode's console poll line: the leading part scripts read stays as it is; why a feed was refused or held
follows on indented lines, in words, with an example row per rule."""

from __future__ import annotations

from dataclasses import asdict

from cappi.domain.feed import RowExample
from local.console import describe_poll


def result(**fields: object) -> dict:
    base = {"status": "ok", "clubs": [], "rejected": {}, "examples": {}, "warnings": {}}
    return {**base, "fetch_seconds": 0.25, "parse_seconds": 0.05, **fields}


def test_a_clean_poll_is_one_line() -> None:
    clubs = [{"club_id": 212, "outcome": "published", "calls": 3, "techs": 2, "previous_calls": None}]
    assert describe_poll({"source": "aaa"}, result(clubs=clubs), None) == (
        "ingest aaa: club 212 published (3 calls, 2 techs) in 0.30s"
    )


def test_rejected_rows_held_drops_and_warnings_are_explained_below_the_line() -> None:
    clubs = [{"club_id": 212, "outcome": "held", "calls": 5, "techs": 1, "previous_calls": 150}]
    examples = {"call_id_invalid": [asdict(RowExample(100, "1.5")), asdict(RowExample(140, '"x"'))]}
    text = describe_poll(
        {"source": "aaa"},
        result(
            clubs=clubs,
            rejected={"call_id_invalid": 3, "club_not_owned": 1},
            examples=examples,
            warnings={"quoted_call_id": 2},
        ),
        None,
    )
    assert text.splitlines() == [
        "ingest aaa: club 212 held (5 calls, 1 techs), 4 rows rejected in 0.30s",
        "    rejected 3 rows (CallId not a whole number of up to 7 digits), e.g. row 100: 1.5",
        "    rejected 1 row (a ClubId this source is not registered for)",
        "    held: club 212 sent 5 calls where 150 were published; the sudden-drop rule waits for the next poll to"
        " confirm",
        "    warning: 2 rows with a quoted CallId (the document asks for a JSON number)",
    ]


def test_a_rejected_feed_keeps_its_line_and_says_which_rule() -> None:
    text = describe_poll(
        {"source": "bbb"},
        result(
            status="rejected",
            error_code="too_many_rejected",
            error="40 of 100 rows failed validation",
            rejected={"tech_id_invalid": 40},
            examples={"tech_id_invalid": [asdict(RowExample(3, '"a/b"'))]},
        ),
        None,
    )
    first, *rest = text.splitlines()
    assert first.startswith("ingest bbb: rejected (too_many_rejected: 40 of 100 rows failed validation)")
    assert rest == ['    rejected 40 rows (TechId not 1 to 32 letters and digits), e.g. row 3: "a/b"']


def test_a_poll_that_did_not_parse_its_body_says_why_after_the_usual_line() -> None:
    clubs = [{"club_id": 212, "outcome": "unchanged", "calls": 3, "techs": 2, "previous_calls": 3}]
    for why, said in (("304", "unchanged (304), not parsed"), ("same_body", "unchanged (same body), not parsed")):
        line = describe_poll({"source": "aaa"}, result(clubs=clubs, rejected={"x": 1}, unchanged_by=why), None)
        assert (
            line.splitlines()[0]
            == f"ingest aaa: club 212 unchanged (3 calls, 2 techs), 1 rows rejected in 0.30s; {said}"
        )
