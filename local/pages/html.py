"""The pages' HTML: every value passes through `esc` (html.escape, quotes included), so a TechId, an error text or
a feed's example row holding markup shows as text. No inline script or style: the Content-Security-Policy allows
only this origin's own files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any

from cappi.domain.source_status import SourceStatus


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, scripts: Iterable[str] = ()) -> str:
    tags = "".join(f'<script src="{esc(s)}" defer></script>' for s in scripts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="icon" href="/pages/favicon.svg"><link rel="stylesheet" href="/pages/pages.css">'
        f"{tags}</head><body>"
        '<nav><a href="/">CAPPI local mode</a> <a href="/docs">API reference</a> <a href="/status">Status</a></nav>'
        f"<main>{body}</main></body></html>"
    )


def home(
    *, base_url: str, audience: str, issuer: str, client_id: str | None, example: tuple[int, str] | None, route: str
) -> str:
    club, tech = example if example is not None else (212, "TECH_ID")
    query_path = route.replace("{ClubId}", str(club)).replace("{TechId}", tech)
    if client_id is not None:
        body = json.dumps(
            {
                "client_id": client_id,
                "client_secret": "SECRET",
                "audience": audience,
                "grant_type": "client_credentials",
            }
        ).replace('"SECRET"', '"\'"$CAPPI_CLIENT_SECRET"\'"')
        token = (
            f"TOKEN=$(curl -s -X POST {base_url}/oauth/token -H 'Content-Type: application/json' -d '{body}' "
            "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        where = (
            f"<p>The local issuer's client <code>{esc(client_id)}</code>: its secret is printed in local mode's "
            "console (the <code>clients:</code> lines) or set in your <code>CAPPI_CLIENTS_FILE</code>; this page "
            "never shows it. Put it in <code>CAPPI_CLIENT_SECRET</code> first.</p>"
        )
    else:
        token = f"TOKEN=...  # a client-credentials token from {issuer}, audience {audience}"
        where = f"<p>Tokens come from the trusted issuer <code>{esc(issuer)}</code> (<code>CAPPI_ISSUER</code>).</p>"
    which = (
        f"<p>Technician <code>{esc(tech)}</code> of club {esc(club)} has open calls.</p>"
        if example is not None
        else '<p id="placeholder">No poll has published yet: replace <code>TECH_ID</code> with a technician of '
        "club 212, or reload this page after the first poll.</p>"
    )
    query = f'curl -s -H "Authorization: Bearer $TOKEN" {base_url}{query_path}'
    return page(
        "CAPPI local mode",
        "<h1>CAPPI local mode</h1>"
        f"<p>The whole of CAPPI on this machine: the API and a token issuer at <code>{esc(base_url)}</code>, "
        "polling the club feeds of its registry. Nothing here needs a token.</p>"
        "<h2>Get a token</h2>"
        f'{where}<pre id="token-command">{esc(token)}</pre>'
        "<h2>Query a technician's open calls</h2>"
        f'{which}<pre id="query-command">{esc(query)}</pre>'
        "<h2>More</h2><ul>"
        '<li><a href="/docs">API reference</a> (rendered from docs/openapi.json)</li>'
        '<li><a href="/status">Club status</a>: every source, as <code>cappi status</code> says it</li>'
        "<li>Each source's feed report: <code>/status/SOURCE</code>, linked from the status page</li></ul>",
    )


STATUS_COLUMNS = ("source", "state", "age", "calls", "techs", "last error", "held clubs", "rejected rows")


def status_cells(row: SourceStatus) -> list[str]:
    """A row's cells as text (the page's script renders the same from /status.json)."""
    age = "" if row.snapshot_age_s is None else f"{row.snapshot_age_s:g} s"
    rejected = ", ".join(f"{k} {v}" for k, v in row.rejected.items())
    error = row.last_error or ""
    if row.last_http_status is not None and (error or row.last_http_status >= 400):
        error = f"HTTP {row.last_http_status}" + (f": {error}" if error else "")
    return [
        row.name,
        row.state_words,
        age,
        "" if row.calls is None else str(row.calls),
        "" if row.techs is None else str(row.techs),
        error,
        ", ".join(str(c) for c in row.held_clubs),
        f"{row.rejected_rows}" + (f" ({rejected})" if rejected else ""),
    ]


def status(rows: list[SourceStatus]) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in STATUS_COLUMNS)
    body = "".join(_status_row(row) for row in rows)
    return page(
        "CAPPI status",
        "<h1>Club status</h1><p>Every source as <code>cappi status</code> says it; this page follows new polls "
        '(<span id="updated">as loaded</span>).</p>'
        f'<table id="status"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
        scripts=["/pages/status.js"],
    )


def _status_row(row: SourceStatus) -> str:
    cells = status_cells(row)
    link = f'<a href="/status/{esc(row.name)}">{esc(cells[0])}</a>'
    rest = "".join(f"<td>{esc(c)}</td>" for c in cells[1:])
    return f'<tr data-source="{esc(row.name)}" class="{esc(row.state)}"><td>{link}</td>{rest}</tr>'


def feed(source: str, report: dict[str, Any] | None, plan: Any, note: str | None) -> str:
    parts = [f"<h1>Feed report: {esc(source)}</h1>", '<p><a href="/status">back to the status</a></p>']
    if note:
        parts.append(f'<p class="note">{esc(note)}</p>')
    if report is not None:
        parts.append(_report(report))
    parts.append("<h2>Feed plan: what this feed would change for testers</h2>")
    parts.append(_plan(plan) if isinstance(plan, dict) else "<p>No plan for this feed.</p>")
    return page(f"CAPPI feed report: {source}", "".join(parts))


def _report(report: dict[str, Any]) -> str:
    verdict = esc(str(report.get("verdict", "")).upper())
    out = [
        f'<p id="verdict" class="{esc(report.get("verdict"))}">{verdict}: CAPPI would <b>{esc(report.get("would"))}'
        f"</b> this feed ({esc(report.get('reason'))}).</p>",
        f"<p>Feed: <code>{esc(report.get('origin'))}</code>; rows {esc(report.get('rows'))}, accepted "
        f"{esc(report.get('accepted'))}; {esc(report.get('key_casing_words') or '')}. Example rows are numbered "
        "from 1, in the order the feed lists them.</p>",
    ]
    rules = report.get("rules") or []
    if rules:
        out.append(_rules_table("rules", "rule", rules))
    warning_rules = report.get("warning_rules") or []
    if warning_rules:
        out.append("<h2>Warnings</h2>" + _rules_table("warnings", "warning", warning_rules))
    return "".join(out)


def _rules_table(table_id: str, what: str, rules: list[dict[str, Any]]) -> str:
    rows = [
        f'<table id="{table_id}"><thead><tr><th>{what}</th><th>result</th><th>rows</th><th>examples</th>'
        "<th>what to change</th></tr></thead><tbody>"
    ]
    for rule in rules:
        passed = rule.get("passed", not rule.get("count"))
        result = "not checked" if passed is None else "ok" if passed else "FAILED" if "passed" in rule else "seen"
        code = f" <code>{esc(rule.get('code') or rule.get('rule'))}</code>"
        examples = "<br>".join(_example(e) for e in rule.get("examples", []))
        rows.append(
            f"<tr><td>{esc(rule.get('text') or rule.get('rule'))}{code}</td><td>{result}</td>"
            f"<td>{esc(rule.get('count'))}</td><td>{examples}</td><td>{esc(rule.get('fix', ''))}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _example(example: Any) -> str:
    if isinstance(example, dict) and "row_number" in example:
        call = f", CallId {esc(example['call_id'])}" if example.get("call_id") is not None else ""
        value = f": <code>{esc(example['value'])}</code>" if example.get("value") is not None else ""
        return f"row {esc(example['row_number'])}{call}{value}"
    if isinstance(example, dict):
        fields = ", ".join(f"{k} {json.dumps(v)}" for k, v in example.items())
        return f"<code>{esc(fields)}</code>"
    return f"<code>{esc(example)}</code>"


def _plan(plan: dict[str, Any]) -> str:
    """Counts first (per club: opened, closed, technicians, the drop guard's word), then the technicians."""
    out = [f'<p id="plan-summary">{esc(plan.get("summary", ""))}</p>']
    for club in plan.get("clubs", []):
        now = "nothing published yet" if club.get("calls_now") is None else f"{club['calls_now']} calls now"
        after = "" if club.get("calls_after") is None else f", {club['calls_after']} after"
        out.append(
            f'<h3>Club {esc(club.get("club_id"))}: {esc(club.get("outcome"))}</h3><p class="plan-counts">'
            f"{esc(club.get('opened'))} calls opened, {esc(club.get('closed'))} closed, for "
            f"{esc(club.get('techs_changed'))} technicians ({esc(club.get('techs_new'))} new, "
            f"{esc(club.get('techs_gone'))} left with none); {esc(now)}{esc(after)}. Drop guard: "
            f"{esc(club.get('drop_guard'))}.</p>"
        )
        techs = club.get("technicians") or []
        if techs:
            out.append("<table><thead><tr><th>technician</th><th>opened</th><th>closed</th></tr></thead><tbody>")
            for tech in techs:
                out.append(
                    f"<tr><td><code>{esc(tech.get('tech_id'))}</code></td>"
                    f"<td>{_calls(tech.get('opened', []), tech.get('opened_count', 0))}</td>"
                    f"<td>{_calls(tech.get('closed', []), tech.get('closed_count', 0))}</td></tr>"
                )
            out.append("</tbody></table>")
            hidden = int(club.get("techs_changed") or 0) - len(techs)
            if hidden > 0:
                out.append(f"<p>... and {hidden} more technicians.</p>")
    return "".join(out)


def _calls(shown: list[Any], count: int) -> str:
    more = count - len(shown)
    return esc(", ".join(str(c) for c in shown)) + (f" (+{more} more)" if more > 0 else "")


def not_found(what: str) -> str:
    return page("Not found", f'<h1>Not found</h1><p>{esc(what)}</p><p><a href="/status">All sources</a></p>')


def docs(missing: str | None) -> str:
    if missing is not None:
        return page("CAPPI API reference", f"<h1>API reference</h1><p>{esc(missing)}</p>")
    return page(
        "CAPPI API reference",
        '<div id="swagger-ui"></div>',
        scripts=["/docs/assets/swagger-ui-bundle.js", "/pages/docs.js"],
    ).replace("</title>", '</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css">', 1)
