"""The CDK app synthesizes offline, and its templates do what CAPPI relies on: the table the snapshot store
expects, the token checks of the API, the schedule, least-privilege roles and log retention.

Assertions pin behaviour (names, properties, grants), not resource counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template
from support.synth import Synth, cdk_context, synth

import app as cdk_app
from cappi.adapters.dynamo.schema import PK, SK, TTL_ATTRIBUTE
from cappi.contracts import credentials, permissions
from cappi.domain.registry import load_registry, parse_registry
from infra.config import ConfigError, StageConfig
from infra.functions import FUNCTIONS, INGEST, LIVE_ALIAS, QUERY
from infra.storage import Storage

STAGES = ("stage", "prod")
ISSUERS = {"stage": "https://stage-clubassist.auth0.com/", "prod": "https://prod-clubassist.auth0.com/"}
AUDIENCES = {"stage": "https://stagecappi.clubassist.com", "prod": "https://cappi.clubassist.com"}
RETENTION = {"stage": 30, "prod": 90}
ROUTE_KEY = "GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
LAMBDA = "AWS::Lambda::Function"


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


# -- storage ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_table_has_the_store_schema_ttl_recovery_and_encryption(app: Synth, stage: str) -> None:
    app.template(stage).has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "TableName": f"cappi-{stage}-snapshots",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
        },
    )


def test_prod_data_is_retained_and_stage_data_is_not(app: Synth) -> None:
    app.template("prod").has_resource("AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Retain"})
    app.template("prod").has_resource_properties(
        "AWS::DynamoDB::GlobalTable", {"Replicas": [Match.object_like({"DeletionProtectionEnabled": True})]}
    )
    app.template("stage").has_resource("AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Delete"})
    for group in app.resources("prod", "AWS::Logs::LogGroup").values():
        assert group["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("stage", STAGES)
def test_credentials_are_no_resource_of_the_stack_and_preflight_knows_their_parameters(app: Synth, stage: str) -> None:
    registry = load_registry(cdk_app.ROOT / "clubs" / f"{stage}.json")
    # SSM parameters that ops write (cappi secrets set): no secret, no parameter resource, no value in the template.
    assert app.resources(stage, "AWS::SecretsManager::Secret") == {}
    assert app.resources(stage, "AWS::SSM::Parameter") == {}
    assert app.templates[stage]["Metadata"][credentials.CREDENTIALS_METADATA] == {
        source.name: [credentials.parameter_name(n) for n in source.auth.secret_names]
        for source in registry.enabled_sources
        if source.auth.secret_names
    }


# -- API -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_authorizer_trusts_the_stage_issuer_and_audience_from_the_authorization_header(app: Synth, stage: str) -> None:
    app.template(stage).has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {"Issuer": ISSUERS[stage], "Audience": [AUDIENCES[stage]]},
        },
    )


@pytest.mark.parametrize("stage", STAGES)
def test_the_single_route_needs_a_jwt_with_read_callids_and_reaches_the_query_alias(app: Synth, stage: str) -> None:
    routes = app.resources(stage, "AWS::ApiGatewayV2::Route")
    assert [r["Properties"]["RouteKey"] for r in routes.values()] == [ROUTE_KEY]
    route = next(iter(routes.values()))["Properties"]
    assert route["AuthorizationType"] == "JWT"
    assert route["AuthorizationScopes"] == ["read:callids"]
    assert route["AuthorizerId"] == {"Ref": app.logical_id(stage, "AWS::ApiGatewayV2::Authorizer", Name="auth0")}
    integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
    integration = app.templates[stage]["Resources"][integration_id]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    # The live alias, which CodeDeploy moves between versions (tests/infra/test_release.py).
    assert app.describe(stage, integration["IntegrationUri"]) == f"AWS::Lambda::Alias/cappi-{stage}-query:{LIVE_ALIAS}"


@pytest.mark.parametrize("stage", STAGES)
def test_default_stage_throttles_and_writes_json_access_logs_with_the_authorizer_error(app: Synth, stage: str) -> None:
    stages = app.resources(stage, "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 1
    props = next(iter(stages.values()))["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    expected = cdk_context()[f"cappi:{stage}"]
    assert props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": expected["throttle_rate"],
        "ThrottlingBurstLimit": expected["throttle_burst"],
    }
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert log_format["authError"] == "$context.authorizer.error"
    assert log_format["id"] == "$context.requestId"
    assert log_format["status"] == "$context.status"
    assert app.describe(stage, props["AccessLogSettings"]["DestinationArn"]) == (
        f"AWS::Logs::LogGroup//aws/apigateway/cappi-{stage}-api/access-log"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_access_log_is_infrequent_access_and_nothing_needs_more(app: Synth, stage: str) -> None:
    """The access log is the one line every request leaves: Infrequent Access halves its ingestion price, which is
    only sound while nothing reads the group in a way that class refuses (metric and subscription filters)."""
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"] for g in app.resources(stage, "AWS::Logs::LogGroup").values()
    }
    assert groups[f"/aws/apigateway/cappi-{stage}-api/access-log"]["LogGroupClass"] == "INFREQUENT_ACCESS"
    assert not app.resources(stage, "AWS::Logs::MetricFilter")
    assert not app.resources(stage, "AWS::Logs::SubscriptionFilter")


def test_no_custom_domain_unless_configured(app: Synth) -> None:
    for stage in STAGES:
        assert not app.resources(stage, "AWS::ApiGatewayV2::DomainName")


# -- schedule and asynchronous invocation ----------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_schedule_ticks_dispatch_every_minute_with_retries_and_a_dead_letter_queue(app: Synth, stage: str) -> None:
    """Every minute, one of the ten slots of the 10-minute interval (CAPPI_POLL_SLOTS, below): each source is
    polled every ten minutes, a tenth of them each minute. A tick is retried within the interval."""
    schedules = list(app.resources(stage, "AWS::Scheduler::Schedule").values())
    assert len(schedules) == 1
    props = schedules[0]["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    assert props["State"] == "ENABLED"
    target = props["Target"]
    assert app.describe(stage, target["Arn"]) == f"AWS::Lambda::Alias/cappi-{stage}-dispatch:{LIVE_ALIAS}"
    assert json.loads(target["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600}
    assert app.describe(stage, target["DeadLetterConfig"]["Arn"]) == f"AWS::SQS::Queue/cappi-{stage}-dispatch-dlq"
    role = target["RoleArn"]["Fn::GetAtt"][0]
    assert app.role_grants(stage, role) == {
        ("lambda:InvokeFunction", f"AWS::Lambda::Alias/cappi-{stage}-dispatch:{LIVE_ALIAS}"),  # the alias only
        *_send_to_queue(f"cappi-{stage}-dispatch-dlq"),
    }
    trust = app.templates[stage]["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]


@pytest.mark.parametrize(("role", "queue"), [("ingest", "ingest-dlq"), ("dispatch", "dispatch-dlq")])
def test_async_invocations_retry_within_one_period_then_land_in_a_queue(app: Synth, role: str, queue: str) -> None:
    function = app.logical_id("stage", "AWS::Lambda::Function", FunctionName=f"cappi-stage-{role}")
    configs = [
        c["Properties"]
        for c in app.resources("stage", "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": function}
    ]
    assert len(configs) == 1
    assert configs[0]["MaximumRetryAttempts"] == 2
    assert configs[0]["MaximumEventAgeInSeconds"] == 600
    destination = configs[0]["DestinationConfig"]["OnFailure"]["Destination"]
    assert app.describe("stage", destination) == f"AWS::SQS::Queue/cappi-stage-{queue}"


def test_queues_are_encrypted_and_refuse_plain_http(app: Synth) -> None:
    queues = app.resources("stage", "AWS::SQS::Queue")
    names = {q["Properties"]["QueueName"] for q in queues.values()}
    assert names >= {"cappi-stage-dispatch-dlq", "cappi-stage-ingest-dlq", "cappi-stage-alarm-delivery-dlq"}
    for lid, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        policies = [
            p["Properties"]["PolicyDocument"]["Statement"]
            for p in app.resources("stage", "AWS::SQS::QueuePolicy").values()
            if {"Ref": lid} in p["Properties"]["Queues"]
        ]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for statements in policies
            for s in statements
        )


# -- functions and roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_functions_run_python_3_13_on_arm64_with_explicit_memory_timeout_and_handler(app: Synth, stage: str) -> None:
    for spec in FUNCTIONS:
        app.template(stage).has_resource_properties(
            "AWS::Lambda::Function",
            {
                "FunctionName": f"cappi-{stage}-{spec.role}",
                "Handler": spec.handler,
                "Runtime": "python3.13",
                "Architectures": ["arm64"],
                "MemorySize": spec.memory_mb,
                "Timeout": spec.timeout_s,
                "LoggingConfig": {"LogGroup": Match.any_value()},
            },
        )
    assert INGEST.timeout_s >= 120 + 30  # the feed client's default deadline, plus the writes after it


@pytest.mark.parametrize("stage", STAGES)
def test_function_environments_carry_what_each_settings_class_reads(app: Synth, stage: str) -> None:
    functions = {
        spec.role: app.logical_id(stage, LAMBDA, FunctionName=f"cappi-{stage}-{spec.role}") for spec in FUNCTIONS
    }
    assert set(functions) == {"dispatch", "ingest", "query", "release-check"}
    env = {
        role: app.templates[stage]["Resources"][lid]["Properties"]["Environment"]["Variables"]
        for role, lid in functions.items()
    }
    table = {"Ref": app.logical_id(stage, "AWS::DynamoDB::GlobalTable", TableName=f"cappi-{stage}-snapshots")}
    common = {"POWERTOOLS_METRICS_NAMESPACE": f"CAPPI/{stage}", "CAPPI_CLUBS_FILE": "/var/task/clubs.json"}
    assert env["ingest"] == {**common, "POWERTOOLS_SERVICE_NAME": "cappi-ingest", "CAPPI_TABLE_NAME": table}
    assert env["dispatch"] == {
        **common,
        "POWERTOOLS_SERVICE_NAME": "cappi-dispatch",
        "CAPPI_INGEST_FUNCTION": {"Ref": _alias(app, stage, "ingest")},  # the alias's ARN
        "CAPPI_TABLE_NAME": table,  # it reads the heads to count stale sources
        "CAPPI_STALE_AFTER_S": "1800",
        "CAPPI_POLL_SLOTS": "10",  # the schedule's 10 minutes, one slot a minute
    }
    assert env["query"] == {
        **common,
        "POWERTOOLS_SERVICE_NAME": "cappi-query",
        "CAPPI_TABLE_NAME": table,
        "CAPPI_REQUIRED_SCOPE": "read:callids",
        "CAPPI_CLUB_CLAIM": "https://cappi.clubassist.com/clubs",
        "CAPPI_REQUIRE_CLUB_CLAIM": "false",
        "CAPPI_NESTED_SINGLE_RESULT": "false",
        "CAPPI_POINTER_MAX_AGE_S": "10",
        "CAPPI_CACHE_MAX_AGE_S": "30",
        "CAPPI_POLL_INTERVAL_S": "600",  # the schedule's 10 minutes: a 503's Retry-After counts down to the next poll
        "CAPPI_REQUEST_LOG_SAMPLE_RATE": "0.01",  # every refusal and failure, and one success in a hundred, get a line
    }
    # The release check reads what the query reads of a token, with the query's own values, and the new version.
    shared = ("CAPPI_TABLE_NAME", "CAPPI_REQUIRED_SCOPE", "CAPPI_CLUB_CLAIM", "CAPPI_REQUIRE_CLUB_CLAIM")
    assert env["release-check"] == {
        **common,
        "POWERTOOLS_SERVICE_NAME": "cappi-release-check",
        **{name: env["query"][name] for name in shared},
        "CAPPI_QUERY_VERSION": {"Ref": _version(app, stage, "query")},
    }


def _alias(app: Synth, stage: str, role: str) -> str:
    """The logical ID of the `live` alias of function `role`."""
    function = {"Ref": app.logical_id(stage, LAMBDA, FunctionName=f"cappi-{stage}-{role}")}
    return app.logical_id(stage, "AWS::Lambda::Alias", FunctionName=function, Name=LIVE_ALIAS)


def _version(app: Synth, stage: str, role: str) -> str:
    """The logical ID of the version of function `role` this template publishes."""
    function = {"Ref": app.logical_id(stage, LAMBDA, FunctionName=f"cappi-{stage}-{role}")}
    return app.logical_id(stage, "AWS::Lambda::Version", FunctionName=function)


def _send_to_queue(name: str) -> set[tuple[str, str]]:
    return {(a, f"AWS::SQS::Queue/{name}") for a in ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")}


def _write_logs(function_name: str) -> set[tuple[str, str]]:
    group = f"AWS::Logs::LogGroup//aws/lambda/{function_name}"
    return {("logs:CreateLogStream", group), ("logs:PutLogEvents", group)}


def _contract_grants(app: Synth, stage: str, role: str) -> set[tuple[str, str]]:
    """What cappi.contracts.permissions says the role's code calls, on the template's resources of each kind. The
    IAM-enforced suite (tests/integration/test_deployed_permissions.py) holds the contract to what the code calls."""
    kinds = {
        permissions.TABLE: {f"AWS::DynamoDB::GlobalTable/cappi-{stage}-snapshots"},
        permissions.CLUB_SECRETS: {
            f"arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter{pattern}"
            for pattern in credentials.parameter_patterns(
                load_registry(cdk_app.ROOT / "clubs" / f"{stage}.json").secret_names
            )
        },
        permissions.INGEST_FUNCTION: {f"AWS::Lambda::Alias/cappi-{stage}-ingest:{LIVE_ALIAS}"},
        permissions.QUERY_VERSIONS: {f"AWS::Lambda::Version/cappi-{stage}-query"},  # the one being released
        permissions.QUERY_DEPLOYMENT_GROUP: {
            "arn:<AWS::Partition>:codedeploy:<AWS::Region>:<AWS::AccountId>:deploymentgroup:"
            f"<AWS::CodeDeploy::Application/cappi-{stage}-query>/"
            f"<AWS::CodeDeploy::DeploymentGroup/cappi-{stage}-query-release>"
        },
    }
    return {
        (action, r) for grant in permissions.grants_of(role) for action in grant.actions for r in kinds[grant.resource]
    }


def _granted_twice(app: Synth, stage: str, role_id: str) -> list[tuple[str, str]]:
    """(action, resource) pairs more than one statement of the role's policies allows."""
    seen: list[tuple[str, str]] = []
    for policy in app.resources(stage, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions, resources = statement["Action"], statement["Resource"]
                for action in actions if isinstance(actions, list) else [actions]:
                    for resource in resources if isinstance(resources, list) else [resources]:
                        seen.append((action, app.describe(stage, resource)))
    return sorted({pair for pair in seen if seen.count(pair) > 1})


@pytest.mark.parametrize("stage", STAGES)
def test_each_role_holds_exactly_its_grants(app: Synth, stage: str) -> None:
    # The code's calls, plus the platform's: its own log group, and the on-failure queue of an asynchronous function.
    # The release check's status call to CodeDeploy is in the contract; CDK's deployment group grants it (once).
    expected = {
        "query": _contract_grants(app, stage, "query") | _write_logs(f"cappi-{stage}-query"),
        "ingest": _contract_grants(app, stage, "ingest")
        | _send_to_queue(f"cappi-{stage}-ingest-dlq")
        | _write_logs(f"cappi-{stage}-ingest"),
        "dispatch": _contract_grants(app, stage, "dispatch")
        | _send_to_queue(f"cappi-{stage}-dispatch-dlq")
        | _write_logs(f"cappi-{stage}-dispatch"),
        "release-check": _contract_grants(app, stage, "release-check") | _write_logs(f"cappi-{stage}-release-check"),
    }
    assert set(expected) == set(permissions.ROLE_GRANTS)
    for reader in ("query", "dispatch"):
        assert ("dynamodb:BatchGetItem", f"AWS::DynamoDB::GlobalTable/cappi-{stage}-snapshots") in expected[reader]
    for role, grants in expected.items():
        role_id = app.function_role(stage, f"cappi-{stage}-{role}")
        assert app.role_grants(stage, role_id) == grants, role
        assert _granted_twice(app, stage, role_id) == [], role
        props = app.templates[stage]["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in props  # AWSLambdaBasicExecutionRole would write to any log group
        assert "Policies" not in props
        trust = props["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]


@pytest.mark.parametrize("stage", STAGES)
def test_no_role_allows_a_wildcard_action_or_resource(app: Synth, stage: str) -> None:
    for policy in app.resources(stage, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert "*" not in json.dumps(statement["Action"]), statement
            assert '"*"' not in json.dumps(statement["Resource"]), statement


@pytest.mark.parametrize("stage", STAGES)
def test_every_log_group_keeps_logs_for_the_stage_retention(app: Synth, stage: str) -> None:
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"] for g in app.resources(stage, "AWS::Logs::LogGroup").values()
    }
    assert set(groups) == {
        *(f"/aws/lambda/cappi-{stage}-{spec.role}" for spec in FUNCTIONS),
        f"/aws/apigateway/cappi-{stage}-api/access-log",
    }
    assert {g["RetentionInDays"] for g in groups.values()} == {RETENTION[stage]}
    for spec in FUNCTIONS:
        function = app.templates[stage]["Resources"][
            app.logical_id(stage, "AWS::Lambda::Function", FunctionName=f"cappi-{stage}-{spec.role}")
        ]
        assert app.describe(stage, function["Properties"]["LoggingConfig"]["LogGroup"]) == (
            f"AWS::Logs::LogGroup//aws/lambda/cappi-{stage}-{spec.role}"
        )


# -- configuration ---------------------------------------------------------------------------------------------


def test_a_broken_registry_stops_synthesis(tmp_path: Path) -> None:
    bad = tmp_path / "clubs.json"
    bad.write_text(json.dumps({"sources": [{"name": "x", "club_ids": [1], "base_url": "http://example.org"}]}))
    context = cdk_context(**{"cappi:stages": ["stage"], "stage:clubs_file": str(bad)})
    with pytest.raises(Exception, match="base_url"):
        cdk_app.build_app(context)


def test_issuer_without_trailing_slash_is_refused() -> None:
    context = cdk_context(**{"cappi:stages": ["stage"], "stage:issuer": "https://stage-clubassist.auth0.com"})
    with pytest.raises(ConfigError, match="must end with '/'"):
        cdk_app.build_app(context)


def test_a_mistyped_command_line_key_is_refused() -> None:
    context = cdk_context(**{"cappi:stages": ["stage"], "stage:alarm_mail": "ops@example.org"})
    with pytest.raises(ConfigError, match=r"unknown key.*alarm_mail"):
        cdk_app.build_app(context)


def test_command_line_overrides_arrive_as_strings_and_are_typed() -> None:
    base = cdk_context()["cappi:stage"]
    config = StageConfig.from_mapping(
        "stage",
        {
            **base,
            "throttle_rate": "75.5",
            "throttle_burst": "150",
            "log_retention_days": "14",
            "require_club_claim": "true",
            "retain_data": "no",
            "alarm_email": "ops@example.org",
        },
    )
    assert config.throttle_rate == 75.5
    assert config.throttle_burst == 150
    assert config.log_retention_days == 14
    assert config.require_club_claim is True
    assert config.retain_data is False
    assert config.alarm_email == "ops@example.org"
    assert config.schedule_expression == "rate(1 minute)"  # whatever the interval: one slot a minute
    assert config.poll_slots == config.schedule_minutes == 10
    assert config.resource_name("snapshots") == "cappi-stage-snapshots"


def test_every_config_problem_is_reported_at_once() -> None:
    base = cdk_context()["cappi:stage"]
    with pytest.raises(ConfigError) as caught:
        StageConfig.from_mapping(
            "stage",
            {
                **base,
                "log_retention_days": "45",
                "throttle_rate": "fast",
                "domain_name": "api.example.org",
                "alarm_email": "not-an-address",
                "schedule_minute": 5,
            },
        )
    message = str(caught.value)
    for key in ("log_retention_days", "throttle_rate", "certificate_arn", "alarm_email", "schedule_minute"):
        assert key in message


def test_staleness_bound_must_span_two_poll_intervals_and_ingest_reserves_what_it_is_told() -> None:
    base = cdk_context()["cappi:stage"]
    with pytest.raises(ConfigError, match=r"stale_after_s: must be at least two poll intervals \(3600 s"):
        StageConfig.from_mapping("stage", {**base, "schedule_minutes": 30})  # the default 1800 s is one interval
    assert StageConfig.from_mapping("stage", {**base, "schedule_minutes": 30, "stale_after_s": 3600}).poll_slots == 30
    assert (
        StageConfig.from_mapping("stage", {**base, "ingest_reserved_concurrency": "20"}).ingest_reserved_concurrency
        == 20
    )
    with pytest.raises(ConfigError, match="ingest_reserved_concurrency"):
        StageConfig.from_mapping("stage", {**base, "ingest_reserved_concurrency": "0"})


def test_prod_retains_data_unless_told_otherwise() -> None:
    base = {k: v for k, v in cdk_context()["cappi:prod"].items() if k != "retain_data"}
    base["alarm_email"] = "ops@example.org"  # prod needs one to synthesize at all
    assert StageConfig.from_mapping("prod", base).retain_data is True
    assert StageConfig.from_mapping("stage", base).retain_data is False


def test_query_defaults_are_the_query_functions_own(app: Synth) -> None:
    from cappi.settings import QuerySettings

    config = StageConfig.from_mapping("stage", cdk_context()["cappi:stage"])
    shared = ("required_scope", "club_claim", "pointer_max_age_s", "cache_max_age_s")
    assert {name: getattr(config, name) for name in shared} == {name: QuerySettings.default(name) for name in shared}
    unscheduled = {k: v for k, v in cdk_context()["cappi:stage"].items() if k != "schedule_minutes"}
    assert StageConfig.from_mapping("stage", unscheduled).schedule_minutes * 60 == QuerySettings.default(
        "poll_interval_s"
    )
    assert QUERY.service == "cappi-query"


@pytest.mark.parametrize("stage", STAGES)
def test_outputs_tell_ops_the_url_the_topic_and_where_credentials_go(app: Synth, stage: str) -> None:
    outputs = app.templates[stage]["Outputs"]
    assert {"ApiUrl", "AlarmTopicArn", "ClubCredentialParameters"} <= set(outputs)
    names = load_registry(cdk_app.ROOT / "clubs" / f"{stage}.json").secret_names
    assert outputs["ClubCredentialParameters"]["Value"] == " ".join(credentials.parameter_patterns(names))
    assert "ClubSecretNames" not in outputs


def _storage(sources: list[dict]) -> Template:
    stack = cdk.Stack(cdk.App(), "CredentialStorage")
    config = StageConfig.from_mapping("stage", cdk_context()["cappi:stage"])
    Storage(stack, "Storage", config=config, registry=parse_registry({"sources": sources}))
    return Template.from_stack(stack)


def test_an_mtls_header_credential_is_a_parameter_of_its_own() -> None:
    auth = {
        "type": "mtls",
        "secret": "cappi/stage/clubs/mtls-cert",
        "header_auth": {"type": "bearer", "secret": "cappi/stage/clubs/mtls-token"},
    }
    template = _storage(
        [{"name": "mtls-club", "club_ids": [212], "base_url": "https://calls.example.org", "auth": auth}]
    )

    assert template.to_json()["Metadata"][credentials.CREDENTIALS_METADATA] == {
        "mtls-club": ["/cappi/stage/clubs/mtls-cert", "/cappi/stage/clubs/mtls-token"]
    }
    assert template.find_resources("AWS::SSM::Parameter") == {}


def test_every_possible_club_as_a_source_adds_no_resource_and_one_grant() -> None:
    sources = [
        {
            "name": f"club-{n:04d}",
            "club_ids": [n + 1],
            "base_url": f"https://club-{n}.example.org",
            "auth": {"type": "bearer", "secret": f"cappi/stage/clubs/club-{n:04d}"},
        }
        for n in range(999)  # one source per ClubId (3 digits)
    ]
    template = _storage(sources)
    assert set(template.to_json()["Resources"]) == set(_storage(sources[:1]).to_json()["Resources"])
    assert template.to_json()["Outputs"]["ClubCredentialParameters"]["Value"] == "/cappi/stage/clubs/*"


def test_secret_names_over_too_many_directories_fail_synth_with_the_fix() -> None:
    sources = [
        {
            "name": f"club-{n:02d}",
            "club_ids": [n + 1],
            "base_url": f"https://club-{n}.example.org",
            "auth": {
                "type": "mtls",
                "secret": f"dir-{n}/cert",
                "header_auth": {"type": "bearer", "secret": f"dir-{n}/t"},
            },
        }
        for n in range(credentials.MAX_PARAMETER_PATTERNS + 1)
    ]
    with pytest.raises(credentials.CredentialLayoutError, match="Name secrets under a few shared directories"):
        _storage(sources)
