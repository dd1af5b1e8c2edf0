"""Alarms and the dashboard: one alarm set and one dashboard row per club source, plus the API and the plumbing.

Every alarm notifies one SNS topic (and says so again when it recovers). Alarms of a disabled source exist but
do not notify: nobody polls it, so it would be permanently stale; enabling the source in the registry arms them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cappi.contracts import metrics
from cappi.contracts.metrics import Metric
from cappi.domain.registry import ClubRegistry, ClubSource
from infra.api import QueryApi
from infra.config import StageConfig
from infra.functions import CappiFunction
from infra.ingest import IngestPipeline
from infra.queues import dead_letter_queue

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
BREACHING = cloudwatch.TreatMissingData.BREACHING
SYSTEM_PERIOD = Duration.minutes(5)
API_MIN_REQUESTS = 20  # below this many requests in a period, a 5xx *rate* says nothing
STALE_WINDOW = 4  # stale: 3 breaching of the last 4 half-schedule periods (see _stale_alarm)
STALE_BREACHING = 3


@dataclass(frozen=True, slots=True)
class SourceAlarms:
    poll_failures: cloudwatch.Alarm
    stale: cloudwatch.Alarm
    drop_guard: cloudwatch.Alarm
    rejected_rows: cloudwatch.Alarm

    def all(self) -> tuple[cloudwatch.Alarm, ...]:
        return (self.poll_failures, self.stale, self.drop_guard, self.rejected_rows)


def custom_metric(
    metric: Metric, statistic: str, period: Duration, dimensions: Mapping[str, str] | None = None
) -> cloudwatch.Metric:
    """One series of a contract metric, in the contract's namespace, as the functions emit it: `dimensions` must
    give a value for each of the metric's dimensions and for nothing else."""
    dimensions = dict(dimensions or {})
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(
            f"metric {metric.name} has dimensions {list(metric.dimensions)}, got values for {sorted(dimensions)}"
        )
    return cloudwatch.Metric(
        namespace=metrics.NAMESPACE,
        metric_name=metric.name,
        dimensions_map=dimensions or None,
        statistic=statistic,
        period=period,
    )


