"""The metrics contract: every figure CAPPI reports through CloudWatch's embedded metric format (EMF), with its
unit and dimensions, and the mapping of one poll's result to the figures it produces.

A figure is either a *metric* (`stored=True`): CloudWatch extracts it into a metric series, which costs
$0.30 a month per series (per distinct dimension values), so only what an alarm or the dashboard reads is one; or
a *log field* (`stored=False`): a plain key of the same EMF log line, free beyond its few bytes and queryable with
CloudWatch Logs Insights (docs/operations.md lists the queries). No metric has a per-source dimension, so the
metrics bill does not grow with the registry: a poll's figures are stage-wide metrics (no dimension) or log fields
next to its `Source`, and staleness is counted for the whole stage by dispatch (`StaleSources`,
`OldestSnapshotAge`), which reads every enabled source's head on each tick and logs the stale sources by name.

The handlers emit exactly these (`cappi.observability.emit`); `infra/monitoring.py` builds its alarms and the
dashboard from the same objects, and tests check that every metric an alarm or the dashboard reads is one the code
emits under the same namespace, name and dimensions. Units are CloudWatch's unit names, so this module needs no
AWS library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cappi.domain.poll import PollResult

# The namespace of local mode and tools. A deployed stage emits into `namespace_for(stage)` (infra sets
# POWERTOOLS_METRICS_NAMESPACE), so two stages in one account and region never mix their series or alarms.
NAMESPACE = "CAPPI"
SOURCE = "Source"  # the registry name of a club source
REASON = "Reason"  # why rows were rejected (the feed validator's reason codes)

COUNT, SECONDS, MILLISECONDS, PERCENT = "Count", "Seconds", "Milliseconds", "Percent"


def namespace_for(stage: str) -> str:
    """The metric namespace of one deployed stage: `CAPPI/<stage>`."""
    return f"{NAMESPACE}/{stage}"


@dataclass(frozen=True, slots=True)
class Metric:
    """One figure: CloudWatch name, unit, the names of its dimensions, and whether CloudWatch stores it as a
    metric series (`stored`) or it is a log field only."""

    name: str
    unit: str
    dimensions: tuple[str, ...] = ()
    description: str = ""
    stored: bool = True


@dataclass(frozen=True, slots=True)
class Datapoint:
    metric: Metric
    value: float
    dimensions: dict[str, str] = field(default_factory=dict)


def _log_field(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, (SOURCE,), description, stored=False)


# Ingest, stage-wide (no dimension): which source it was is in the same log line and in `cappi status`.
FETCH_FAILURE = Metric("FetchFailure", COUNT, (), "polls whose feed could not be fetched")
FEED_REJECTED = Metric("FeedRejected", COUNT, (), "polls whose fetched document was refused as a whole")
DROP_GUARD_HOLDS = Metric("DropGuardHolds", COUNT, (), "clubs whose sudden drop is held for confirmation")
REJECTED_ROW_RATIO = Metric("RejectedRowRatio", PERCENT, (), "rows dropped, percent of the feed's rows")
FETCH_LATENCY = Metric("FetchLatency", MILLISECONDS, (), "time to fetch a feed, retries included")
SNAPSHOT_WRITE_UNITS = Metric("SnapshotWriteUnits", COUNT, (), "DynamoDB write units a poll spent")
# Ingest, log fields of the same line (key `Source` beside them): what ops read per source in Logs Insights.
FETCH_SUCCESS = _log_field("FetchSuccess", COUNT, "1 when the feed was fetched (even if then rejected)")
POLL_SUCCESS = _log_field("PollSuccess", COUNT, "1 when the poll ended with a usable feed")
FEED_ROWS = _log_field("FeedRows", COUNT, "rows in the feed")
REJECTED_ROWS = _log_field("RejectedRows", COUNT, "rows dropped by validation")
CALLS = _log_field("Calls", COUNT, "distinct open calls published, over the source's clubs")
TECHS = _log_field("Techs", COUNT, "technicians with open calls, over the source's clubs")
SNAPSHOT_CHANGED = _log_field("SnapshotChanged", COUNT, "clubs whose list changed with this poll")
# Age of the oldest list readers see since a poll last confirmed it. A log field only: a series per source cost
# $0.30 a month each; dispatch's stage-wide `StaleSources` is what the alarm reads.
SNAPSHOT_AGE = _log_field("SnapshotAge", SECONDS, "age of the oldest list readers see, since last confirmed")
# Per reason: an object {reason: rows} in the line (Logs Insights: `RejectedRowsByReason.tech_id_invalid`).
REJECTED_ROWS_BY_REASON = Metric("RejectedRowsByReason", COUNT, (SOURCE, REASON), "rows dropped, per reason", False)

# Dispatch: one series each for the whole stage.
INGESTS_DISPATCHED = Metric("IngestsDispatched", COUNT, (), "ingest invocations started by one tick")
INGEST_DISPATCH_FAILURES = Metric("IngestDispatchFailures", COUNT, (), "ingest invocations that could not start")
# Dispatch, every tick, over every enabled source's head (cappi.domain.staleness): the stage's one staleness alarm
# reads `StaleSources`; the names are in the same tick's `stale sources` log line and in `cappi status`.
STALE_SOURCES = Metric("StaleSources", COUNT, (), "enabled sources whose list is older than stale_after_s, or none")
OLDEST_SNAPSHOT_AGE = Metric("OldestSnapshotAge", SECONDS, (), "age of the oldest list readers see, any source")
# Dispatch's plain log line (WARNING, only on a tick that finds a stale source) naming the stale sources with their
# ages, with these fields: the dashboard's Logs Insights widget and docs/operations.md filter on its message.
STALE_LINE = "stale sources"
STALE_LINE_FIELDS = ("stale_sources", "enabled_sources", "oldest_snapshot_age_s", "stale_after_s", "stale")

# The query emits no metric: API Gateway's own Count, 4xx, 5xx and Latency (free) and its access log record every
# answer; the function logs every error and a sample of answers (cappi.handlers.query).

INGEST_METRICS = (
    FETCH_FAILURE,
    FEED_REJECTED,
    DROP_GUARD_HOLDS,
    REJECTED_ROW_RATIO,
    FETCH_LATENCY,
    SNAPSHOT_WRITE_UNITS,
)
INGEST_LOG_FIELDS = (
    FETCH_SUCCESS,
    POLL_SUCCESS,
    FEED_ROWS,
    REJECTED_ROWS,
    CALLS,
    TECHS,
    SNAPSHOT_CHANGED,
    SNAPSHOT_AGE,
    REJECTED_ROWS_BY_REASON,
)
DISPATCH_METRICS = (INGESTS_DISPATCHED, INGEST_DISPATCH_FAILURES, STALE_SOURCES, OLDEST_SNAPSHOT_AGE)
ALL_METRICS = INGEST_METRICS + DISPATCH_METRICS  # every stored series: what alarms and the dashboard may read
ALL_FIGURES = ALL_METRICS + INGEST_LOG_FIELDS


def poll_datapoints(result: PollResult) -> list[Datapoint]:
    """What one poll reports: fetch outcome always; row counts once there were rows (or a usable feed); the
    published totals only for a usable feed. One EMF line holds them all, with the source beside the stage-wide
    metrics' values, so Logs Insights can still group any of them by `Source`."""
    from cappi.domain.publish import Outcome

    source = {SOURCE: result.source}

    def point(metric: Metric, value: float) -> Datapoint:
        return Datapoint(metric, value, source if metric.dimensions else {})

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
    points += [
        Datapoint(REJECTED_ROWS_BY_REASON, n, {**source, REASON: reason})
        for reason, n in sorted(result.rejected.items())
    ]
    if result.ok:
        points += [
            point(CALLS, sum(c.calls for c in result.clubs)),
            point(TECHS, sum(c.techs for c in result.clubs)),
            point(SNAPSHOT_CHANGED, result.count(Outcome.PUBLISHED)),
            point(DROP_GUARD_HOLDS, result.count(Outcome.HELD)),
            point(SNAPSHOT_WRITE_UNITS, result.write_units),
        ]
    return points
