"""The stage's alarms, made one way: each named cappi-<stage>-<subject>-<condition>, notifying the alarm topic (and
again when it recovers), on a metric of the stage's own namespace (`CAPPI/<stage>`) or of AWS's.

Staleness is one alarm for the whole stage, however many sources: dispatch counts on every tick the enabled sources
whose list is older than `stale_after_s` or missing (`StaleSources`), and the alarm fires at one or more, or when
dispatch stops reporting; its description says where the names are. Sudden drops and rejected rows alarm once for
the stage, from metrics without a source dimension. Then the API (5xx rate, p99 latency) and the plumbing
(dead-letter queues, each function's errors and throttles, dispatch). The number of alarms does not grow with the
registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cappi.contracts import metrics
from cappi.contracts.metrics import Metric
from infra.api import QueryApi
from infra.config import StageConfig
from infra.functions import CappiFunction

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
BREACHING = cloudwatch.TreatMissingData.BREACHING
SYSTEM_PERIOD = Duration.minutes(5)
API_MIN_REQUESTS = 20  # below this many requests in a period, a 5xx *rate* says nothing
# Stale: two five-minute periods in a row with a stale source, or without a report from dispatch (see `Alarms.stale`).
STALE_PERIOD = Duration.minutes(5)
STALE_PERIODS = 2


def custom_metric(
    metric: Metric,
    statistic: str,
    period: Duration,
    namespace: str,
    dimensions: Mapping[str, str] | None = None,
) -> cloudwatch.Metric:
    """One series of a stored contract metric in `namespace`, as the functions emit it: `dimensions` must give a
    value for each of the metric's dimensions and for nothing else, and a log field is no series at all."""
    dimensions = dict(dimensions or {})
    if not metric.stored:
        raise ValueError(f"{metric.name} is a log field, not a metric series: query it with Logs Insights")
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(
            f"metric {metric.name} has dimensions {list(metric.dimensions)}, got values for {sorted(dimensions)}"
        )
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=metric.name,
        dimensions_map=dimensions or None,
        statistic=statistic,
        period=period,
    )


def api_error_rate(api: QueryApi, period: Duration, min_requests: int, label: str) -> cloudwatch.MathExpression:
    """The share of API requests answered 5xx in each period, in percent; 0 for a period with fewer than
    `min_requests` requests, where a rate says nothing."""
    requests = api.http_api.metric_count(statistic="Sum", period=period)
    errors = api.http_api.metric_server_error(statistic="Sum", period=period)
    return cloudwatch.MathExpression(
        expression=f"IF(requests >= {min_requests}, 100 * FILL(errors, 0) / requests, 0)",
        using_metrics={"requests": requests, "errors": errors},
        label=label,
        period=period,
    )


