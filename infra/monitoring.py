"""Alarms and the dashboard: one health alarm and one dashboard line per club source, stage-wide ingest alarms,
then the API and the plumbing, all in the stage's own metric namespace (`CAPPI/<stage>`).

Per source there is one metric series and one alarm, `SnapshotAge` > `stale_after_s` (missing data counts): it
fires whether fetches fail, feeds are rejected or nobody polls, and `cappi status` (the poll-status item) says
which. A series costs $0.30 a month and an alarm $0.10, so four of each per source bought nothing the poll-status
item does not say better. Sudden drops and rejected rows alarm once for the stage, from metrics without a source
dimension; the source is in the same EMF log line (Logs Insights, docs/operations.md) and in `cappi status`.

Every alarm notifies one SNS topic (and says so again when it recovers). The alarm of a disabled source exists but
does not notify: nobody polls it, so it would be permanently stale; enabling the source in the registry arms it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack
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
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
BREACHING = cloudwatch.TreatMissingData.BREACHING
SYSTEM_PERIOD = Duration.minutes(5)
API_MIN_REQUESTS = 20  # below this many requests in a period, a 5xx *rate* says nothing
STALE_WINDOW = 4  # stale: 3 breaching of the last 4 half-schedule periods (see _stale_alarm)
STALE_BREACHING = 3
SOURCES_PER_WIDGET = 25  # sources per snapshot-age graph and alarm-status widget, so each stays legible


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


def chunks(items: Sequence[ClubSource], size: int) -> list[Sequence[ClubSource]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


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
        self.namespace = metrics.namespace_for(config.stage)  # what infra/functions.py gives the functions
        self.schedule_period = Duration.minutes(config.schedule_minutes)
        stack = Stack.of(self)
        # Every alarm of the stack is named cappi-<stage>-...: the topic and its key trust exactly those.
        self.alarm_arn_pattern = (
            f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{config.resource_name('*')}"
        )
        self.delivery_dlq = dead_letter_queue(
            self, config, "alarm-delivery-dlq", holds="alarm notifications SNS could not deliver"
        )
        self.topic = self._topic(config, self.delivery_dlq)
        self._action = actions.SnsAction(self.topic)

        self.source_alarms = {source.name: self._stale_alarm(source) for source in registry.sources}
        self.ingest_alarms = self._ingest_alarms()
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
                metric=self.metric(metrics.INGEST_DISPATCH_FAILURES, "Sum", self.schedule_period),
                threshold=1,
                comparison=GE,
                description="Dispatch could not start the ingest of at least one club source (see its log).",
            ),
        ]
        self.dashboard = self._dashboard(registry, pipeline, api, functions)
        CfnOutput(
            self, "AlarmTopicArn", value=self.topic.topic_arn, description="SNS topic every CAPPI alarm notifies"
        ).override_logical_id("AlarmTopicArn")

    def metric(self, metric: Metric, statistic: str, period: Duration, source: str | None = None) -> cloudwatch.Metric:
        """A stored contract metric in this stage's namespace; `source` for the per-source one."""
        dimensions = {metrics.SOURCE: source} if source is not None else None
        return custom_metric(metric, statistic, period, self.namespace, dimensions)

    # -- notification -------------------------------------------------------------------------------------------

    def _topic(self, config: StageConfig, delivery_dlq: sqs.Queue) -> sns.Topic:
        """The topic every alarm notifies, encrypted with a key of its own, and open to this stage's alarms only.

        `enforce_ssl` gives the topic a resource policy, and a topic with a policy has none of SNS's default
        grants: without the Allow below CloudWatch's publish is refused and no alarm ever reaches anyone. So
        CloudWatch may publish, and use the key, only for alarms of this account whose names are this stage's
        (`aws:SourceAccount`, `aws:SourceArn`), and only over TLS (the Deny `enforce_ssl` adds).
        """
        stack = Stack.of(self)
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        from_this_stage = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": self.alarm_arn_pattern},
        }
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
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStageEncrypt",
                principals=[cloudwatch_principal],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=from_this_stage,
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=config.resource_name("alarms"),
            display_name=f"CAPPI {config.stage} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStagePublish",
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=from_this_stage,
            )
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

    # Other constructs' alarms (infra/release.py) are made the same way: named cappi-<stage>-..., notifying the topic.
    alarm = _alarm

    # -- per club source ----------------------------------------------------------------------------------------

    def _stale_alarm(self, source: ClubSource) -> cloudwatch.Alarm:
        """The source's one alarm: snapshot age beyond `stale_after_s`, where a missing datapoint counts as stale.

        It covers every way readers stop getting new lists: fetches failing and feeds rejected (the age keeps
        growing from the last poll that confirmed the list) and polls not happening (no datapoint at all).

        Half-schedule periods: a healthy source reports in every other period, so at most 2 of the last 4 are
        empty (breaching). 3 of 4 breach once a reported age crosses the threshold (at the first such poll), or
        when no poll has reported for about one and a half schedule intervals. Whole-schedule periods would
        instead raise a false alarm whenever a slow fetch pushes one report into the next period.
        """
        config, name = self.config, source.name
        note = "" if source.enabled else " (source disabled in the registry: this alarm does not notify)"
        clubs = ", ".join(map(str, sorted(source.club_ids)))
        half = max(60, (config.schedule_minutes * 60 // 2) // 60 * 60)
        return self._alarm(
            f"Source-{name}-Stale",
            subject=name,
            condition="stale",
            metric=self.metric(metrics.SNAPSHOT_AGE, "Maximum", Duration.seconds(half), source=name),
            threshold=config.stale_after_s,
            comparison=GT,
            evaluation_periods=STALE_WINDOW,
            datapoints_to_alarm=STALE_BREACHING,
            missing=BREACHING,
            description=f"Club source {name} (clubs {clubs}): the list testers read is older than "
            f"{config.stale_after_s // 60} min, or no poll has reported: fetches fail, feeds are rejected, or "
            f"nobody polls. `cappi status --stage {config.stage}` says which{note}.",
            notify=source.enabled,
        )

    # -- ingest, stage-wide -------------------------------------------------------------------------------------

    def _ingest_alarms(self) -> list[cloudwatch.Alarm]:
        config, period = self.config, self.schedule_period
        status = f"`cappi status --stage {config.stage}` names the source"
        return [
            self._alarm(
                "IngestDropGuard",
                subject="ingest",
                condition="drop-guard",
                metric=self.metric(metrics.DROP_GUARD_HOLDS, "Sum", period),
                threshold=1,
                comparison=GE,
                description="A club feed suddenly shrank below 10% of a published snapshot; CAPPI keeps the old "
                f"snapshot until the next poll confirms the drop. {status} (state held).",
            ),
            self._alarm(
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

    # -- API and system -----------------------------------------------------------------------------------------

    def _api_alarms(self, api: QueryApi) -> list[cloudwatch.Alarm]:
        config = self.config
        error_rate = api_error_rate(api, SYSTEM_PERIOD, API_MIN_REQUESTS, "5xx %")
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
                description=f"Lambda throttled the {role} function: "
                + (
                    f"it reached its reserved concurrency ({fn.reserved_concurrency})."
                    if fn.reserved_concurrency
                    else "the account's unreserved concurrency is exhausted."
                ),
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
                        self.metric(metrics.SNAPSHOT_AGE, "Maximum", period, source=s.name).with_(
                            label=s.name if s.enabled else f"{s.name} (disabled)"
                        )
                        for s in group
                    ],
                    left_annotations=[cloudwatch.HorizontalAnnotation(value=config.stale_after_s, label="stale")],
                    width=16,
                ),
                cloudwatch.AlarmStatusWidget(
                    title=f"Source alarms: {span}", alarms=[self.source_alarms[s.name] for s in group], width=8
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
                    self.metric(metrics.FETCH_FAILURE, "Sum", period),
                    self.metric(metrics.FEED_REJECTED, "Sum", period),
                    self.metric(metrics.DROP_GUARD_HOLDS, "Sum", period),
                ],
                right=[self.metric(metrics.REJECTED_ROW_RATIO, "Maximum", period)],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Fetch latency (ms)",
                left=[
                    self.metric(metrics.FETCH_LATENCY, "p50", period),
                    self.metric(metrics.FETCH_LATENCY, "Maximum", period),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Dispatch and write units",
                left=[
                    self.metric(metrics.INGESTS_DISPATCHED, "Sum", period),
                    self.metric(metrics.INGEST_DISPATCH_FAILURES, "Sum", period),
                ],
                right=[self.metric(metrics.SNAPSHOT_WRITE_UNITS, "Sum", period)],
                width=6,
            ),
            cloudwatch.AlarmStatusWidget(title="Ingest alarms", alarms=self.ingest_alarms, width=6),
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
                    for q in (pipeline.dispatch_dlq, pipeline.ingest_dlq, self.delivery_dlq)
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
