"""One poll of one club source: fetch the feed, validate it, and publish a snapshot per club ID.

A club-side problem (unreachable, slow, non-200, bad document, too many bad rows) is a result, not an exception:
the published snapshots stay as they are and the caller records metrics. Our own faults (the store failing) raise,
so the platform's retries apply to them.

A poll is stamped (`fetched_at_ms`) with the moment it first asked the club for its list, as the fetcher reports it
(`sent_at_ms`), not with the moment the answer arrived: the head keeps the poll with the later stamp, so of two
overlapping polls the one that asked later wins, however slow, retried or redirected the other one was (DESIGN.md
section 3). A fetcher that does not report it, or a fetch that failed before sending anything, is stamped with the
moment the poll began, which is no later than any request it sent.

An unchanged body is not parsed: the head keeps a record of the body it reflects (`cappi.domain.body_record`), and
a poll whose body hashes the same under the same club IDs, format and rules, or whose club answers 304 Not Modified
to the validators sent back (`If-None-Match`, `If-Modified-Since`), confirms the head's pointers as they are, with
the record's counts: the outcome, head, last-poll record and log line a parse would have given. A head with a held
drop (which stores no record) or any other change parses as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from cappi.domain.body_record import BodyRecord, body_digest, kept_examples, parse_context
from cappi.domain.feed import MAX_REJECTED_RATIO, FeedRejected, RowExample, parse_feed
from cappi.domain.heads import Head
from cappi.domain.publish import ClubPublishResult, Outcome, SnapshotStore, publish_source
from cappi.domain.registry import ClubSource
from cappi.domain.row_example import CUT_MARK
from cappi.domain.snapshot import FORMAT_VERSION, ClubSnapshot, build_club_snapshot


class FeedUnavailable(Exception):
    """The club's feed could not be fetched. Adapters raise subclasses; `code` is stable for metrics."""

    code: str = "unavailable"
    status: int | None = None
    attempts: int = 0
    sent_at_ms: int | None = None  # wall-clock ms of the first request to the club, if one went out


class FetchedFeed(Protocol):
    @property
    def body(self) -> bytes: ...

    @property
    def attempts(self) -> int: ...

    # Optional: `not_modified: bool` (the club answered 304 to the validators sent), `etag` and `last_modified`
    # (the response's validators, `str | None`), read with getattr.
    # Optional: `sent_at_ms: int | None`, when the fetch first asked the club (read with `asked_at_ms`).
    # Optional: `redact(text, cut_short=False) -> str`, which removes the fetch's secrets from feed text the poll
    # shows (`_shown`).


class FeedFetcher(Protocol):
    def fetch(self, source: ClubSource, validators: BodyRecord | None = None) -> FetchedFeed:
        """The source's feed; `validators` (whose `etag` / `last_modified` a conditional fetch sends back) is passed
        only when the head holds some, so a fetcher that never sees them may take `source` alone."""
        ...


@dataclass(slots=True)
class PollResult:
    """Everything one poll learned; the ingest handler turns it into logs, metrics and its return value."""

    source: str
    status: str  # "ok", "failed" (feed unavailable) or "rejected" (feed unusable)
    fetched_at_ms: int  # when the poll first asked the club (see the module docstring), not when it answered
    fetch_seconds: float
    attempts: int = 0
    error_code: str | None = None
    error: str | None = None
    http_status: int | None = None
    body_bytes: int = 0
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[RowExample]] = field(default_factory=dict)  # rejected rows, a few per reason
    duplicates: int = 0
    clubs: list[ClubPublishResult] = field(default_factory=list)
    snapshot_age_s: dict[int, float] = field(default_factory=dict)  # age of what readers see, per club ID
    parse_seconds: float = 0.0
    publish_seconds: float = 0.0
    # Why the body was not parsed: "same_body" (its hash is the head's) or "304" (the club said Not Modified).
    unchanged_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def rejected_ratio(self) -> float:
        return sum(self.rejected.values()) / self.rows if self.rows else 0.0

    @property
    def write_units(self) -> int:
        return sum(club.write_units for club in self.clubs)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for club in self.clubs if club.outcome is outcome)

    def log_fields(self) -> dict[str, Any]:
        """What one poll's log line carries (counts and outcomes, never feed content)."""
        return {
            "status": self.status,
            "attempts": self.attempts,
            "fetch_ms": round(self.fetch_seconds * 1000, 1),
            "body_bytes": self.body_bytes,
            "rows": self.rows,
            "rejected": self.rejected,
            "warnings": self.warnings,
            "clubs": {
                str(c.club_id): {"outcome": c.outcome.value, "calls": c.calls, "techs": c.techs} for c in self.clubs
            },
            "snapshot_age_s": {str(k): round(v, 1) for k, v in self.snapshot_age_s.items()},
            "write_units": self.write_units,
            "unchanged_by": self.unchanged_by,
        }

    def summary(self) -> dict:
        """A JSON-serializable summary (the ingest Lambda's return value)."""
        data = asdict(self)
        data["clubs"] = [{**asdict(c), "outcome": c.outcome.value} for c in self.clubs]
        data["snapshot_age_s"] = {str(k): round(v, 1) for k, v in self.snapshot_age_s.items()}
        data["rejected_ratio"] = round(self.rejected_ratio, 4)
        data["write_units"] = self.write_units
        return data


