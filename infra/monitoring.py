"""Alarms and the dashboard, all in the stage's own metric namespace (`CAPPI/<stage>`), and all of a fixed number
whatever the size of the registry: one staleness alarm over every source, stage-wide ingest alarms, then the API and
the plumbing.

Staleness is counted by dispatch on every tick over every enabled source's head (`StaleSources`), so one alarm
covers failing fetches, rejected feeds and polls that do not happen, for 5 sources or 1,000; the names are in
`cappi status` (stale sources first) and in dispatch's `stale sources` log line, which the dashboard shows. Per
source, a metric series and an alarm used to cost $0.40 a month and one CloudFormation resource each (226 sources
filled a stack). Sudden drops and rejected rows alarm once for the stage, from metrics without a source dimension;
the source is in the same EMF log line (Logs Insights, docs/operations.md) and in `cappi status`.

Every alarm notifies one SNS topic (and says so again when it recovers). A disabled source is not counted: nobody
polls it, so it would be stale for good; enabling it in the registry counts it from its next deploy on.

This construct puts them together, all in its own scope: the topic (infra/alarm_topic.py), the alarms
(infra/alarms.py) and the dashboard (infra/dashboard.py).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cappi.contracts.metrics import STALE_LINE
from cappi.domain.registry import ClubRegistry
from infra.alarm_topic import alarm_topic
from infra.alarms import Alarms
from infra.api import QueryApi
from infra.config import StageConfig
from infra.dashboard import STALE_WIDGET, dashboard
from infra.ingest import IngestPipeline
from infra.queues import dead_letter_queue


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
        stack = Stack.of(self)
        # Every alarm of the stack is named cappi-<stage>-...: the topic and its key trust exactly those.
        self.alarm_arn_pattern = (
            f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{config.resource_name('*')}"
        )
        self.delivery_dlq = dead_letter_queue(
            self, config, "alarm-delivery-dlq", holds="alarm notifications SNS could not deliver"
        )
        self.topic = alarm_topic(self, config, self.delivery_dlq, self.alarm_arn_pattern)
        self.alarms = Alarms(self, config, self.topic)

        self.dashboard_name = config.resource_name("dashboard")
        self.stale_alarm = self.alarms.stale(
            f"`cappi status --stage {config.stage}` lists them first, in state `stale` (or `failing, stale`, "
            f'`rejected, stale`...: why), and the dashboard {self.dashboard_name}\'s widget "{STALE_WIDGET}" shows '
            f"dispatch's `{STALE_LINE}` log line with each source's age"
        )
        self.ingest_alarms = [self.stale_alarm, *self.alarms.ingest()]
        functions = (pipeline.dispatch, pipeline.ingest, api.query)
        self.api_alarms = self.alarms.api(api)
        self.system_alarms = [
            *(
                self.alarms.queue(queue, hop)
                for queue, hop in (
                    (pipeline.dispatch_dlq, "dispatch"),
                    (pipeline.ingest_dlq, "ingest"),
                    (self.delivery_dlq, "alarm-delivery"),
                )
            ),
            *(alarm for fn in functions for alarm in self.alarms.function(fn)),
            self.alarms.dispatch_failures(),
        ]
        self.dashboard = dashboard(
            self,
            self.alarms,
            pipeline=pipeline,
            api=api,
            functions=functions,
            ingest_alarms=self.ingest_alarms,
            api_alarms=self.api_alarms,
            delivery_dlq=self.delivery_dlq,
        )
        CfnOutput(
            self, "AlarmTopicArn", value=self.topic.topic_arn, description="SNS topic every CAPPI alarm notifies"
        ).override_logical_id("AlarmTopicArn")
