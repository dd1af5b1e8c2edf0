"""`cappi check-feed`: a club's feed against the integration document, before go-live.

The very parser and rules ingest uses (`cappi.domain.feed.parse_feed`) decide; this module only fetches the
feed (through the same club client), measures it, and reports every rule with counts and example rows, what
CAPPI would do with the feed, and a verdict: `fail` when CAPPI would reject it, `warn` when it would publish but
rows were dropped or the feed breaks a convention, else `pass`. Secrets are read from the environment and never
printed.
"""

from __future__ import annotations

import gzip
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cappi.domain import feed
from cappi.domain.ids import MAX_CLUB_ID
from cappi.domain.registry import ClubAuth, ClubSource
from cappi.inert import markdown_cell, markdown_code
from cli.target import TargetError

FEED_PATH = "/service/calls/status"
PASS, WARN, FAIL = "pass", "warn", "fail"
SECRET_NAME = "check-feed"  # noqa: S105 - the in-memory name of the credential read from the environment


@dataclass(frozen=True)
class Fetched:
    body: bytes
    origin: str  # the file or URL, for the report (no credentials)
    http: dict[str, Any] | None = None  # status, latency_ms, bytes_on_wire, content_type, https, attempts
    error: dict[str, Any] | None = None  # code, message, status: the fetch failed


def read_file(path: str) -> Fetched:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            return Fetched(b"", path, error={"code": "bad_gzip", "message": str(exc), "status": None})
    return Fetched(raw, path)


def fetch_url(url: str, *, auth: ClubAuth, secret: str | None, headers: dict[str, str], limits: Any = None) -> Fetched:
    """Fetch a URL given on the command line, its credential from the environment."""
    from cappi.adapters.secrets import StaticSecrets

    base = url[: -len(FEED_PATH)] if url.rstrip("/").endswith(FEED_PATH) else url
    source = ClubSource(
        name="check-feed",
        club_ids=frozenset({0}),
        base_url=base.rstrip("/"),
        auth=auth,
        headers=headers,
    )
    return fetch_source(source, StaticSecrets({SECRET_NAME: secret} if secret is not None else {}), limits)


def fetch_source(source: ClubSource, secrets: Any, limits: Any = None) -> Fetched:
    """Fetch with CAPPI's own client: HTTPS (loopback may be HTTP), same-host redirects, deadline, size cap."""
    from cappi.adapters.club_client import ClientLimits, ClubFeedClient, FeedFetchError

    started = time.perf_counter()
    try:
        result = ClubFeedClient(secrets, limits or ClientLimits()).fetch(source)
    except FeedFetchError as exc:
        error = {"code": exc.code, "message": exc.message, "status": exc.status}
        https = source.feed_url.startswith("https:")
        return Fetched(b"", source.feed_url, http={"latency_ms": _ms(started), "https": https}, error=error)
    http = {
        "status": result.status,
        "latency_ms": _ms(started),
        "bytes": len(result.body),
        "bytes_on_wire": result.bytes_on_wire,
        "compressed": result.bytes_on_wire < len(result.body),
        "content_type": result.content_type,
        "https": result.url.startswith("https:"),
        "certificate_valid": True if result.url.startswith("https:") else None,  # the client verifies it
        "attempts": result.attempts,
    }
    return Fetched(result.body, source.feed_url, http=http)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def auth_from_env(args: Any) -> tuple[ClubAuth, str | None]:
    """The auth options as a registry entry would give them (its secret named `SECRET_NAME`), and the secret read
    from the named variable."""
    options = (
        ("bearer", args.bearer_env),
        ("basic", args.basic_env),
        ("api_key", args.api_key_env),
        ("oauth2_client_credentials", args.oauth2_secret_env),
    )
    chosen = [(kind, var) for kind, var in options if var]
    if len(chosen) > 1:
        raise TargetError("give one of --bearer-env, --basic-env, --api-key-env, --oauth2-secret-env")
    if not chosen:
        return ClubAuth(), None
    kind, var = chosen[0]
    value = os.environ.get(var)
    if not value:
        raise TargetError(f"environment variable {var} (the club's credential) is not set")
    if kind == "api_key":
        if not args.api_key_header:
            raise TargetError("--api-key-env needs --api-key-header NAME")
        return ClubAuth(kind, SECRET_NAME, header=args.api_key_header), value
    if kind == "oauth2_client_credentials":
        if not (args.oauth2_token_url and args.oauth2_client_id):
            raise TargetError("--oauth2-secret-env needs --oauth2-token-url and --oauth2-client-id")
        auth = ClubAuth(
            kind,
            SECRET_NAME,
            token_url=args.oauth2_token_url,
            client_id=args.oauth2_client_id,
            scope=args.oauth2_scope or None,
            audience=args.oauth2_audience or None,
        )
        return auth, value
    return ClubAuth(kind, SECRET_NAME), value


