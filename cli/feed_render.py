"""The feed report (`cli.feed_report`) and the feed plan (`cli.feed_plan`) for people: plain text for a terminal and
Markdown a club can be sent. Every value that can come from the feed or the club's server (the origin, messages,
example rows, CallIds, TechIds, key spellings) goes through `cappi.inert`, so it cannot drive a terminal, break a
table's columns or become HTML."""

from __future__ import annotations

from typing import Any

from cappi.inert import for_terminal, markdown_cell, markdown_code

ROW_NUMBERS = "Example rows are numbered from 1, in the order of Result.Calls."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _result(entry: dict[str, Any], warning: bool) -> str:
    if warning:
        return "WARN" if entry.get("changes_verdict", True) else "note"
    return {True: "ok", False: "FAILED", None: "not checked"}[entry["passed"]]


def _entries(report: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    return [(r, False) for r in report.get("rules", [])] + [(w, True) for w in report.get("warning_rules", [])]


def _needs_change(entry: dict[str, Any], warning: bool) -> bool:
    return warning or entry["passed"] is False


def _example_text(example: Any, value: Any) -> str:
    """`row 101, CallId 8679: "ab/12"`, every part given to `value` to make inert for its medium."""
    if not isinstance(example, dict):
        return value(example)
    if "call_id" not in example:  # the rows were not at hand (a poll's record keeps the value only)
        call = ""
    else:
        call = ", no CallId" if example["call_id"] is None else f", CallId {value(example['call_id'])}"
    shown = example.get("value")
    return f"row {example['row_number']}{call}" + (
        f": {value(shown)}" if shown and shown != example.get("call_id") else ""
    )


def _http_line(http: dict[str, Any], status: str) -> str | None:
    if "status" not in http:
        return None
    return (
        f"HTTP {status} in {http['latency_ms']} ms, {http['bytes']} bytes"
        f"{', compressed on the wire' if http.get('compressed') else ''}, "
        f"{'HTTPS with a valid certificate' if http.get('https') else 'plain HTTP'}"
    )


def report_text(report: dict[str, Any]) -> str:
    """The report for a terminal: the verdict and why, then every rule and warning with its example rows and fix."""
    t = for_terminal
    lines = [
        f"{report['verdict'].upper()}: CAPPI would {report['would']} {t(report['origin'])}",
        f"  {t(report['reason'])}",
    ]
    http_line = _http_line(report.get("http") or {}, t((report.get("http") or {}).get("status")))
    if http_line:
        lines.append("  " + http_line)
    if report.get("rules"):
        found = ", ".join(map(str, report.get("club_ids_found") or [])) or "none"
        lines += [
            f"  rows {report['rows']}, accepted {report['accepted']}, duplicates {report.get('duplicates', 0)}; "
            f"club IDs found: {found}"
            if "club_ids_found" in report
            else f"  rows {report['rows']}, accepted {report['accepted']}",
            f"  {t(report['key_casing_words'])}",
            "",
            f"Rules and warnings ({ROW_NUMBERS[0].lower()}{ROW_NUMBERS[1:-1]}):",
        ]
    for entry, warning in _entries(report):
        code = entry.get("code", entry["rule"])
        head = f"  {_result(entry, warning):<12}{t(entry['text'])} ({code})"
        if not warning and entry["passed"] is None:
            lines.append(head)
            continue
        counted = entry["count"] and code not in _DOCUMENT_CODES
        share = f" ({entry['share']:.1%} of rows)" if counted and "share" in entry else ""
        lines.append(head + (f": {_plural(entry['count'], entry.get('unit', 'row'))}{share}" if counted else ""))
        for example in entry["examples"]:
            lines.append("                " + _example_text(example, t))
        if entry.get("keys"):
            lines.append("                keys spelled " + ", ".join(t(k) for k in entry["keys"]))
        if _needs_change(entry, warning):
            lines.append(f"                to fix: {t(entry['fix'])}")
    return "\n".join(lines) + "\n"


_DOCUMENT_CODES = frozenset({"not_json", "too_deep", "bad_shape"})


def report_markdown(report: dict[str, Any]) -> str:
    """A report a club can be sent: the verdict, one table of every rule and warning, then what to change."""
    cell, code_span = markdown_cell, markdown_code
    lines = [
        f"# CAPPI feed check: {cell(report['verdict'].upper())}",
        "",
        f"- Feed: {code_span(report['origin'])}",
        f"- CAPPI would **{cell(report['would'])}** this feed: {cell(report['reason'])}",
    ]
    http = report.get("http") or {}
    http_line = _http_line(http, cell(http.get("status")))
    if http_line:
        lines.append(f"- {http_line}")
    if not report.get("rules"):
        return "\n".join(lines) + "\n"
    lines += [
        f"- Keys: {cell(report['key_casing_words'])}",
        "",
        f"Rows: {report['rows']}, accepted: {report['accepted']}. {ROW_NUMBERS}",
        "",
        "| rule | result | rows | examples (row: value) |",
        "| --- | --- | --- | --- |",
    ]
    for entry, warning in _entries(report):
        code = entry.get("code", entry["rule"])
        examples = "; ".join(_example_text(e, code_span if isinstance(e, dict) else cell) for e in entry["examples"])
        if entry.get("keys"):
            examples = "keys spelled " + ", ".join(code_span(k) for k in entry["keys"])
        count = "-" if not warning and entry["passed"] is None else entry["count"]
        lines.append(f"| {cell(entry['text'])} (`{code}`) | {_result(entry, warning)} | {count} | {examples} |")
    fixes = [(e, w) for e, w in _entries(report) if _needs_change(e, w)]
    if fixes:
        lines += ["", "## What to change", ""]
        lines += [f"- **{cell(e['text'])}** (`{e.get('code', e['rule'])}`): {cell(e['fix'])}" for e, _w in fixes]
    return "\n".join(lines) + "\n"


def _calls(ids: list[str], total: int, value: Any) -> str:
    more = total - len(ids)
    return ", ".join(value(i) for i in ids) + (f" (+{more} more)" if more > 0 else "")


def _club_counts(club: dict[str, Any]) -> str:
    techs = _plural(club["techs_changed"], "technician")
    now = "nothing published yet" if club["calls_now"] is None else f"{club['calls_now']} calls now"
    after = "" if club["calls_after"] is None else f", {club['calls_after']} after"
    return (
        f"{club['opened']} calls opened, {club['closed']} closed, for {techs} "
        f"({club['techs_new']} new, {club['techs_gone']} left with none); {now}{after}"
    )


def _tech_changes(tech: dict[str, Any], value: Any) -> str:
    parts = []
    if tech["opened_count"]:
        parts.append(f"opened {_calls(tech['opened'], tech['opened_count'], value)}")
    if tech["closed_count"]:
        parts.append(f"closed {_calls(tech['closed'], tech['closed_count'], value)}")
    return "; ".join(parts)


def plan_text(plan: dict[str, Any]) -> str:
    """The plan for a terminal: per club the counts, the drop guard, then the technicians with the most changes."""
    t = for_terminal
    lines = [f"Plan, against what testers see now: {t(plan['summary'])}"]
    for club in plan["clubs"]:
        lines.append(f"  club {club['club_id']}: {club['outcome']}: {_club_counts(club)}")
        lines.append(f"    drop guard: {club['drop_guard']}")
        for tech in club["technicians"]:
            lines.append(f"    {t(tech['tech_id'])}: {_tech_changes(tech, t)}")
        hidden = club["techs_changed"] - len(club["technicians"])
        if hidden > 0:
            lines.append(f"    ... and {_plural(hidden, 'more technician')}")
    return "\n".join(lines) + "\n"


def plan_markdown(plan: dict[str, Any]) -> str:
    lines = ["", "## What this feed would change for testers", "", markdown_cell(plan["summary"]), ""]
    for club in plan["clubs"]:
        lines.append(
            f"- Club {club['club_id']}: **{club['outcome']}**: {_club_counts(club)}. Drop guard: {club['drop_guard']}."
        )
        lines += [f"  - {markdown_code(t['tech_id'])}: {_tech_changes(t, markdown_code)}" for t in club["technicians"]]
    return "\n".join(lines) + "\n"