def poll_source(
    source: ClubSource,
    fetcher: FeedFetcher,
    store: SnapshotStore,
    *,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.perf_counter,
    shortcut: bool = True,
) -> PollResult:
    """One poll of `source`. `shortcut=False` parses every body, even one the head says is unchanged (tests hold
    both ways to the same heads, outcomes and records; `bench/ingest.py` times them)."""
    started = timer()
    began_ms = int(clock() * 1000)
    head = store.head(source.name)
    context = parse_context(source.club_ids, snapshot_format=FORMAT_VERSION, max_rejected_ratio=MAX_REJECTED_RATIO)
    record = usable_record(head, source, context) if shortcut else None
    try:
        if record is not None and record.has_validators:
            fetched = fetcher.fetch(source, validators=record)
        else:
            fetched = fetcher.fetch(source)
        if getattr(fetched, "not_modified", False) and record is None:
            raise UnaskedNotModified(fetched)
    except FeedUnavailable as exc:
        result = PollResult(
            source=source.name,
            status="failed",
            fetched_at_ms=asked_at_ms(exc, began_ms),
            fetch_seconds=timer() - started,
            attempts=exc.attempts,
            error_code=exc.code,
            error=str(exc),
            http_status=exc.status,
        )
        _record_ages(result, head, source, clock)
        return result

    fetched_at_ms = asked_at_ms(fetched, began_ms)
    result = PollResult(
        source=source.name,
        status="ok",
        fetched_at_ms=fetched_at_ms,
        fetch_seconds=timer() - started,
        attempts=fetched.attempts,
        body_bytes=len(fetched.body),
    )

    parse_started = timer()
    etag, last_modified = getattr(fetched, "etag", None), getattr(fetched, "last_modified", None)
    not_modified = getattr(fetched, "not_modified", False)
    digest = "" if not_modified else body_digest(fetched.body)
    confirmed, why = None, ""
    if not_modified:
        assert record is not None  # UnaskedNotModified otherwise
        # A 304 may carry fresh validators; without them the ones sent stay right.
        confirmed, why = record.with_validators(etag or record.etag, last_modified or record.last_modified), "304"
    elif record is not None and digest == record.digest:
        confirmed, why = record.with_validators(etag, last_modified), "same_body"
    if confirmed is not None:
        assert head is not None  # it holds the record
        return _confirm(
            result,
            store,
            source,
            head,
            confirmed,
            why=why,
            fetched=fetched,
            parse_started=parse_started,
            timer=timer,
            clock=clock,
        )
    try:
        parsed = parse_feed(fetched.body, source.club_ids)
    except FeedRejected as exc:
        result.status = "rejected"
        result.error_code = exc.code
        result.error = _shown(fetched, str(exc))
        if exc.parsed is not None:
            result.rows, result.accepted = exc.parsed.rows, exc.parsed.accepted
            result.rejected, result.warnings = exc.parsed.rejected, exc.parsed.warnings
            result.examples = _shown_examples(fetched, exc.parsed.examples)
        result.parse_seconds = timer() - parse_started
        _record_ages(result, head, source, clock)
        return result
    result.rows, result.accepted = parsed.rows, parsed.accepted
    result.rejected, result.warnings = parsed.rejected, parsed.warnings
    result.examples = _shown_examples(fetched, parsed.examples)
    result.duplicates = parsed.duplicates
    result.parse_seconds = timer() - parse_started

    publish_started = timer()
    snapshots = [build_club_snapshot(club_id, parsed.by_club.pop(club_id)) for club_id in sorted(source.club_ids)]
    del parsed
    body = BodyRecord(
        digest=digest,
        context=context,
        rows=result.rows,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=dict(result.rejected),
        warnings=dict(result.warnings),
        examples=kept_examples(result.examples),
        body_bytes=result.body_bytes,
    ).with_validators(etag, last_modified)
    result.clubs = publish_source(store, source.name, snapshots, fetched_at_ms, body=body)
    result.publish_seconds = timer() - publish_started
    _record_checked(result, clock)
    return result