def _key_spellings(body: bytes) -> tuple[dict[str, dict[str, int]], int, set[int]]:
    """How rows spell the three fields, how many rows carry other fields, and the ClubIds found (valid ones)."""
    try:
        calls = feed.calls_array(feed.load_json(body))
    except feed.FeedRejected:
        return {}, 0, set()
    spellings: dict[str, Counter[str]] = {"CallId": Counter(), "ClubId": Counter(), "TechId": Counter()}
    extra = 0
    clubs: set[int] = set()
    for row in calls:
        if type(row) is not dict:
            continue
        known = 0
        for key, value in row.items():
            name = {"callid": "CallId", "clubid": "ClubId", "techid": "TechId"}.get(key.lower())
            if name:
                spellings[name][key] += 1
                known += 1
                if name == "ClubId" and type(value) is int and 0 <= value <= MAX_CLUB_ID:
                    clubs.add(value)
        extra += len(row) > known
    return {k: dict(v) for k, v in spellings.items()}, extra, clubs


def check(
    fetched: Fetched, club_ids: frozenset[int] | None, published_calls: dict[int, int] | None = None
) -> dict[str, Any]:
    """The conformance report (JSON-ready): rules, counts, examples, would and verdict. With the call counts
    readers see now (`published_calls`, per club), a sudden drop shows as `hold`, as ingest would hold it."""
    report: dict[str, Any] = {"origin": fetched.origin, "http": fetched.http}
    if fetched.error is not None:
        report.update(
            verdict=FAIL,
            would="reject",
            reason=f"{fetched.error['code']}: {fetched.error['message']}",
            fetch_error=fetched.error,
            rows=0,
            accepted=0,
            rules=[],
            shape=None,
        )
        return report
    spellings, extra_rows, clubs_found = _key_spellings(fetched.body)
    owned = club_ids if club_ids is not None else frozenset(range(MAX_CLUB_ID + 1))
    parsed: feed.ParsedFeed | None
    try:
        parsed = feed.parse_feed(fetched.body, owned)
        rejection = None
    except feed.FeedRejected as exc:
        parsed, rejection = exc.parsed, exc
    shape_ok = rejection is None or rejection.code == "too_many_rejected"
    not_json = rejection is not None and rejection.code == "not_json"
    rules = [
        {
            "rule": "json",
            "text": "the body is JSON",
            "passed": not not_json,
            "count": 1 if not_json else 0,
            "examples": [],
        },
        {
            "rule": "shape",
            "text": "an object whose Result.Calls is an array",
            "passed": shape_ok,
            "count": 0 if shape_ok else 1,
            "examples": [] if shape_ok else [str(rejection)],
        },
    ]
    for reason in feed.REJECT_REASONS:
        count = parsed.rejected.get(reason, 0) if parsed else 0
        examples = [{"row": e.index, "value": e.value} for e in (parsed.examples.get(reason, []) if parsed else [])]
        rules.append(
            {
                "rule": reason,
                "text": feed.REASON_TEXT[reason],
                "passed": count == 0,
                "count": count,
                "examples": examples,
            }
        )
    ratio = parsed.rejected_ratio if parsed else 0.0
    rules.append(
        {
            "rule": "rejected_share",
            "text": f"at most {feed.MAX_REJECTED_RATIO:.0%} of rows rejected",
            "passed": ratio <= feed.MAX_REJECTED_RATIO,
            "count": parsed.rejected_total if parsed else 0,
            "examples": [],
        }
    )
    warnings = dict(parsed.warnings) if parsed else {}
    if extra_rows:
        warnings["extra_fields"] = extra_rows
    if any(len(v) > 1 for v in spellings.values()):
        warnings["mixed_key_casing"] = sum(1 for v in spellings.values() if len(v) > 1)
    if rejection is not None:
        would, verdict, reason = "reject", FAIL, f"{rejection.code}: {rejection}"
    else:
        would = "publish"
        held = _drops(parsed, published_calls or {}) if parsed else []
        if held:
            would = "hold"
        dropped = parsed.rejected_total if parsed else 0
        verdict = WARN if dropped or warnings else PASS
        reason = f"{dropped} rows would be dropped" if dropped else ("conventions broken" if warnings else "conforms")
        if held:
            verdict = WARN
            reason = "a sudden drop for " + ", ".join(held) + ": held until the next poll confirms it; " + reason
    found = sorted(c for c, techs in parsed.by_club.items() if techs) if parsed else []
    report.update(
        verdict=verdict,
        would=would,
        reason=reason,
        shape="ok" if shape_ok or rejection is None else rejection.code,
        rows=parsed.rows if parsed else 0,
        accepted=parsed.accepted if parsed else 0,
        duplicates=parsed.duplicates if parsed and rejection is None else 0,
        club_ids_owned=sorted(club_ids) if club_ids is not None else None,
        club_ids_found=found if club_ids is not None else sorted(clubs_found),
        key_casing=spellings,
        warnings=warnings,
        rules=rules,
    )
    return report


