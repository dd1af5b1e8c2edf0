"""Alarms and the dashboard: one health alarm and one dashboard line per club source, stage-wide ingest alarms,
then the API and the plumbing, all in the stage's own metric namespace (`CAPPI/<stage>`).

Per source there is one metric series and one alarm, `SnapshotAge` > `stale_after_s` (missing data counts): it
fires whether fetches fail, feeds are rejected or nobody polls, and `cappi status` (the poll-status item) says
which. A series costs $0.30 a month and an alarm $0.10, so four of each per source bought nothing the poll-status
item does not say better. Sudden drops and rejected rows alarm once for the stage, from metrics without a source
dimension; the source is in the same EMF log line (Logs Insights, docs/operations.md) and in `cappi status`.

Every alarm notifies one SNS topic (and says so again when it recovers). The alarm of a disabled source exists but
does not notify: nobody polls it, so it would be permanently stale; enabling the source in the registry arms it.

This construct puts them together, all in its own scope: the topic (infra/alarm_topic.py), the alarms
(infra/alarms.py) and the dashboard (infra/dashboard.py).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cappi.domain.registry import ClubRegistry
from infra.alarm_topic import alarm_topic
from infra.alarms import Alarms
from infra.api import QueryApi
from infra.config import StageConfig
from infra.dashboard import dashboard
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

        self.source_alarms = {source.name: self.alarms.stale(source) for source in registry.sources}
        self.ingest_alarms = self.alarms.ingest()
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
            registry=registry,
            pipeline=pipeline,
            api=api,
            functions=functions,
            source_alarms=self.source_alarms,
            ingest_alarms=self.ingest_alarms,
            api_alarms=self.api_alarms,
            delivery_dlq=self.delivery_dlq,
        )
        CfnOutput(
            self, "AlarmTopicArn", value=self.topic.topic_arn, description="SNS topic every CAPPI alarm notifies"
        ).override_logical_id("AlarmTopicArn")
