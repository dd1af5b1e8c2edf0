"""A club feed's conformance report, as plain data: every rule and warning with its count, example rows (numbered
from 1, with their CallId), and what the club should change; what CAPPI would do with the feed, and a verdict.

`check(fetched, club_ids, published_calls)` builds it from a fetched body with the very parser ingest uses
(`cappi.domain.feed.parse_feed`); `cappi check-feed` prints it (`cli.feed_render`: text for a terminal, Markdown
for a club) and local mode's pages render it as HTML. Importing this module loads no AWS SDK. Values from the feed
stay raw here: each renderer escapes them for its medium (`cappi.inert`, or HTML escaping).

One failed rule per cause: a body that is not JSON fails `json` (with the parser's message) and leaves the rules
that need a readable document `not checked` (`passed` None), and so on down the document's rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cappi.domain import feed
from cappi.domain.feed.outcome import example, most_common_reasons
from cappi.domain.heads import Pointer
from cappi.domain.ids import MAX_CLUB_ID, Reason, call_id

PASS, WARN, FAIL = "pass", "warn", "fail"
EXAMPLES = feed.MAX_EXAMPLES  # example rows per rule and warning

# How the integration document (Club Assist's "CAAPI: CallID Integration", its response details) spells the keys.
DOCUMENT_SPELLINGS = {
    "Result": ("Result",),
    "Calls": ("Calls",),
    "CallId": ("CallId",),
    "ClubId": ("ClubId", "ClubID"),
    "TechId": ("TechId", "TechID"),
}
_ROW_FIELDS = {"callid": "CallId", "clubid": "ClubId", "techid": "TechId"}
_ROW_EXAMPLE = '{"CallId": 8679, "ClubId": 212, "TechId": "AB12"}'


@dataclass(frozen=True)
class Fetched:
    body: bytes
    origin: str  # the file or URL, for the report (no credentials)
    http: dict[str, Any] | None = None  # status, latency_ms, bytes_on_wire, content_type, https, attempts
    error: dict[str, Any] | None = None  # code, message, status: the fetch failed


# The document's rules: (rule, the rejection code it guards, the rule in words, the violation in a few words).
DOCUMENT_RULES = (
    ("json", feed.NOT_JSON, "the body is JSON", "not JSON"),
    ("depth", feed.TOO_DEEP, f"arrays and objects nested at most {feed.MAX_DEPTH} deep", "nested too deep"),
    ("shape", feed.BAD_SHAPE, "an object whose Result.Calls is an array", "not the documented shape"),
)
SHARE_RULE = ("rejected_share", feed.TOO_MANY_REJECTED, f"at most {feed.MAX_REJECTED_RATIO:.0%} of rows rejected")
VIOLATION = {code: words for _rule, code, _text, words in DOCUMENT_RULES} | {
    feed.TOO_MANY_REJECTED: "too many rows rejected"
}

# What to change, in the club's terms, for every rule and warning.
FIXES = {
    feed.NOT_JSON: "Answer 200 with the JSON document itself: not an error, login or maintenance page, not cut short; "
    "UTF-8, with no NaN or Infinity.",
    feed.TOO_DEEP: "Send the documented shape only: Result, holding Calls, holding one flat object per call.",
    feed.BAD_SHAPE: 'Make the body one object {"Result": {"Calls": [...]}}, giving Result and Calls once each.',
    feed.TOO_MANY_REJECTED: f"Fix the rows the rules above list: CAPPI refuses the whole poll when more than "
    f"{feed.MAX_REJECTED_RATIO:.0%} of rows break a rule, and testers keep the last good list.",
    feed.ROW_NOT_OBJECT: f"Send each call as an object such as {_ROW_EXAMPLE}, not an array, a string or null.",
    feed.AMBIGUOUS_FIELD: "Give CallId, ClubId and TechId once per row, in one spelling (not both CallId and callid).",
    feed.CALL_ID_MISSING: "Give every row its CallId (not null).",
    feed.CALL_ID_INVALID: "Send CallId as a whole number of up to 7 digits, no sign, decimals or commas: 8679, not "
    '8679.5, -8679 or "8,679".',
    feed.CLUB_ID_MISSING: "Give every row its ClubId (not null).",
    feed.CLUB_ID_INVALID: 'Send ClubId as a JSON number of up to 3 digits, unquoted: 212, not "212" or 2120.',
    feed.CLUB_NOT_OWNED: "List only the clubs this source is registered for ({owned}): send another club's calls from "
    "that club's own feed, or ask CAPPI's operators to register the club for this source.",
    feed.TECH_ID_MISSING: "Give every row the TechId entered in the tester app (not null).",
    feed.TECH_ID_INVALID: "Send TechId as a quoted string of 1 to 32 letters and digits, as entered in the tester "
    'app: "AB12", not "AB/12", "AB 12" or 12.',
    feed.QUOTED_CALL_ID_WARNING: 'Send CallId unquoted, as a JSON number: 8679, not "8679".',
    "extra_fields": "Send only CallId, ClubId and TechId: other fields are ignored and only make the feed bigger.",
    "mixed_key_casing": "Spell each field the same way on every row, as the integration document does: CallId, ClubId, "
    "TechId.",
    "document_spelling": "Spell the keys as the integration document does: Result, Calls, CallId, ClubId (or ClubID), "
    "TechId (or TechID). CAPPI reads any casing, but other readers of your feed may not.",
}
WARNING_TEXT = {
    feed.QUOTED_CALL_ID_WARNING: "CallId quoted, where the document asks for a JSON number",
    "extra_fields": "fields other than CallId, ClubId and TechId",
    "mixed_key_casing": "a field spelled differently from row to row",
    "document_spelling": "keys spelled otherwise than the integration document",
}


def check(
    fetched: Fetched, club_ids: frozenset[int] | None, published_calls: Mapping[int, int | Pointer] | None = None
) -> dict[str, Any]:
    """The conformance report (JSON-ready). `club_ids`: the clubs the source owns (None: any valid ClubId). With the
    call counts readers see now (`published_calls`, per club, or the source head's entries, which also know a drop
    held at the previous poll), a sudden drop shows as `hold`, as ingest would hold it (`cli.feed_plan` says what
    would change call by call)."""
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
            warning_rules=[],
        )
        return report
    owned = club_ids if club_ids is not None else frozenset(range(MAX_CLUB_ID + 1))
    parsed: feed.ParsedFeed | None
    try:
        parsed, rejection = feed.parse_feed(fetched.body, owned), None
    except feed.FeedRejected as exc:
        parsed, rejection = exc.parsed, exc
    doc, calls = _document(fetched.body) if rejection is None or parsed is not None else (None, [])
    survey = _Survey(doc, calls)
    rules = rules_of(parsed, rejection, calls, club_ids)
    warning_rules = _warning_rules(parsed, survey)
    # Spelling the keys otherwise than the document is said, but leaves a feed that passes passing.
    warnings = {w["rule"]: w["count"] for w in warning_rules if w.get("changes_verdict", True)}
    if rejection is not None:
        would, verdict = "reject", FAIL
        reason = f"{rejection.code} ({VIOLATION.get(rejection.code, rejection.code)}): {rejection}"
    else:
        assert parsed is not None
        would = "publish"
        held = _drops(parsed, published_calls or {})
        dropped = parsed.rejected_total
        verdict = WARN if dropped or warnings else PASS
        if dropped:
            counts = "; ".join(f"{r} ({feed.REASON_TEXT[r]}): {n}" for r, n in _by_count(parsed.rejected))
            reason = f"{dropped} row{'s' if dropped != 1 else ''} would be dropped: {counts}"
        elif warnings:
            broken = [w for w in warning_rules if w["rule"] in warnings]
            reason = "conventions broken: " + "; ".join(
                f"{w['rule']} ({w['text']}): {_rows(w['count'])}" for w in broken
            )
        else:
            reason = "conforms"
        if held:
            would, verdict = "hold", WARN
            reason = "a sudden drop for " + ", ".join(held) + ": held until the next poll confirms it; " + reason
    found = sorted(c for c, techs in parsed.by_club.items() if techs) if parsed else []
    report.update(
        verdict=verdict,
        would=would,
        reason=reason,
        shape="ok" if rejection is None or rejection.code == feed.TOO_MANY_REJECTED else rejection.code,
        rows=parsed.rows if parsed else 0,
        accepted=parsed.accepted if parsed else 0,
        duplicates=parsed.duplicates if parsed and rejection is None else 0,
        club_ids_owned=sorted(club_ids) if club_ids is not None else None,
        club_ids_found=found if club_ids is not None else sorted(survey.clubs),
        key_casing=survey.spellings,
        key_casing_words=survey.casing_words(),
        warnings=warnings,
        warning_rules=warning_rules,
        rules=rules,
    )
    return report


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _document(body: bytes) -> tuple[object, list]:
    try:
        doc = feed.load_json(body)
        return doc, feed.calls_array(doc)
    except feed.FeedRejected:
        return None, []


def rules_of(
    parsed: feed.ParsedFeed | None,
    rejection: feed.FeedRejected | None,
    calls: list | None,
    club_ids: frozenset[int] | None,
) -> list[dict[str, Any]]:
    """Every rule in the order a document meets them; the first one broken stops the rules after it (not checked).
    `calls`: the document's rows, for each example's CallId (None: not at hand, the examples have no `call_id`)."""
    rules: list[dict[str, Any]] = []
    stopped = False
    for rule, code, text, _words in DOCUMENT_RULES:
        failed = rejection is not None and rejection.code == code
        rules.append(
            _rule(
                rule,
                code,
                text,
                passed=None if stopped else not failed,
                count=int(failed),
                examples=[str(rejection)] if failed else [],
            )
        )
        stopped = stopped or failed
    owned = ", ".join(map(str, sorted(club_ids))) if club_ids is not None else "any valid ClubId"
    for reason in feed.REJECT_REASONS:
        count = parsed.rejected.get(reason, 0) if parsed else 0
        examples = [_row_example(e.index, e.value, calls) for e in (parsed.examples.get(reason, []) if parsed else [])]
        entry = _rule(
            reason,
            reason,
            feed.REASON_TEXT[reason],
            passed=None if stopped else count == 0,
            count=count,
            examples=examples,
        )
        entry["fix"] = entry["fix"].replace("{owned}", owned)
        rules.append(entry)
    rule, code, text = SHARE_RULE
    failed = rejection is not None and rejection.code == code
    ratio = parsed.rejected_ratio if parsed else 0.0
    entry = _rule(
        rule,
        code,
        text,
        passed=None if stopped else not failed,
        count=parsed.rejected_total if parsed else 0,
        examples=[],
    )
    entry["share"] = round(ratio, 4)
    if parsed and parsed.rejected:
        entry["most_common"] = most_common_reasons(parsed.rejected)
    if failed:
        entry["examples"] = [str(rejection)]
    rules.append(entry)
    return rules


def _rule(rule: str, code: str, text: str, *, passed: bool | None, count: int, examples: list) -> dict[str, Any]:
    return {
        "rule": rule,
        "code": code,
        "text": text,
        "passed": passed,
        "count": count,
        "examples": examples,
        "fix": FIXES[code],
    }


def _row_example(index: int, value: str, calls: list | None, **more: Any) -> dict[str, Any]:
    """One example row: `row` its index in Result.Calls from 0 (kept for scripts), `row_number` from 1, its CallId
    as JSON text (None: the row gives none; no `call_id` at all when the rows are not at hand, `calls` None), and
    the offending value as JSON text."""
    found = {} if calls is None else {"call_id": _call_id_of(calls, index)}
    return {"row": index, "row_number": index + 1, **found, "value": value, **more}


def _call_id_of(calls: list, index: int) -> str | None:
    row = calls[index] if 0 <= index < len(calls) else None
    if not isinstance(row, dict):
        return None
    values = [v for k, v in row.items() if k.lower() == "callid"]
    if not values:
        return None
    return " / ".join(example(index, v).value for v in values)


class _Survey:
    """What the rows say beyond the rules: how they spell the keys, which rows quote a CallId, carry other fields or
    spell a field otherwise than most rows, and the valid ClubIds they give."""

    def __init__(self, doc: object, calls: list) -> None:
        self.calls = calls
        spellings: dict[str, Counter[str]] = {"CallId": Counter(), "ClubId": Counter(), "TechId": Counter()}
        self.envelope: dict[str, str] = {}
        if isinstance(doc, dict):
            result = next(((k, v) for k, v in doc.items() if k.lower() == "result"), None)
            if result is not None:
                self.envelope["Result"] = result[0]
                if isinstance(result[1], dict):
                    self.envelope["Calls"] = next((k for k in result[1] if k.lower() == "calls"), "Calls")
        self.quoted: list[int] = []
        self.extra: list[tuple[int, list[str]]] = []
        self.clubs: set[int] = set()
        row_spellings: list[tuple[int, dict[str, str]]] = []
        for index, row in enumerate(calls):
            if type(row) is not dict:
                continue
            spelled: dict[str, str] = {}
            others = []
            for key, value in row.items():
                name = _ROW_FIELDS.get(key.lower())
                if name is None:
                    others.append(key)
                    continue
                spellings[name][key] += 1
                spelled[name] = key
                if name == "CallId" and type(value) is str and type(call_id(value)) is not Reason:
                    self.quoted.append(index)
                if name == "ClubId" and type(value) is int and 0 <= value <= MAX_CLUB_ID:
                    self.clubs.add(value)
            if others:
                self.extra.append((index, others))
            row_spellings.append((index, spelled))
        self.spellings = {k: dict(v) for k, v in spellings.items()}
        usual = {name: counts.most_common(1)[0][0] for name, counts in spellings.items() if counts}
        self.mixed = [
            (index, {n: k for n, k in spelled.items() if k != usual[n]})
            for index, spelled in row_spellings
            if any(k != usual[n] for n, k in spelled.items())
        ]
        self.usual = usual

    def casing_words(self) -> str:
        """Key casing in words: `keys spelled callid, clubid, techid`, or each field's spellings with their rows."""
        if not any(self.spellings.values()):
            return "no rows to read keys from"
        if all(len(v) <= 1 for v in self.spellings.values()):
            keys = [self.envelope.get("Result", ""), self.envelope.get("Calls", "")] + [
                next(iter(v)) for v in self.spellings.values() if v
            ]
            return "keys spelled " + ", ".join(k for k in keys if k)
        parts = []
        for name, counts in self.spellings.items():
            if len(counts) > 1:
                each = " and ".join(f"{k} ({n} row{'s' if n != 1 else ''})" for k, n in _by_count(counts))
                parts.append(f"{name} spelled {each}")
            elif counts:
                parts.append(f"{name} spelled {next(iter(counts))}")
        return "; ".join(parts)

    def off_document(self) -> list[str]:
        """The keys the feed spells otherwise than the integration document."""
        used = [self.envelope.get("Result"), self.envelope.get("Calls")] + [
            k for v in self.spellings.values() for k in v
        ]
        allowed = {s for spellings in DOCUMENT_SPELLINGS.values() for s in spellings}
        return list(dict.fromkeys(k for k in used if k and k not in allowed))


