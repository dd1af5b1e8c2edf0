"""A source's feed report from its last poll's record, without fetching the feed again: for a page or a status view
that must not call the club on every look.

The record (`cappi.domain.last_poll.LastPoll`) keeps what ingest found: the rejection code and message, rows and
accepted rows, counts per rule with a few example rows (their index and offending value, not their CallId), the
quoted-CallId count, the clubs held. The report has the shape `cli.feed_report.check` gives, as far as that goes:
the same rules, fixes and verdicts; example rows without `call_id`; no key casing or other warnings, which need the
body (`cli.check_feed.source_report` fetches it). Importing this module loads no AWS SDK.
"""

from __future__ import annotations

from typing import Any

from cappi.domain import feed
from cappi.domain.last_poll import FAILED, HELD, REJECTED, LastPoll
from cli.feed_report import FAIL, FIXES, PASS, VIOLATION, WARN, WARNING_TEXT, rules_of


def report_of_last_poll(poll: LastPoll, club_ids: frozenset[int]) -> dict[str, Any]:
    """What the last poll of `poll.source` (owning `club_ids`) found, as a feed report (JSON-ready)."""
    report: dict[str, Any] = {
        "origin": f"the last poll of {poll.source}",
        "http": None,
        "fetched_at_ms": poll.fetched_at_ms,
        "poll_status": poll.status,
    }
    if poll.status == FAILED:
        error = {"code": poll.error_code, "message": poll.error, "status": poll.http_status}
        reason = f"{poll.error_code}: {poll.error}"
        report.update(verdict=FAIL, would="reject", reason=reason, fetch_error=error, rows=0, accepted=0)
        return report | {"rules": [], "shape": None, "warning_rules": [], "warnings": {}}
    parsed = feed.ParsedFeed(
        by_club={},
        rows=poll.rows,
        accepted=poll.accepted,
        rejected=dict(poll.rejected),
        warnings=dict(poll.warnings),
        examples={reason: list(examples) for reason, examples in poll.examples.items()},
    )
    rejection = None
    if poll.status == REJECTED:
        rejection = feed.FeedRejected(poll.error_code or "rejected", poll.error or "", parsed)
    readable = rejection is None or rejection.code == feed.TOO_MANY_REJECTED
    rules = rules_of(parsed if readable else None, rejection, None, club_ids)
    quoted = poll.warnings.get(feed.QUOTED_CALL_ID_WARNING, 0)
    warning_rules = [
        {
            "rule": feed.QUOTED_CALL_ID_WARNING,
            "text": WARNING_TEXT[feed.QUOTED_CALL_ID_WARNING],
            "count": quoted,
            "examples": [],
            "fix": FIXES[feed.QUOTED_CALL_ID_WARNING],
        }
    ]
    warning_rules = warning_rules if quoted else []
    dropped = parsed.rejected_total
    if rejection is not None:
        would, verdict = "reject", FAIL
        reason = f"{rejection.code} ({VIOLATION.get(rejection.code, rejection.code)}): {rejection}"
    elif poll.status == HELD:
        would, verdict = "hold", WARN
        clubs = ", ".join(map(str, poll.held_clubs))
        reason = f"a sudden drop for club {clubs}: held until the next poll confirms it"
    else:
        would, verdict = "publish", WARN if dropped or quoted else PASS
        reason = f"{dropped} rows dropped" if dropped else ("conventions broken" if quoted else "conforms")
    report.update(
        verdict=verdict,
        would=would,
        reason=reason,
        shape="ok" if readable else rejection.code if rejection else None,
        rows=poll.rows,
        accepted=poll.accepted,
        club_ids_owned=sorted(club_ids),
        warnings={feed.QUOTED_CALL_ID_WARNING: quoted} if quoted else {},
        warning_rules=warning_rules,
        rules=rules,
        key_casing_words="not kept with a poll's record: `cappi check-feed --source` reads the feed",
    )
    return report
