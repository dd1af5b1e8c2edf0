"""The stage's dashboard, of a fixed size whatever the registry: the stale sources (how many, the oldest list, and
dispatch's log line naming them), each source's last poll (from the ingest log), the stage's polls, then the API and
the plumbing."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cappi.contracts import metrics
from infra.alarms import SYSTEM_PERIOD, Alarms
from infra.api import QueryApi
from infra.functions import CappiFunction
from infra.ingest import IngestPipeline

STALE_WIDGET = "Stale sources, by name (dispatch log)"  # the staleness alarm's description names it


def dashboard(
    scope: Construct,
    alarms: Alarms,
    *,
    pipeline: IngestPipeline,
    api: QueryApi,
    functions: tuple[CappiFunction, ...],
    ingest_alarms: list[cloudwatch.Alarm],
    api_alarms: list[cloudwatch.Alarm],
    delivery_dlq: sqs.Queue,
) -> cloudwatch.Dashboard:
    """The stage's dashboard: the stale sources, each source's last poll, the stage's polls, then the API and
    the plumbing. Nothing in it is per source: 1,000 sources make the same widgets as 5."""
    config, period = alarms.config, alarms.schedule_period
    dashboard = cloudwatch.Dashboard(
        scope,
        "Dashboard",
        dashboard_name=config.resource_name("dashboard"),
        default_interval=Duration.days(1),
    )
    dashboard.add_widgets(
        cloudwatch.TextWidget(
            markdown=f"# CAPPI {config.stage}\nStale sources (stale after {config.stale_after_s // 60} min, or never "
            "published) and which they are; each source's last poll (from the ingest log); the stage's polls; then "
            f"the API and the plumbing. Why a source is unhealthy: `cappi status --stage {config.stage}`.",
            width=24,
            height=2,
        )
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Stale sources (count) and the oldest list (s)",
            left=[alarms.metric(metrics.STALE_SOURCES, "Maximum", SYSTEM_PERIOD)],
            right=[alarms.metric(metrics.OLDEST_SNAPSHOT_AGE, "Maximum", SYSTEM_PERIOD)],
            right_annotations=[cloudwatch.HorizontalAnnotation(value=config.stale_after_s, label="stale")],
            width=8,
        ),
        cloudwatch.LogQueryWidget(
            title=STALE_WIDGET,
            log_group_names=[pipeline.dispatch.log_group.log_group_name],
            query_lines=STALE_QUERY,
            view=cloudwatch.LogQueryVisualizationType.TABLE,
            width=16,
        ),
    )
    dashboard.add_widgets(
        cloudwatch.LogQueryWidget(
            title="Last poll per source (ingest log)",
            log_group_names=[pipeline.ingest.log_group.log_group_name],
            query_lines=LAST_POLL_QUERY,
            view=cloudwatch.LogQueryVisualizationType.TABLE,
            width=24,
            height=12,
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

# Logs Insights over the dispatch log group: its latest lines naming the stale sources with their ages (written only
# on a tick that found one; cappi.contracts.metrics.STALE_LINE).
STALE_QUERY = [
    "fields @timestamp, stale_sources, oldest_snapshot_age_s, stale",
    f'filter message = "{metrics.STALE_LINE}"',
    "sort @timestamp desc",
    "limit 20",
]