def source_metric(metric: Metric, source: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    """A per-source metric as the ingest function emits it: the contract's namespace, the single dimension
    `metrics.SOURCE`."""
    return custom_metric(metric, statistic, period, {metrics.SOURCE: source})


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        registry: ClubRegistry,
        pipeline: IngestPipeline,
        api: QueryApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.schedule_period = Duration.minutes(config.schedule_minutes)
        self.delivery_dlq = dead_letter_queue(
            self, config, "alarm-delivery-dlq", holds="alarm notifications SNS could not deliver"
        )
        self.topic = self._topic(config, self.delivery_dlq)
        self._action = actions.SnsAction(self.topic)

        self.source_alarms = {source.name: self._source_alarms(source) for source in registry.sources}
        functions = (pipeline.dispatch, pipeline.ingest, api.query)
        self.api_alarms = self._api_alarms(api)
        self.system_alarms = [
            *(
                self._queue_alarm(queue, hop)
                for queue, hop in (
                    (pipeline.dispatch_dlq, "dispatch"),
                    (pipeline.ingest_dlq, "ingest"),
                    (self.delivery_dlq, "alarm-delivery"),
                )
            ),
            *(alarm for fn in functions for alarm in self._function_alarms(fn)),
            self._alarm(
                "DispatchFailures",
                subject="dispatch",
                condition="invoke-failures",
                metric=custom_metric(metrics.INGEST_DISPATCH_FAILURES, "Sum", self.schedule_period),
                threshold=1,
                comparison=GE,
                description="Dispatch could not start the ingest of at least one club source (see its log).",
            ),
        ]
        self.dashboard = self._dashboard(registry, pipeline, api, functions)
        CfnOutput(
            self, "AlarmTopicArn", value=self.topic.topic_arn, description="SNS topic every CAPPI alarm notifies"
        ).override_logical_id("AlarmTopicArn")

    # -- notification -------------------------------------------------------------------------------------------

    def _topic(self, config: StageConfig, delivery_dlq: sqs.Queue) -> sns.Topic:
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, hence a key of our own whose
        # policy lets CloudWatch use it.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the CAPPI {config.stage} alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=config.resource_name("alarms"),
            display_name=f"CAPPI {config.stage} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if config.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email, dead_letter_queue=delivery_dlq))
        else:
            Annotations.of(self).add_warning_v2(
                "cappi:no-alarm-email",
                f"No alarm e-mail for stage {config.stage}: alarms reach the SNS topic but nobody is told. "
                f"Set alarm_email in cdk.json or pass -c {config.stage}:alarm_email=ops@example.org.",
            )
        return topic

    def _alarm(
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
        alarm = cloudwatch.Alarm(
            self,
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

    # -- per club source ----------------------------------------------------------------------------------------

    def _source_alarms(self, source: ClubSource) -> SourceAlarms:
        config, name, period = self.config, source.name, self.schedule_period
        note = "" if source.enabled else " (source disabled in the registry: this alarm does not notify)"
        prefix = f"Club source {name} (clubs {', '.join(map(str, sorted(source.club_ids)))})"
        base = f"Source-{name}"
        polls = config.failed_polls_to_alarm
        return SourceAlarms(
            # PollSuccess is 0 for a failed fetch *and* for a rejected feed: either way readers get nothing new.
            poll_failures=self._alarm(
                f"{base}-PollFailures",
                subject=name,
                condition="poll-failures",
                metric=source_metric(metrics.POLL_SUCCESS, name, "Sum", period),
                threshold=1,
                comparison=LT,
                evaluation_periods=polls,
                description=f"{prefix}: no successful poll in {polls} consecutive schedule periods "
                f"({polls * config.schedule_minutes} min); fetches fail or feeds are rejected{note}.",
                notify=source.enabled,
            ),
            stale=self._stale_alarm(base, source, prefix, note),
            drop_guard=self._alarm(
                f"{base}-DropGuard",
                subject=name,
                condition="drop-guard",
                metric=source_metric(metrics.DROP_GUARD_HOLDS, name, "Sum", period),
                threshold=1,
                comparison=GE,
                description=f"{prefix}: the feed suddenly shrank below 10% of a published snapshot; CAPPI keeps the "
                f"old snapshot until the next poll confirms the drop{note}.",
                notify=source.enabled,
            ),
            rejected_rows=self._alarm(
                f"{base}-RejectedRows",
                subject=name,
                condition="rejected-rows",
                metric=source_metric(metrics.REJECTED_ROW_RATIO, name, "Maximum", period),
                threshold=config.rejected_ratio_alarm_percent,
                comparison=GT,
                description=f"{prefix}: more than {config.rejected_ratio_alarm_percent:g}% of a feed's rows were "
                f"invalid (a feed with more than 5% is rejected whole); see "
                f"{metrics.REJECTED_ROWS_BY_REASON.name}{note}.",
                notify=source.enabled,
            ),
        )

    def _stale_alarm(self, base: str, source: ClubSource, prefix: str, note: str) -> cloudwatch.Alarm:
        """Snapshot age beyond `stale_after_s`, where a missing datapoint counts as stale.

        Half-schedule periods: a healthy source reports in every other period, so at most 2 of the last 4 are
        empty (breaching). 3 of 4 breach once a reported age crosses the threshold (at the first such poll), or
        when no poll has reported for about one and a half schedule intervals. Whole-schedule periods would
        instead raise a false alarm whenever a slow fetch pushes one report into the next period.
        """
        config = self.config
        half = max(60, (config.schedule_minutes * 60 // 2) // 60 * 60)
        return self._alarm(
            f"{base}-Stale",
            subject=source.name,
            condition="stale",
            metric=source_metric(metrics.SNAPSHOT_AGE, source.name, "Maximum", Duration.seconds(half)),
            threshold=config.stale_after_s,
            comparison=GT,
            evaluation_periods=STALE_WINDOW,
            datapoints_to_alarm=STALE_BREACHING,
            missing=BREACHING,
            description=f"{prefix}: the snapshot testers read is older than {config.stale_after_s // 60} min, or "
            f"no poll has reported at all (a club nobody polls is a stale club){note}.",
            notify=source.enabled,
        )

    # -- API and system -----------------------------------------------------------------------------------------

    def _api_alarms(self, api: QueryApi) -> list[cloudwatch.Alarm]:
        config = self.config
        requests = api.http_api.metric_count(statistic="Sum", period=SYSTEM_PERIOD)
        errors = api.http_api.metric_server_error(statistic="Sum", period=SYSTEM_PERIOD)
        error_rate = cloudwatch.MathExpression(
            expression=f"IF(requests >= {API_MIN_REQUESTS}, 100 * FILL(errors, 0) / requests, 0)",
            using_metrics={"requests": requests, "errors": errors},
            label="5xx %",
            period=SYSTEM_PERIOD,
        )
        return [
            self._alarm(
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
            self._alarm(
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

    def _queue_alarm(self, queue: sqs.Queue, hop: str) -> cloudwatch.Alarm:
        return self._alarm(
            f"DlqDepth-{hop}",
            subject=f"{hop}-dlq",
            condition="not-empty",
            metric=queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=SYSTEM_PERIOD),
            threshold=1,
            comparison=GE,
            description=f"The {hop} dead-letter queue is not empty: read its messages, fix the cause, then purge "
            "it (README, Operations).",
        )

    def _function_alarms(self, fn: CappiFunction) -> list[cloudwatch.Alarm]:
        role = fn.spec.role
        return [
            self._alarm(
                f"Errors-{role}",
                subject=role,
                condition="errors",
                metric=fn.function.metric_errors(statistic="Sum", period=SYSTEM_PERIOD),
                threshold=1,
                comparison=GE,
                description=f"The {role} function raised (a CAPPI fault, not a club's): see its log group.",
            ),
            self._alarm(
                f"Throttles-{role}",
                subject=role,
                condition="throttles",
                metric=fn.function.metric_throttles(statistic="Sum", period=SYSTEM_PERIOD),
                threshold=1,
                comparison=GE,
                description=f"Lambda throttled the {role} function: the account's concurrency is exhausted.",
            ),
        ]

    # -- dashboard ----------------------------------------------------------------------------------------------

    def _dashboard(
        self,
        registry: ClubRegistry,
        pipeline: IngestPipeline,
        api: QueryApi,
        functions: tuple[CappiFunction, ...],
    ) -> cloudwatch.Dashboard:
        config, period = self.config, self.schedule_period
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=config.resource_name("dashboard"),
            default_interval=Duration.days(1),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# CAPPI {config.stage}\nOne row per club source: calls and technicians in the current "
                "snapshot, its age, and failed or held polls. Then the API and the plumbing.",
                width=24,
                height=2,
            )
        )
        for source in registry.sources:
            name = source.name
            state = "" if source.enabled else " (disabled)"
            alarms = self.source_alarms[name]
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{name}{state}: calls, techs",
                    left=[source_metric(metrics.CALLS, name, "Maximum", period)],
                    right=[source_metric(metrics.TECHS, name, "Maximum", period)],
                    width=6,
                ),
                cloudwatch.GraphWidget(
                    title=f"{name}: snapshot age (s)",
                    left=[source_metric(metrics.SNAPSHOT_AGE, name, "Maximum", period)],
                    left_annotations=[cloudwatch.HorizontalAnnotation(value=config.stale_after_s, label="stale")],
                    width=6,
                ),
                cloudwatch.GraphWidget(
                    title=f"{name}: failures",
                    left=[
                        source_metric(metrics.FETCH_FAILURE, name, "Sum", period),
                        source_metric(metrics.FEED_REJECTED, name, "Sum", period),
                        source_metric(metrics.DROP_GUARD_HOLDS, name, "Sum", period),
                    ],
                    right=[source_metric(metrics.REJECTED_ROW_RATIO, name, "Maximum", period)],
                    width=6,
                ),
                cloudwatch.AlarmStatusWidget(title=f"{name}: alarms", alarms=list(alarms.all()), width=6),
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
            cloudwatch.AlarmStatusWidget(title="API alarms", alarms=self.api_alarms, width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[fn.function.metric_errors(statistic="Sum", period=SYSTEM_PERIOD) for fn in functions],
                right=[fn.function.metric_throttles(statistic="Sum", period=SYSTEM_PERIOD) for fn in functions],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration p99 (ms)",
                left=[fn.function.metric_duration(statistic="p99", period=SYSTEM_PERIOD) for fn in functions],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    q.metric_approximate_number_of_messages_visible(statistic="Maximum", period=SYSTEM_PERIOD)
                    for q in (pipeline.dispatch_dlq, pipeline.ingest_dlq, self.delivery_dlq)
                ],
                width=8,
            ),
        )
        return dashboard