class Alarms:
    """Makes the stage's alarms, in `scope` (construct ids as given), and the metrics they and the dashboard watch."""

    def __init__(self, scope: Construct, config: StageConfig, topic: sns.Topic) -> None:
        self.scope = scope
        self.config = config
        self.namespace = metrics.namespace_for(config.stage)  # what infra/functions.py gives the functions
        self.schedule_period = Duration.minutes(config.schedule_minutes)
        self._action = actions.SnsAction(topic)

    def metric(self, metric: Metric, statistic: str, period: Duration) -> cloudwatch.Metric:
        """A stored contract metric in this stage's namespace (none has a dimension)."""
        return custom_metric(metric, statistic, period, self.namespace)

    def alarm(
        self,
        construct_id: str,
        *,
        subject: str,
        condition: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        missing: cloudwatch.TreatMissingData = NOT_BREACHING,
        notify: bool = True,
    ) -> cloudwatch.Alarm:
        """An alarm named cappi-<stage>-<subject>-<condition> that notifies the topic, and again when it recovers
        (infra/release.py makes its release alarms here too)."""
        alarm = cloudwatch.Alarm(
            self.scope,
            construct_id,
            alarm_name=self.config.alarm_name(subject, condition),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm or evaluation_periods,
            treat_missing_data=missing,
            actions_enabled=notify,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm

    # -- staleness, every source in one alarm -------------------------------------------------------------------

    def stale(self, where_names: str) -> cloudwatch.Alarm:
        """The stage's one staleness alarm: at least one enabled source whose list readers see was last confirmed
        more than `stale_after_s` ago, or never published, in two five-minute periods in a row.

        Dispatch reports `StaleSources` on every tick (each minute), so each period holds about five reports.
        Missing data counts as stale: a dispatch that does not run, or cannot read the heads, cannot vouch for any
        source. Two periods rather than one keep a single late or lost tick from raising it; it fires within about
        ten minutes of a source crossing the bound. `where_names` says where the stale sources are named.
        """
        config = self.config
        return self.alarm(
            "SourcesStale",
            subject="sources",
            condition="stale",
            metric=self.metric(metrics.STALE_SOURCES, "Maximum", STALE_PERIOD),
            threshold=1,
            comparison=GE,
            evaluation_periods=STALE_PERIODS,
            missing=BREACHING,
            description=f"At least one enabled club source is stale: the list testers read was last confirmed by a "
            f"poll more than {config.stale_after_s // 60} min ago, or was never published (fetches fail, feeds are "
            f"rejected, or nobody polls); or dispatch stopped reporting (its errors alarm and log). Which sources, "
            f"and why: {where_names}.",
        )

    # -- ingest, stage-wide -------------------------------------------------------------------------------------

    def ingest(self) -> list[cloudwatch.Alarm]:
        config, period = self.config, self.schedule_period
        status = f"`cappi status --stage {config.stage}` names the source"
        return [
            self.alarm(
                "IngestDropGuard",
                subject="ingest",
                condition="drop-guard",
                metric=self.metric(metrics.DROP_GUARD_HOLDS, "Sum", period),
                threshold=1,
                comparison=GE,
                description="A club feed suddenly shrank below 10% of a published snapshot; CAPPI keeps the old "
                f"snapshot until the next poll confirms the drop. {status} (state held).",
            ),
            self.alarm(
                "IngestRejectedRows",
                subject="ingest",
                condition="rejected-rows",
                metric=self.metric(metrics.REJECTED_ROW_RATIO, "Maximum", period),
                threshold=config.rejected_ratio_alarm_percent,
                comparison=GT,
                description=f"More than {config.rejected_ratio_alarm_percent:g}% of a club feed's rows were "
                f"invalid (a feed with more than 5% is rejected whole). {status} and the counts per reason.",
            ),
        ]

    def dispatch_failures(self) -> cloudwatch.Alarm:
        return self.alarm(
            "DispatchFailures",
            subject="dispatch",
            condition="invoke-failures",
            metric=self.metric(metrics.INGEST_DISPATCH_FAILURES, "Sum", self.schedule_period),
            threshold=1,
            comparison=GE,
            description="Dispatch could not start the ingest of at least one club source (see its log).",
        )

    # -- API and system -----------------------------------------------------------------------------------------

    def api(self, api: QueryApi) -> list[cloudwatch.Alarm]:
        config = self.config
        error_rate = api_error_rate(api, SYSTEM_PERIOD, API_MIN_REQUESTS, "5xx %")
        return [
            self.alarm(
                "Api5xxRate",
                subject="api",
                condition="5xx-rate",
                metric=error_rate,
                threshold=config.api_5xx_alarm_percent,
                comparison=GT,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                description=f"More than {config.api_5xx_alarm_percent:g}% of API requests failed with 5xx in 2 of "
                f"3 five-minute periods (periods with under {API_MIN_REQUESTS} requests are ignored).",
            ),
            self.alarm(
                "ApiLatencyP99",
                subject="api",
                condition="p99-latency",
                metric=api.http_api.metric_latency(statistic="p99", period=SYSTEM_PERIOD),
                threshold=config.api_p99_alarm_ms,
                comparison=GT,
                evaluation_periods=3,
                description=f"API p99 latency above {config.api_p99_alarm_ms} ms for 15 minutes.",
            ),
        ]

    def queue(self, queue: sqs.Queue, hop: str) -> cloudwatch.Alarm:
        return self.alarm(
            f"DlqDepth-{hop}",
            subject=f"{hop}-dlq",
            condition="not-empty",
            metric=queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=SYSTEM_PERIOD),
            threshold=1,
            comparison=GE,
            description=f"The {hop} dead-letter queue is not empty: read its messages, fix the cause, then purge "
            "it (README, Operations).",
        )

    def function(self, fn: CappiFunction) -> list[cloudwatch.Alarm]:
        role = fn.spec.role
        return [
            self.alarm(
                f"Errors-{role}",
                subject=role,
                condition="errors",
                metric=fn.function.metric_errors(statistic="Sum", period=SYSTEM_PERIOD),
                threshold=1,
                comparison=GE,
                description=f"The {role} function raised (a CAPPI fault, not a club's): see its log group.",
            ),
            self.alarm(
                f"Throttles-{role}",
                subject=role,
                condition="throttles",
                metric=fn.function.metric_throttles(statistic="Sum", period=SYSTEM_PERIOD),
                threshold=1,
                comparison=GE,
                description=f"Lambda throttled the {role} function: "
                + (
                    f"it reached its reserved concurrency ({fn.reserved_concurrency})."
                    if fn.reserved_concurrency
                    else "the account's unreserved concurrency is exhausted."
                ),
            ),
        ]