def _drops(parsed: feed.ParsedFeed, published_calls: dict[int, int]) -> list[str]:
    from cappi.domain.publish import drop_guard_applies

    held = []
    for club, techs in sorted(parsed.by_club.items()):
        calls = len({call for tech_calls in techs.values() for call in tech_calls})
        if club in published_calls and drop_guard_applies(published_calls[club], calls):
            held.append(f"club {club} ({calls} calls where {published_calls[club]} are published)")
    return held


def markdown(report: dict[str, Any]) -> str:
    """A report a club can be sent. Every value that can come from the feed or the club's server (the origin, the
    reason, example rows, error excerpts) is escaped, so the table keeps its columns and renders no HTML."""
    lines = [
        f"# CAPPI feed check: {markdown_cell(report['verdict'].upper())}",
        "",
        f"- Feed: {markdown_code(report['origin'])}",
        f"- CAPPI would **{markdown_cell(report['would'])}** this feed: {markdown_cell(report['reason'])}",
    ]
    http = report.get("http") or {}
    if "status" in http:
        lines.append(
            f"- HTTP {markdown_cell(http['status'])} in {http['latency_ms']} ms, {http['bytes']} bytes"
            f"{' (compressed on the wire)' if http.get('compressed') else ''}, "
            f"{'HTTPS with a valid certificate' if http.get('https') else 'plain HTTP'}"
        )
    if report.get("rules"):
        lines += [
            "",
            f"Rows: {report['rows']}, accepted: {report['accepted']}.",
            "",
            "| rule | result | rows | examples (row: value) |",
            "| --- | --- | --- | --- |",
        ]
        for rule in report["rules"]:
            examples = "; ".join(
                f"{e['row']}: {markdown_code(e['value'])}" if isinstance(e, dict) else markdown_cell(e)
                for e in rule["examples"]
            )
            lines.append(
                f"| {markdown_cell(rule['text'])} | {'ok' if rule['passed'] else 'FAILED'} | {rule['count']} "
                f"| {examples} |"
            )
    if report.get("warnings"):
        warnings = ", ".join(f"{markdown_cell(k)} ({v})" for k, v in report["warnings"].items())
        lines += ["", "Warnings: " + warnings]
    return "\n".join(lines) + "\n"
