"""Terminal and Markdown injection from a feed: a club's text (TechIds, example rows, error excerpts, HTTP reason
phrases and bodies) reaches local mode's console, `cappi check-feed` (text and `--format markdown`), `cappi poll`
and `cappi status`. None of it may drive the reader's terminal (C0 and C1 controls, DEL, ESC and CSI sequences),
reorder what is shown (bidi controls) or forge a line; in Markdown, a `|`, a backtick or a newline must not break a
table's columns, and `<`/`>` must not become HTML."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from cappi.domain.feed import RowExample
from cappi.inert import for_terminal, markdown_cell, markdown_code
from cli.main import main
from cli.operations import describe
from local.console import Console, describe_poll

# One of each class: C1 CSI, DEL, an ESC sequence, NUL, bell, backspace, carriage return, newline, tab, the bidi
# controls (marks, embeddings and overrides, isolates), a lone surrogate, the line separator.
HOSTILE = {
    "csi": "\u009b31m",
    "c1": "\u0085\u008d",
    "del": "A\u007fB",
    "esc": "\x1b[2J\x1b]0;title\x07",
    "c0": "\x00\x08\x0b\x0c",
    "cr": "ok\rFAKE",
    "newline": "x\ningest forged: club 1 published (1 calls, 1 techs)",
    "tab": "a\tb",
    "rlo": "\u202egnp.exe",
    "marks": "\u200e\u200f\u061c",
    "embeddings": "\u202a\u202b\u202c\u202d",
    "isolates": "\u2066\u2067\u2068\u2069",
    "surrogate": "\ud800",
    "separators": "\u2028\u2029",
}
TABLE_BREAKERS = ["a|b", "`x", "``", "a\nb", " lead", "trail ", "<b>x</b>", "\\|", "a\\", "[link](http://x)"]


def raw_controls(text: str) -> list[str]:
    """Every character in `text` that a terminal would act on rather than show (newlines between lines aside)."""
    return [f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"}]


def cells(row: str) -> int:
    """How many cells a Markdown table row has, split on `|` not escaped by a backslash, read both ways renderers
    read it: a `|` right after any backslash is escaped (GitHub, markdown-it), or backslashes pair up first."""
    assert row.startswith("|") and row.endswith("|"), row
    after_any = len(re.split(r"(?<!\\)\|", row[1:-1]))
    paired = len(re.split(r"(?<!\\)\|", row[1:-1].replace("\\\\", "")))
    assert after_any == paired, row
    return paired


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_for_terminal_escapes_each_class_visibly(kind: str) -> None:
    shown = for_terminal(f"T{HOSTILE[kind]}Z")
    assert raw_controls(shown) == [] and "\n" not in shown
    assert shown.startswith("T") and shown.endswith("Z") and "\\" in shown
    assert for_terminal(shown) == shown  # escaping twice changes nothing
    shown.encode()  # printable on a UTF-8 terminal


def test_for_terminal_keeps_ordinary_text() -> None:
    assert for_terminal("AB12 Müller 東京 café ") == "AB12 Müller 東京 café "
    assert for_terminal("\u009b") == "\\x9b" and for_terminal("\u202e") == "\\u202e"


@pytest.mark.parametrize("value", [*TABLE_BREAKERS, *HOSTILE.values()])
def test_markdown_cells_and_code_spans_keep_a_table_row_in_its_columns(value: str) -> None:
    for made in (markdown_cell(value), markdown_code(value)):
        row = f"| {made} | ok | {made} |"
        assert "\n" not in row and raw_controls(row) == []
        assert cells(row) == 3, row
        assert "<" not in markdown_cell(value) and ">" not in markdown_cell(value)
        assert not markdown_cell(value).startswith(" ") and not markdown_cell(value).endswith(" ")


def test_a_code_span_holds_backticks_without_closing_early() -> None:
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x") == "`` `x ``"


# --- local mode's console -----------------------------------------------------------------------------------


def poll_result(value: str) -> dict[str, Any]:
    clubs = [{"club_id": 212, "outcome": "published", "calls": 3, "techs": 2, "previous_calls": None}]
    return {
        "status": "ok",
        "clubs": clubs,
        "rejected": {"tech_id_invalid": 1},
        "examples": {"tech_id_invalid": [asdict(RowExample(7, json.dumps(value, ensure_ascii=False)))]},
        "warnings": {},
        "fetch_seconds": 0.25,
        "parse_seconds": 0.05,
    }


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_console_poll_line_shows_a_hostile_example_inert(kind: str) -> None:
    text = describe_poll({"source": "aaa"}, poll_result(HOSTILE[kind]), None)
    lines = text.split("\n")
    assert lines[0] == "ingest aaa: club 212 published (3 calls, 2 techs), 1 rows rejected in 0.30s"
    assert len(lines) == 2 and lines[1].startswith("    rejected 1 row (")
    assert raw_controls(text) == []


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_refused_feed_and_a_failed_handler_show_the_club_s_words_inert(kind: str) -> None:
    value = HOSTILE[kind]
    refused = {"status": "failed", "error_code": "http_status", "error": f"HTTP 503 {value}: <html>{value}"}
    text = describe_poll({"source": "aaa"}, refused, None)
    assert text.startswith("ingest aaa: failed (http_status: HTTP 503 ") and "\n" not in text
    assert raw_controls(text) == []
    crashed = describe_poll({"source": "aaa"}, None, RuntimeError(f"excerpt {value}"))
    assert crashed.startswith("ingest aaa: FAILED in the handler (RuntimeError: excerpt ") and "\n" not in crashed
    assert raw_controls(crashed) == []


def test_the_console_prints_no_raw_control_whatever_it_is_given() -> None:
    stream = io.StringIO()
    Console(stream).say("line one \u009b2J\nline two \u202e\x1b[31m")
    assert stream.getvalue() == "line one \\x9b2J\nline two \\u202e\\x1b[31m\n"


# --- cappi check-feed, cappi poll, cappi status --------------------------------------------------------------


def feed_file(tmp_path: Path, *techs: str) -> Path:
    rows = [{"CallId": n, "ClubId": 212, "TechId": f"T{n % 9}"} for n in range(1, 101)]
    rows += [{"CallId": 200 + n, "ClubId": 212, "TechId": tech} for n, tech in enumerate(techs)]
    path = tmp_path / "feed.json"
    path.write_text(json.dumps({"Result": {"Calls": rows}}, ensure_ascii=False), encoding="utf-8")
    return path


HOSTILE_TECHS = [f"T{v}" for k, v in sorted(HOSTILE.items()) if k != "surrogate"]


def test_check_feed_text_report_prints_no_raw_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = feed_file(tmp_path, HOSTILE["csi"], HOSTILE["rlo"], HOSTILE["del"], HOSTILE["esc"], HOSTILE["c1"])
    main(["check-feed", "--file", str(path), "--club-ids", "212"])
    out = capsys.readouterr().out
    assert "TechId" in out and "\\x9b" in out
    assert raw_controls(out) == []


def test_check_feed_markdown_keeps_its_table_whatever_the_techids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    techs = ["a|b", "`x`", "<img src=x>", " pad ", *HOSTILE_TECHS]
    # Each hostile TechId is its own rejected row; the examples show up to five per rule: several runs cover all.
    for start in range(0, len(techs), 5):
        path = feed_file(tmp_path, *techs[start : start + 5])
        main(["check-feed", "--file", str(path), "--club-ids", "212", "--format", "markdown"])
        out = capsys.readouterr().out
        assert raw_controls(out) == []
        table = [line for line in out.split("\n") if line.startswith("|")]
        assert table[0] == "| rule | result | rows | examples (row: value) |"
        assert all(cells(line) == 4 for line in table), table
        outside_code = [re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line) for line in table]
        assert not any("<" in line for line in outside_code), outside_code  # inside a code span `<` is no HTML
        assert any("TechId" in line and "FAILED" in line for line in table)


def test_cappi_poll_describes_a_club_s_words_inert() -> None:
    out = io.StringIO()
    summary = {
        "source": "aaa",
        "status": "failed",
        "error_code": "http_status",
        "error": f"HTTP 500 {HOSTILE['csi']} {HOSTILE['rlo']}",
        "rejected": {"tech_id_invalid": 1},
        "examples": {"tech_id_invalid": [{"index": 3, "value": json.dumps(HOSTILE["esc"], ensure_ascii=False)}]},
    }
    describe(summary, out)
    assert out.getvalue().startswith("aaa: failed (http_status: HTTP 500 \\x9b31m \\u202egnp.exe)")
    assert raw_controls(out.getvalue()) == []


def test_cappi_status_shows_a_last_error_inert(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from cli.main import _print_table
    from cli.status import FAILING, SourceStatus

    error = f"http_status: HTTP 502 {HOSTILE['csi']}{HOSTILE['rlo']}{HOSTILE['esc']} [bold]markup[/bold]"
    row = SourceStatus(name="aaa", enabled=True, club_ids=[212], state=FAILING, last_error=error)
    _print_table(SimpleNamespace(where="local mode", stale_after_s=600), [row])  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert raw_controls(out) == []
    assert "[bold]markup[/bold]" in out  # shown as written, not taken as rich markup
