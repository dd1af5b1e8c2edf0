"""Releases of the query function that watch themselves and roll back.

A deploy that changes the query function publishes a new version; CloudFormation then hands the `live` alias (what
API Gateway invokes) to CodeDeploy, which:

1. runs the release check (`cappi.handlers.release_check`) before any traffic moves: one request, as API Gateway
   would send it, to the new version directly; anything but a JSON 200 (or the 404 of an unserved club when no
   club has a list yet) fails the release;
2. shifts traffic as the stage's `query_release` says (infra/config.py; default 10% for 5 minutes, then all);
3. rolls back to the previous version when the check fails, the deployment fails or is stopped, or one of the
   release alarms below goes off while it runs.

The release alarms watch minutes, not the five-minute periods of the standing API alarms (infra/alarms.py):
they have to speak within a canary's interval. They notify the alarm topic like every other alarm.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cappi.contracts import permissions
from cappi.settings import ReleaseCheckSettings
from infra.alarms import GE, GT, api_error_rate
from infra.api import QueryApi
from infra.config import StageConfig
from infra.functions import RELEASE_CHECK, CappiFunction
from infra.monitoring import Monitoring
from infra.nag import acknowledge
from infra.storage import Storage

RELEASE_PERIOD = Duration.minutes(1)
# Below this many API requests in a minute a 5xx share says nothing (a canary's 10% of a quiet minute is a handful);
# the release check has already seen the new version answer, and the errors alarm still counts what it raises.
RELEASE_MIN_REQUESTS = 10
LATENCY_PERIODS = 2  # a new version's first minute is its cold starts: its p99 must stay high for two in a row


class QueryRelease(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        storage: Storage,
        api: QueryApi,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        query = api.query
        version = query.function.current_version

        self.check = CappiFunction(
            self,
            "Check",
            config=config,
            spec=RELEASE_CHECK,
            # What the query reads of a token, with the query's values, so the check's request passes the query.
            environment=ReleaseCheckSettings.for_query(api.settings, query_version=version.function_arn).to_env(),
        )
        self.check.grant_calls(
            {permissions.TABLE: [storage.table.table_arn], permissions.QUERY_VERSIONS: [version.function_arn]},
            # LambdaDeploymentGroup grants its pre-traffic hook PutLifecycleEventHookExecutionStatus on itself.
            granted_elsewhere={permissions.QUERY_DEPLOYMENT_GROUP},
        )
        acknowledge(
            self.check.function,
            "Serverless-LambdaDLQ",
            "CodeDeploy invokes the check once per release and waits for its report: a check that fails is reported "
            "as Failed (rolled back), one that never reports times the deployment out (rolled back). There is no "
            "event to keep for later.",
        )

        self.alarms = self._alarms(config, api, monitoring)
        self.application = codedeploy.LambdaApplication(
            self, "Application", application_name=config.resource_name("query")
        )
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            application=self.application,
            deployment_group_name=config.resource_name("query-release"),
            alias=query.live,
            deployment_config=getattr(codedeploy.LambdaDeploymentConfig, config.query_release_plan.cdk_name),
            alarms=self.alarms,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
            pre_hook=self.check.function,
        )
        # CodeDeploy invokes the check by name as the alias update starts: the check's new configuration (the new
        # version's ARN) and its grants must be in place by then.
        query.live.node.add_dependency(self.check)
        self._acknowledge_service_role()

    def _alarms(self, config: StageConfig, api: QueryApi, monitoring: Monitoring) -> list[cloudwatch.Alarm]:
        live = api.query.live
        error_rate = api_error_rate(api, RELEASE_PERIOD, RELEASE_MIN_REQUESTS, "5xx % per minute")
        subject = "query-release"
        rollback = "While a query release runs, CodeDeploy rolls it back to the previous version."
        return [
            monitoring.alarms.alarm(
                "QueryReleaseErrors",
                subject=subject,
                condition="errors",
                metric=live.metric_errors(statistic="Sum", period=RELEASE_PERIOD),
                threshold=1,
                comparison=GE,
                description="The query function's live alias raised, timed out or failed to start in the last "
                f"minute (its log group has the error). {rollback}",
            ),
            monitoring.alarms.alarm(
                "QueryReleaseLatency",
                subject=subject,
                condition="p99-latency",
                metric=live.metric_duration(statistic="p99", period=RELEASE_PERIOD),
                threshold=config.api_p99_alarm_ms,
                comparison=GT,
                evaluation_periods=LATENCY_PERIODS,
                description=f"The query function's live alias took more than {config.api_p99_alarm_ms} ms at p99 "
                f"for {LATENCY_PERIODS} minutes in a row. {rollback}",
            ),
            monitoring.alarms.alarm(
                "QueryRelease5xxRate",
                subject=subject,
                condition="5xx-rate",
                metric=error_rate,
                threshold=config.api_5xx_alarm_percent,
                comparison=GT,
                description=f"More than {config.api_5xx_alarm_percent:g}% of API requests answered 5xx in the last "
                f"minute (minutes with under {RELEASE_MIN_REQUESTS} requests are ignored): a build that answers "
                f"503 or 500 without raising. {rollback}",
            ),
        ]

    def _acknowledge_service_role(self) -> None:
        role = self.deployment_group.role
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's own role for Lambda deployments (CDK's LambdaDeploymentGroup adds it): the alias reads "
            "and updates, alarm reads and SNS publishes a deployment makes, maintained by AWS.",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{self._logical_id(self.check.function)}.Arn>:*]",
            "CDK's grant to invoke the pre-traffic hook (LambdaDeploymentGroup.addPreHook -> grantInvoke) names the "
            "check function and its own qualified ARNs (`<its ARN>:*`, its versions and aliases): the wildcard "
            "never reaches another function.",
        )

    def _logical_id(self, function: lambda_.Function) -> str:
        """How cdk-nag names a resource in a finding: its logical ID as the template spells it."""
        return Stack.of(self).resolve(function.node.default_child.logical_id)  # type: ignore[union-attr]