class UnaskedNotModified(FeedUnavailable):
    """The club answered 304 Not Modified to a request that sent no validator: there is nothing it could mean."""

    code = "unexpected_not_modified"
    status = 304

    def __init__(self, fetched: FetchedFeed) -> None:
        super().__init__("the club answered 304 Not Modified, but the poll sent no If-None-Match or If-Modified-Since")
        self.attempts = fetched.attempts
        self.sent_at_ms = getattr(fetched, "sent_at_ms", None)


def usable_record(head: Head | None, source: ClubSource, context: str) -> BodyRecord | None:
    """The head's body record, when a body equal to it (or a 304) may stand for a parse of this poll's body: the
    same context (club IDs, format, rules), the same clubs in the head, and no held drop waiting to be confirmed."""
    if head is None or head.body is None or head.body.context != context:
        return None
    if set(head.clubs) != set(source.club_ids):
        return None
    if any(pointer.held_fetched_at_ms is not None for pointer in head.clubs.values()):
        return None
    return head.body


def _confirm(
    result: PollResult,
    store: SnapshotStore,
    source: ClubSource,
    head: Head,
    record: BodyRecord,
    *,
    why: str,
    fetched: FetchedFeed,
    parse_started: float,
    timer: Callable[[], float],
    clock: Callable[[], float],
) -> PollResult:
    """The poll of a body the head already reflects: what parsing it would report (the record's counts) and decide
    (every club unchanged, or superseded by a later poll), without parsing it or building a snapshot."""
    result.unchanged_by = why
    result.rows, result.accepted, result.duplicates = record.rows, record.accepted, record.duplicates
    result.rejected, result.warnings = dict(record.rejected), dict(record.warnings)
    result.examples = _shown_examples(fetched, {r: list(kept) for r, kept in record.examples.items()})
    result.parse_seconds = timer() - parse_started
    publish_started = timer()
    # The head's own content, as the snapshots of this body: publish_source finds every club unchanged (it never
    # writes a version for these), moves the check time, renews what expires and commits the head as it would.
    same = [
        ClubSnapshot(
            club_id=p.club_id, techs={}, content_hash=p.content_hash, call_count=p.call_count, tech_count=p.tech_count
        )
        for _, p in sorted(head.clubs.items())
    ]
    result.clubs = publish_source(store, source.name, same, result.fetched_at_ms, head=head, body=record)
    result.publish_seconds = timer() - publish_started
    _record_checked(result, clock)
    return result


def _record_checked(result: PollResult, clock: Callable[[], float]) -> None:
    now_ms = clock() * 1000
    for club in result.clubs:
        if club.checked_at_ms is not None:
            result.snapshot_age_s[club.club_id] = max(0.0, (now_ms - club.checked_at_ms) / 1000)


def _shown(fetched: FetchedFeed, text: str, *, cut_short: bool = False) -> str:
    """Feed text as a poll may show it (results, last-poll records, logs, consoles): without the fetch's secrets.

    `cut_short`: the text was cut from a longer value, so a secret cut off at its end goes too.
    """
    redact = getattr(fetched, "redact", None)
    return redact(text, cut_short=cut_short) if callable(redact) else text


def _shown_examples(fetched: FetchedFeed, examples: dict[str, list[RowExample]]) -> dict[str, list[RowExample]]:
    def shown(value: str) -> str:
        if value.endswith(CUT_MARK):  # `example` cut it: what remains may end in part of a secret
            return _shown(fetched, value.removesuffix(CUT_MARK), cut_short=True) + CUT_MARK
        return _shown(fetched, value)

    return {reason: [RowExample(e.index, shown(e.value)) for e in rows] for reason, rows in examples.items()}


def asked_at_ms(report: object, began_ms: int) -> int:
    """When a poll asked the club: the `sent_at_ms` its fetch (or fetch error) reports, else when it began."""
    sent = getattr(report, "sent_at_ms", None)
    if isinstance(sent, int) and not isinstance(sent, bool):
        return sent
    return began_ms


def _record_ages(result: PollResult, head: Head | None, source: ClubSource, clock: Callable[[], float]) -> None:
    """After a failed poll, readers still see the last good snapshot; record how old it is."""
    now_ms = clock() * 1000
    for club_id in sorted(source.club_ids):
        pointer = head.clubs.get(club_id) if head else None
        if pointer is not None:
            result.snapshot_age_s[club_id] = max(0.0, (now_ms - pointer.checked_at_ms) / 1000)