def _warning_rules(parsed: feed.ParsedFeed | None, survey: _Survey) -> list[dict[str, Any]]:
    """The conventions a feed breaks while CAPPI still reads it: each with its rows, examples and fix."""
    calls = survey.calls
    found: list[dict[str, Any]] = []

    def add(rule: str, count: int, examples: list[dict[str, Any]], **more: Any) -> None:
        if count:
            found.append(
                {
                    "rule": rule,
                    "text": WARNING_TEXT[rule],
                    "count": count,
                    "examples": examples[:EXAMPLES],
                    "fix": FIXES[rule],
                    **more,
                }
            )

    quoted = parsed.warnings.get(feed.QUOTED_CALL_ID_WARNING, 0) if parsed else len(survey.quoted)
    add(
        feed.QUOTED_CALL_ID_WARNING,
        quoted,
        [_row_example(i, _call_id_of(calls, i) or "", calls) for i in survey.quoted],
    )
    add(
        "extra_fields",
        len(survey.extra),
        [_row_example(i, ", ".join(fields), calls, fields=fields) for i, fields in survey.extra],
    )
    add(
        "mixed_key_casing",
        len(survey.mixed),
        [
            _row_example(
                i, "; ".join(f"{k} where most rows write {survey.usual[n]}" for n, k in spelled.items()), calls
            )
            for i, spelled in survey.mixed
        ],
        usual=survey.usual,
    )
    off = survey.off_document()
    if off:
        add("document_spelling", len(off), [], keys=off, unit="key", changes_verdict=False)
    return found


def _drops(parsed: feed.ParsedFeed, published: Mapping[int, int | Pointer]) -> list[str]:
    """The clubs the drop guard would hold, in words. With a club's head entry (a Pointer) the domain decides as
    ingest would (`club_outcome`: a drop held once is confirmed by the next poll); with a bare count, by its rule."""
    from cappi.domain.publish import Outcome, club_outcome, drop_guard_applies
    from cappi.domain.snapshot import build_club_snapshot

    held = []
    for club, techs in sorted(parsed.by_club.items()):
        current = published.get(club)
        if current is None:
            continue
        if isinstance(current, Pointer):
            snapshot = build_club_snapshot(club, techs)
            calls, now = snapshot.call_count, current.call_count
            holds = club_outcome(current, snapshot) is Outcome.HELD
        else:
            calls, now = len({call for tech_calls in techs.values() for call in tech_calls}), current
            holds = drop_guard_applies(now, calls)
        if holds:
            held.append(f"club {club} ({calls} calls where {now} are published)")
    return held
