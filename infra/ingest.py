"""The polling side: a schedule ticks the dispatch function every minute; each tick starts one asynchronous ingest
per club source of that minute's poll slot (cappi.domain.dispatch), so every source is polled once per
`schedule_minutes` and the polls of a 1,000-source registry are spread over the interval instead of all starting
at once. Ingest reserves a fixed number of executions (`ingest_reserved_concurrency`), not one per source.

Failures end up in two dead-letter queues, one per hop: a tick that never reached dispatch or that dispatch failed
on (`dispatch-dlq`), and an ingest that raised after its retries (`ingest-dlq`). Club-side trouble is not an
exception in ingest, so it never lands there: it shows in the per-club metrics and alarms instead.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from cappi.contracts import permissions
from cappi.domain.registry import ClubRegistry
from cappi.settings import DispatchSettings, IngestSettings
from infra.config import StageConfig
from infra.egress import StaticEgress
from infra.functions import BUNDLED_CLUBS_FILE, DISPATCH, INGEST, CappiFunction
from infra.nag import acknowledge
from infra.queues import dead_letter_queue
from infra.storage import Storage

# Ingest's reserved concurrency is a floor no burst of queries can take away, and a cap: an asynchronous invoke the
# cap throttles waits in Lambda's own queue and is retried (for up to the event age below, throttles not counting
# as retries), not lost. Its size is the stage's `ingest_reserved_concurrency`, whatever the number of sources.
# Retrying a stale tick is pointless: the source's next slot polls again. So nothing older than one interval is
# retried.
ASYNC_RETRIES = 2
SCHEDULE_RETRIES = 2
# Dispatch reads the tick's time from `scheduled_time`; Scheduler fills in the placeholder on every tick.
SCHEDULE_INPUT = {"scheduled_time": "<aws.scheduler.scheduled-time>"}


class IngestPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        storage: Storage,
        registry: ClubRegistry,
        egress: StaticEgress | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        period = Duration.minutes(config.schedule_minutes)
        self.dispatch_dlq = dead_letter_queue(
            self, config, "dispatch-dlq", holds="schedule ticks that never reached dispatch, and failed dispatches"
        )
        self.ingest_dlq = dead_letter_queue(self, config, "ingest-dlq", holds="ingest invocations that raised")

        self.ingest = CappiFunction(
            self,
            "Ingest",
            config=config,
            spec=INGEST,
            # Its fetch limits are the function's own defaults unless the stage sets them: only those are written out.
            environment=IngestSettings(
                clubs_file=BUNDLED_CLUBS_FILE, table_name=storage.table.table_name, max_body_bytes=config.max_body_bytes
            ).to_env(defaults=False),
            memory_mb=config.ingest_memory_mb,
            network=egress.network if egress is not None else None,
            reserved_concurrency=config.ingest_reserved_concurrency,
        )
        if egress is not None:
            egress.allow_network_interfaces(self.ingest.role)
        self.ingest.grant_calls(
            {
                permissions.TABLE: [storage.table.table_arn],
                permissions.CLUB_SECRETS: storage.credential_arns,
            }
        )
        storage.acknowledge_credential_patterns(self.ingest.role)
        # Asynchronous settings belong to what is invoked: the live alias (dispatch invokes it by its ARN).
        self.ingest.live.configure_async_invoke(
            retry_attempts=ASYNC_RETRIES,
            max_event_age=period,
            on_failure=destinations.SqsDestination(self.ingest_dlq),
        )

        self.dispatch = CappiFunction(
            self,
            "Dispatch",
            config=config,
            spec=DISPATCH,
            environment=DispatchSettings(
                clubs_file=BUNDLED_CLUBS_FILE,
                ingest_function=self.ingest.live.function_arn,
                table_name=storage.table.table_name,
                stale_after_s=config.stale_after_s,
                poll_slots=config.poll_slots,
            ).to_env(),
        )
        self.dispatch.grant_calls(
            {
                permissions.INGEST_FUNCTION: [self.ingest.live.function_arn],
                permissions.TABLE: [storage.table.table_arn],
            }
        )
        self.dispatch.live.configure_async_invoke(
            retry_attempts=ASYNC_RETRIES,
            max_event_age=period,
            on_failure=destinations.SqsDestination(self.dispatch_dlq),
        )

        for fn in (self.ingest, self.dispatch):
            acknowledge(
                fn.function,
                "Serverless-LambdaDLQ",
                "Failed asynchronous invocations go to an on-failure destination (an SQS queue, see "
                "configure_async_invoke), which records more than a dead-letter queue; the rule only knows the latter.",
            )

        # The schedule's own role may invoke the dispatch function's live alias (what it targets) and write to its
        # dead-letter queue, nothing else.
        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description=f"{config.resource_name('dispatch')} schedule: invokes the dispatch function",
        )
        self.schedule_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.dispatch.live.function_arn])
        )
        self.dispatch_dlq.grant_send_messages(self.schedule_role)
        # The L1 resource: the L2 target grants `<function>:*` as well, which the scheduler never needs.
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=config.resource_name("dispatch"),
            description=f"Polls the club sources of stage {config.stage} through the dispatch function, each once "
            f"every {config.schedule_minutes} min on its own minute",
            schedule_expression=config.schedule_expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.dispatch.live.function_arn,
                role_arn=self.schedule_role.role_arn,
                input=json.dumps(SCHEDULE_INPUT),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=SCHEDULE_RETRIES,
                    maximum_event_age_in_seconds=int(period.to_seconds()),
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=self.dispatch_dlq.queue_arn),
            ),
        )
        # The role's policy must exist before the first tick tries to use it (the role itself is referenced).
        policy = self.schedule_role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.schedule.node.add_dependency(policy)
