"""The metrics contract: every custom metric CAPPI emits, with its unit and dimensions, and the mapping of one
poll's result to the metrics it produces.

The handlers emit exactly these (`cappi.observability.emit`); `infra/monitoring.py` builds its alarms and the
dashboard from the same objects, and a test checks that every metric an alarm reads is one the code emits under
the same name and dimensions. Units are CloudWatch's unit names, so this module needs no AWS library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cappi.domain.poll import PollResult

NAMESPACE = "CAPPI"
SOURCE = "Source"  # the registry name of a club source
REASON = "Reason"  # why rows were rejected (the feed validator's reason codes)
STATUS = "Status"  # HTTP status of a query answer

COUNT, SECONDS, MILLISECONDS, PERCENT = "Count", "Seconds", "Milliseconds", "Percent"


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: CloudWatch name, unit and the names of its dimensions (in the order they are emitted)."""

    name: str
    unit: str
    dimensions: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Datapoint:
    metric: Metric
    value: float
    dimensions: dict[str, str] = field(default_factory=dict)


# Ingest: one series per source (dimension Source alone).
FETCH_SUCCESS = Metric("FetchSuccess", COUNT, (SOURCE,), "1 when the feed was fetched (even if then rejected)")
FETCH_FAILURE = Metric("FetchFailure", COUNT, (SOURCE,), "1 when the feed could not be fetched")
FEED_REJECTED = Metric("FeedRejected", COUNT, (SOURCE,), "1 when the fetched document was refused as a whole")
POLL_SUCCESS = Metric("PollSuccess", COUNT, (SOURCE,), "1 when the poll ended with a usable feed")
FETCH_LATENCY = Metric("FetchLatency", MILLISECONDS, (SOURCE,), "time to fetch the feed, retries included")
SNAPSHOT_AGE = Metric("SnapshotAge", SECONDS, (SOURCE,), "age of the oldest list readers see, since last confirmed")
FEED_ROWS = Metric("FeedRows", COUNT, (SOURCE,), "rows in the feed")
REJECTED_ROWS = Metric("RejectedRows", COUNT, (SOURCE,), "rows dropped by validation")
REJECTED_ROW_RATIO = Metric("RejectedRowRatio", PERCENT, (SOURCE,), "rows dropped, percent of all rows")
REJECTED_ROWS_BY_REASON = Metric("RejectedRowsByReason", COUNT, (SOURCE, REASON), "rows dropped, per reason")
CALLS = Metric("Calls", COUNT, (SOURCE,), "distinct open calls published, over the source's clubs")
TECHS = Metric("Techs", COUNT, (SOURCE,), "technicians with open calls, over the source's clubs")
SNAPSHOT_CHANGED = Metric("SnapshotChanged", COUNT, (SOURCE,), "clubs whose list changed with this poll")
DROP_GUARD_HOLDS = Metric("DropGuardHolds", COUNT, (SOURCE,), "clubs whose sudden drop is held for confirmation")
SNAPSHOT_WRITE_UNITS = Metric("SnapshotWriteUnits", COUNT, (SOURCE,), "DynamoDB write units this poll spent")

# Dispatch: one series for the whole stage.
INGESTS_DISPATCHED = Metric("IngestsDispatched", COUNT, (), "ingest invocations started by one tick")
INGEST_DISPATCH_FAILURES = Metric("IngestDispatchFailures", COUNT, (), "ingest invocations that could not start")

# Query.
REQUESTS = Metric("Requests", COUNT, (STATUS,), "answers of the query Lambda, by HTTP status")
# Emitted in the same blob as the request's `Requests`, so it carries that blob's Status (200 or 304).
SNAPSHOT_AGE_SERVED = Metric("SnapshotAgeServed", SECONDS, (STATUS,), "age of the list a query was answered from")

INGEST_METRICS = (
    FETCH_SUCCESS,
    FETCH_FAILURE,
    FEED_REJECTED,
    POLL_SUCCESS,
    FETCH_LATENCY,
    SNAPSHOT_AGE,
    FEED_ROWS,
    REJECTED_ROWS,
    REJECTED_ROW_RATIO,
    REJECTED_ROWS_BY_REASON,
    CALLS,
    TECHS,
    SNAPSHOT_CHANGED,
    DROP_GUARD_HOLDS,
    SNAPSHOT_WRITE_UNITS,
)
DISPATCH_METRICS = (INGESTS_DISPATCHED, INGEST_DISPATCH_FAILURES)
QUERY_METRICS = (REQUESTS, SNAPSHOT_AGE_SERVED)
ALL_METRICS = INGEST_METRICS + DISPATCH_METRICS + QUERY_METRICS


def poll_datapoints(result: PollResult) -> list[Datapoint]:
    """What one poll reports: fetch outcome always; row counts once there were rows (or a usable feed); the
    published totals only for a usable feed."""
    from cappi.domain.publish import Outcome

    source = {SOURCE: result.source}

    def point(metric: Metric, value: float, **extra: str) -> Datapoint:
        return Datapoint(metric, value, {**source, **extra})

    points = [
        point(FETCH_SUCCESS, int(result.status != "failed")),
        point(FETCH_FAILURE, int(result.status == "failed")),
        point(FEED_REJECTED, int(result.status == "rejected")),
        point(POLL_SUCCESS, int(result.ok)),
        point(FETCH_LATENCY, round(result.fetch_seconds * 1000, 1)),
    ]
    if result.snapshot_age_s:
        points.append(point(SNAPSHOT_AGE, round(max(result.snapshot_age_s.values()), 1)))
    if result.rows or result.ok:
        points += [
            point(FEED_ROWS, result.rows),
            point(REJECTED_ROWS, sum(result.rejected.values())),
            point(REJECTED_ROW_RATIO, round(result.rejected_ratio * 100, 3)),
        ]
    points += [point(REJECTED_ROWS_BY_REASON, n, **{REASON: r}) for r, n in sorted(result.rejected.items())]
    if result.ok:
        points += [
            point(CALLS, sum(c.calls for c in result.clubs)),
            point(TECHS, sum(c.techs for c in result.clubs)),
            point(SNAPSHOT_CHANGED, result.count(Outcome.PUBLISHED)),
            point(DROP_GUARD_HOLDS, result.count(Outcome.HELD)),
            point(SNAPSHOT_WRITE_UNITS, result.write_units),
        ]
    return points
