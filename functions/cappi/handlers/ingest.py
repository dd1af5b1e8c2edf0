"""Ingest Lambda: poll one club source, validate its feed and publish its snapshots.

Event: `{"source": "<registry name>", "scheduled_time": "<ISO time of the tick>"}` (from dispatch).
A club-side problem is a structured result with metrics, never an exception; an exception means our own fault
(bad event, store failure), which Lambda's asynchronous retries and on-failure destination handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cappi.domain.poll import FeedFetcher, PollResult, poll_source
from cappi.domain.publish import Outcome, SnapshotStore
from cappi.domain.registry import ClubRegistry, load_registry
from cappi.observability import NAMESPACE, logger, metrics, route_library_logs_through
from cappi.settings import IngestSettings


class BadIngestEvent(ValueError):
    pass


@dataclass(slots=True)
class _Wiring:
    registry: ClubRegistry
    fetcher: FeedFetcher
    store: SnapshotStore


_wiring: _Wiring | None = None


def _wire() -> _Wiring:
    global _wiring  # noqa: PLW0603 - built once per container, at first use
    if _wiring is None:
        import boto3

        from cappi.adapters.club_client import ClientLimits, ClubFeedClient
        from cappi.adapters.secrets import SecretsManagerSecrets
        from cappi.adapters.snapshot_store import DynamoSnapshotStore

        settings = IngestSettings.from_env()
        registry = load_registry(settings.clubs_file)
        limits = ClientLimits(deadline=settings.fetch_deadline_s, max_body_bytes=settings.max_body_bytes)
        _wiring = _Wiring(
            registry=registry,
            fetcher=ClubFeedClient(SecretsManagerSecrets(max_age=int(settings.secrets_max_age_s)), limits),
            store=DynamoSnapshotStore(
                boto3.client("dynamodb"), settings.table_name, sources_by_club=registry.sources_by_club
            ),
        )
        route_library_logs_through(logger, "cappi.club_client")
    return _wiring


def use(registry: ClubRegistry, fetcher: FeedFetcher, store: SnapshotStore) -> None:
    """Replace the wiring (local mode, tests)."""
    global _wiring  # noqa: PLW0603
    _wiring = _Wiring(registry, fetcher, store)


def source_name_of(event: Any) -> str:
    if not isinstance(event, dict) or not isinstance(event.get("source"), str) or not event["source"]:
        raise BadIngestEvent('the ingest event must be an object with a "source" name')
    return event["source"]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    wiring = _wire()
    name = source_name_of(event)
    source = wiring.registry.source(name)  # KeyError: the deployed registry and dispatch disagree (our fault)
    logger.append_keys(source=source.name, club_ids=sorted(source.club_ids), scheduled_time=event.get("scheduled_time"))
    result = poll_source(source, wiring.fetcher, wiring.store)
    record(result)
    summary = result.summary()
    summary["scheduled_time"] = event.get("scheduled_time")
    return summary


def record(result: PollResult) -> None:
    """Turn one poll into log lines and per-source metrics (the alarms and dashboard read these)."""
    metrics.add_dimension(name="Source", value=result.source)
    metrics.add_metric(name="FetchSuccess", unit=MetricUnit.Count, value=int(result.status != "failed"))
    metrics.add_metric(name="FetchFailure", unit=MetricUnit.Count, value=int(result.status == "failed"))
    metrics.add_metric(name="FeedRejected", unit=MetricUnit.Count, value=int(result.status == "rejected"))
    metrics.add_metric(name="PollSuccess", unit=MetricUnit.Count, value=int(result.ok))
    metrics.add_metric(name="FetchLatency", unit=MetricUnit.Milliseconds, value=round(result.fetch_seconds * 1000, 1))
    if result.snapshot_age_s:
        metrics.add_metric(
            name="SnapshotAge", unit=MetricUnit.Seconds, value=round(max(result.snapshot_age_s.values()), 1)
        )
    if result.rows or result.ok:
        metrics.add_metric(name="FeedRows", unit=MetricUnit.Count, value=result.rows)
        metrics.add_metric(name="RejectedRows", unit=MetricUnit.Count, value=sum(result.rejected.values()))
        metrics.add_metric(
            name="RejectedRowRatio", unit=MetricUnit.Percent, value=round(result.rejected_ratio * 100, 3)
        )
    for reason, count in sorted(result.rejected.items()):
        with single_metric(
            name="RejectedRowsByReason", unit=MetricUnit.Count, value=count, namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="Source", value=result.source)
            metric.add_dimension(name="Reason", value=reason)

    if result.ok:
        metrics.add_metric(name="Calls", unit=MetricUnit.Count, value=sum(c.calls for c in result.clubs))
        metrics.add_metric(name="Techs", unit=MetricUnit.Count, value=sum(c.techs for c in result.clubs))
        metrics.add_metric(name="SnapshotChanged", unit=MetricUnit.Count, value=result.count(Outcome.PUBLISHED))
        metrics.add_metric(name="DropGuardHolds", unit=MetricUnit.Count, value=result.count(Outcome.HELD))
        metrics.add_metric(name="SnapshotWriteUnits", unit=MetricUnit.Count, value=result.write_units)

    fields = {
        "status": result.status,
        "attempts": result.attempts,
        "fetch_ms": round(result.fetch_seconds * 1000, 1),
        "body_bytes": result.body_bytes,
        "rows": result.rows,
        "rejected": result.rejected,
        "warnings": result.warnings,
        "clubs": {
            str(c.club_id): {"outcome": c.outcome.value, "calls": c.calls, "techs": c.techs} for c in result.clubs
        },
        "snapshot_age_s": {str(k): round(v, 1) for k, v in result.snapshot_age_s.items()},
        "write_units": result.write_units,
    }
    if result.ok:
        held = [c.club_id for c in result.clubs if c.outcome is Outcome.HELD]
        if held:
            logger.warning("sudden drop held back until the next poll confirms it", extra={**fields, "held": held})
        else:
            logger.info("poll done", extra=fields)
    else:
        logger.warning(
            "poll failed; readers keep the last good snapshot",
            extra={**fields, "error_code": result.error_code, "error": result.error, "http_status": result.http_status},
        )
