"""The read side: an HTTP API whose JWT authorizer checks Auth0 tokens before the query function runs.

API Gateway verifies the token's signature, issuer, audience, expiry and scope; the query function never sees an
unauthenticated request, which is why it needs no JWT library.
"""

from __future__ import annotations

import json
import math

import jsii
from aws_cdk import CfnOutput
from aws_cdk import aws_apigateway as apigateway_v1
from aws_cdk import aws_apigatewayv2 as apigateway
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_authorizers import HttpJwtAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from cappi.contracts import api as api_contract
from cappi.contracts import permissions
from cappi.settings import QuerySettings
from infra.config import StageConfig
from infra.functions import BUNDLED_CLUBS_FILE, QUERY, CappiFunction, stage_log_group
from infra.nag import acknowledge
from infra.storage import Storage

# The route and method are the contract's; the scope and club claim come from the stage config, whose defaults
# are the query function's own (infra/config.py).
ROUTE_PATH = api_contract.ROUTE
ROUTE_METHOD = apigateway.HttpMethod[api_contract.METHOD]
IDENTITY_SOURCE = "$request.header.Authorization"

# One JSON line per request: the only line most requests leave (the query function logs errors and a sample,
# cappi.handlers.query), so it keeps what support and ops ask about (docs/operations.md and docs/runbook.md query
# them) and nothing CloudWatch already has or the path implies: the event's own timestamp replaces `requestTime`, the
# route is the one route, and the method is GET (any other is a 404 whose `error` says so). `authError` says why a
# token was refused (expired, wrong audience, missing scope), which is what a tester-app developer asks first;
# `lambdaError` is API Gateway's word on a failed call of the query function; `client` names the app (the token's
# `azp`); `id` is the request ID API Gateway returns in `apigw-requestid`; `ms` the response latency. The token itself
# is never logged, nor the caller's address or user agent: personal data of a technician's device that no support
# question needs (the app is `client`), and ~27 bytes a line. Every byte here is paid ~36 million times a month at the
# reference load and ~2.6 billion times at 1,000 queries a second (one byte: ~$0.65 a month there in the Infrequent
# Access class, bench/cost.py), so the keys are short: the long names they replaced were 38 bytes of each line, the
# method 15 more.
ACCESS_LOG_FORMAT = {
    "id": "$context.requestId",
    "path": "$context.path",
    "status": "$context.status",
    "ms": "$context.responseLatency",
    "lambdaError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
    "authError": "$context.authorizer.error",
    "client": "$context.authorizer.claims.azp",
}


@jsii.implements(apigateway.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigateway.LogGroupLogDestination(log_group)
        self._format = apigateway_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))

    @property
    def destination(self) -> apigateway.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway_v1.AccessLogFormat:
        return self._format


class QueryApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        # Also what the release check reads to ask the query as a token the query accepts (infra/release.py).
        self.settings = query_settings(config, storage.table.table_name)
        self.query = CappiFunction(
            self,
            "Query",
            config=config,
            spec=QUERY,
            reserved_concurrency=query_concurrency(config),
            environment=self.settings.to_env(),
        )
        self.query.grant_calls({permissions.TABLE: [storage.table.table_arn]})
        acknowledge(
            self.query.function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway: a failure is the HTTP response, there is no event to keep.",
        )

        self.http_api = apigateway.HttpApi(
            self,
            "HttpApi",
            api_name=config.resource_name("api"),
            description=f"CAPPI open call IDs for tester apps (stage {config.stage})",
            create_default_stage=False,  # the stage below carries throttling and access logs
        )
        self.authorizer = HttpJwtAuthorizer(
            "Auth0",
            config.issuer,
            jwt_audience=[config.audience],
            identity_source=[IDENTITY_SOURCE],
            authorizer_name="auth0",
        )
        self.http_api.add_routes(
            path=ROUTE_PATH,
            methods=[ROUTE_METHOD],
            # The live alias, which CodeDeploy moves from version to version (infra/release.py).
            integration=HttpLambdaIntegration(
                "QueryIntegration",
                self.query.live,
                payload_format_version=apigateway.PayloadFormatVersion.VERSION_2_0,
            ),
            authorizer=self.authorizer,
            authorization_scopes=[config.required_scope],
        )

        # Infrequent Access: half the ingestion price of Standard, and this group needs nothing it lacks (Logs
        # Insights queries work; no metric or subscription filter reads it: API Gateway's own metrics count). At
        # 1,000 queries a second the line is most of the log bill (bench/cost.py). A log group's class is fixed at
        # creation, so this group has a name of its own: the Standard one it replaces (`.../access`) is left to its
        # retention on stages that retain data, deleted on the others.
        self.access_logs = stage_log_group(
            self,
            "RequestLogs",
            config,
            f"/aws/apigateway/{config.resource_name('api')}/access-log",
            log_class=logs.LogGroupClass.INFREQUENT_ACCESS,
        )
        self.domain: apigateway.DomainName | None = None
        if config.custom_domain:
            self.domain = apigateway.DomainName(
                self,
                "Domain",
                domain_name=config.domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn),
                security_policy=apigateway.SecurityPolicy.TLS_1_2,
            )
        self.stage = apigateway.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigateway.ThrottleSettings(rate_limit=config.throttle_rate, burst_limit=config.throttle_burst),
            access_log_settings=_AccessLogSettings(self.access_logs),
            domain_mapping=apigateway.DomainMappingOptions(domain_name=self.domain) if self.domain else None,
        )

        # Plain output names, so ops can read them with `aws cloudformation describe-stacks` (README).
        CfnOutput(
            self, "Url", value=self.stage.url, description="Invoke URL of the API (execute-api endpoint)"
        ).override_logical_id("ApiUrl")
        if self.domain:
            CfnOutput(
                self,
                "DomainTarget",
                value=self.domain.regional_domain_name,
                description=f"Point a CNAME (or alias) for {config.domain_name} at this name",
            ).override_logical_id("ApiDomainTarget")


# What one query may take, on average, when sizing its reservation: many times a warm answer's duration (a few
# tens of milliseconds, bench/query.py), with room for cold starts and a slow read.
QUERY_SECONDS_BUDGET = 0.5


def query_concurrency(config: StageConfig) -> int:
    """The query function's reserved concurrency, a floor no other function can take and a cap.

    By Little's law, executions in flight = arrival rate x duration: at the stage's steady throttle and the budget
    above that is `throttle_rate * 0.5` (prod: 100, stage: 25), never more than the burst API Gateway admits.
    It used to be the whole burst (prod 400), which a new account's quota could not hold next to ingest's floor and
    AWS's unreserved 100, so a first deploy failed half-way. `query_reserved_concurrency` overrides it.
    """
    if config.query_reserved_concurrency is not None:
        return config.query_reserved_concurrency
    return min(config.throttle_burst, math.ceil(config.throttle_rate * QUERY_SECONDS_BUDGET))


def query_settings(config: StageConfig, table_name: str) -> QuerySettings:
    """The query function's settings on the stage (`table_name` may be a token: it renders in the template)."""
    return QuerySettings(
        clubs_file=BUNDLED_CLUBS_FILE,
        table_name=table_name,
        required_scope=config.required_scope,
        club_claim=config.club_claim,
        require_club_claim=config.require_club_claim,
        nested_single_result=config.nested_single_result,
        pointer_max_age_s=config.pointer_max_age_s,
        cache_max_age_s=config.cache_max_age_s,
        poll_interval_s=config.schedule_minutes * 60,  # a 503's Retry-After counts down to the schedule's next poll
        request_log_sample_rate=config.request_log_sample_rate,
    )
