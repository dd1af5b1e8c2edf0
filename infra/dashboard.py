"""The stage's dashboard: each club source's snapshot age against the stale bound and its alarm, its last poll
(from the ingest log), the stage's polls, then the API and the plumbing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cappi.contracts import metrics
from cappi.domain.registry import ClubRegistry, ClubSource
from infra.alarms import SYSTEM_PERIOD, Alarms
from infra.api import QueryApi
from infra.functions import CappiFunction
from infra.ingest import IngestPipeline

SOURCES_PER_WIDGET = 25  # sources per snapshot-age graph and alarm-status widget, so each stays legible


def chunks(items: Sequence[ClubSource], size: int) -> list[Sequence[ClubSource]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def dashboard(
    scope: Construct,
    alarms: Alarms,
    *,
    registry: ClubRegistry,
    pipeline: IngestPipeline,
    api: QueryApi,
    functions: tuple[CappiFunction, ...],
    source_alarms: Mapping[str, cloudwatch.Alarm],
    ingest_alarms: list[cloudwatch.Alarm],
    api_alarms: list[cloudwatch.Alarm],
    delivery_dlq: sqs.Queue,
) -> cloudwatch.Dashboard:
    """The stage's dashboard: each source's snapshot age and alarm, its last poll, the stage's polls, then the API
    and the plumbing."""
    config, period = alarms.config, alarms.schedule_period
    dashboard = cloudwatch.Dashboard(
        scope,
        "Dashboard",
        dashboard_name=config.resource_name("dashboard"),
        default_interval=Duration.days(1),
    )
    dashboard.add_widgets(
        cloudwatch.TextWidget(
            markdown=f"# CAPPI {config.stage}\nEach club source's snapshot age against the stale bound and its "
            "alarm; its last poll (from the ingest log); the stage's polls; then the API and the plumbing. "
            f"Why a source is unhealthy: `cappi status --stage {config.stage}`.",
            width=24,
            height=2,
        )
    )
    sources = list(registry.sources)
    for group in chunks(sources, SOURCES_PER_WIDGET):
        first, last = group[0].name, group[-1].name
        span = first if first == last else f"{first} .. {last}"
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"Snapshot age (s): {span}",
                left=[
                    alarms.metric(metrics.SNAPSHOT_AGE, "Maximum", period, source=s.name).with_(
                        label=s.name if s.enabled else f"{s.name} (disabled)"
                    )
                    for s in group
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=config.stale_after_s, label="stale")],
                width=16,
            ),
            cloudwatch.AlarmStatusWidget(
                title=f"Source alarms: {span}", alarms=[source_alarms[s.name] for s in group], width=8
            ),
        )
    dashboard.add_widgets(
        cloudwatch.LogQueryWidget(
            title="Last poll per source (ingest log)",
            log_group_names=[pipeline.ingest.log_group.log_group_name],
            query_lines=LAST_POLL_QUERY,
            view=cloudwatch.LogQueryVisualizationType.TABLE,
            width=24,
            height=max(4, min(18, 2 + len(sources) // 2)),
        )
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Polls: failed, rejected, held",
            left=[
                alarms.metric(metrics.FETCH_FAILURE, "Sum", period),
                alarms.metric(metrics.FEED_REJECTED, "Sum", period),
                alarms.metric(metrics.DROP_GUARD_HOLDS, "Sum", period),
            ],
            right=[alarms.metric(metrics.REJECTED_ROW_RATIO, "Maximum", period)],
            width=6,
        ),
        cloudwatch.GraphWidget(
            title="Fetch latency (ms)",
            left=[
                alarms.metric(metrics.FETCH_LATENCY, "p50", period),
                alarms.metric(metrics.FETCH_LATENCY, "Maximum", period),
            ],
            width=6,
        ),
        cloudwatch.GraphWidget(
            title="Dispatch and write units",
            left=[
                alarms.metric(metrics.INGESTS_DISPATCHED, "Sum", period),
                alarms.metric(metrics.INGEST_DISPATCH_FAILURES, "Sum", period),
            ],
            right=[alarms.metric(metrics.SNAPSHOT_WRITE_UNITS, "Sum", period)],
            width=6,
        ),
        cloudwatch.AlarmStatusWidget(title="Ingest alarms", alarms=ingest_alarms, width=6),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="API requests",
            left=[api.http_api.metric_count(statistic="Sum", period=SYSTEM_PERIOD)],
            right=[
                api.http_api.metric_client_error(statistic="Sum", period=SYSTEM_PERIOD),
                api.http_api.metric_server_error(statistic="Sum", period=SYSTEM_PERIOD),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="API latency (ms)",
            left=[
                api.http_api.metric_latency(statistic="p50", period=SYSTEM_PERIOD),
                api.http_api.metric_latency(statistic="p99", period=SYSTEM_PERIOD),
                api.http_api.metric_integration_latency(statistic="p99", period=SYSTEM_PERIOD),
            ],
            left_annotations=[cloudwatch.HorizontalAnnotation(value=config.api_p99_alarm_ms, label="p99 alarm")],
            width=8,
        ),
        cloudwatch.AlarmStatusWidget(title="API alarms", alarms=api_alarms, width=8),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Lambda errors and throttles",
            left=[fn.function.metric_errors(statistic="Sum", period=SYSTEM_PERIOD) for fn in functions],
            right=[fn.function.metric_throttles(statistic="Sum", period=SYSTEM_PERIOD) for fn in functions],
            width=6,
        ),
        cloudwatch.GraphWidget(
            title="Lambda duration p99 (ms)",
            left=[fn.function.metric_duration(statistic="p99", period=SYSTEM_PERIOD) for fn in functions],
            width=6,
        ),
        cloudwatch.GraphWidget(
            title="Lambda concurrency (max)",
            left=[
                fn.function.metric("ConcurrentExecutions", statistic="Maximum", period=SYSTEM_PERIOD)
                for fn in functions
            ],
            width=6,
        ),
        cloudwatch.GraphWidget(
            title="Dead-letter queues",
            left=[
                q.metric_approximate_number_of_messages_visible(statistic="Maximum", period=SYSTEM_PERIOD)
                for q in (pipeline.dispatch_dlq, pipeline.ingest_dlq, delivery_dlq)
            ],
            width=6,
        ),
    )
    return dashboard


# Logs Insights over the ingest log group: each source's latest poll from its EMF line, which carries the source's
# figures as plain fields (cappi.contracts.metrics). docs/operations.md has this and the other queries ops use.
LAST_POLL_QUERY = [
    "fields @timestamp, Source, PollSuccess, FetchFailure, FeedRejected, Calls, Techs, SnapshotAge, RejectedRows",
    "filter ispresent(Source) and ispresent(FetchSuccess)",
    "stats latest(PollSuccess) as ok, latest(FetchFailure) as failed, latest(FeedRejected) as rejected_feed, "
    "latest(Calls) as calls, latest(Techs) as techs, latest(SnapshotAge) as age_s, "
    "latest(RejectedRows) as rejected_rows, max(@timestamp) as last_poll by Source",
    "sort Source asc",
]
