"""Releases behind aliases: query, ingest and dispatch run as published versions behind `live`, which is what API
Gateway, the schedule and dispatch invoke, and the query's alias moves through CodeDeploy: a gradual config from the
stage setting, the release check before traffic, and rollback on failure, stop or a release alarm."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk")

from aws_cdk import aws_codedeploy as codedeploy
from support.synth import Synth, cdk_context, synth

import app as cdk_app
from cappi.adapters.lambda_invoker import SYNC_ATTEMPTS, SYNC_READ_TIMEOUT_S
from infra.config import DEFAULT_QUERY_RELEASE, QUERY_RELEASES, ConfigError, StageConfig
from infra.functions import FUNCTIONS, LIVE_ALIAS, QUERY, RELEASE_CHECK
from infra.release import LATENCY_PERIODS, RELEASE_MIN_REQUESTS

STAGES = ("stage", "prod")
RELEASED = ("query", "ingest", "dispatch")
LAMBDA = "AWS::Lambda::Function"
ALIAS = "AWS::Lambda::Alias"
VERSION = "AWS::Lambda::Version"
ROLLBACK_EVENTS = {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"}


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def _function(app: Synth, stage: str, role: str) -> str:
    return app.logical_id(stage, LAMBDA, FunctionName=f"cappi-{stage}-{role}")


def _alias(app: Synth, stage: str, role: str) -> str:
    return app.logical_id(stage, ALIAS, FunctionName={"Ref": _function(app, stage, role)}, Name=LIVE_ALIAS)


def _config(stage: str) -> StageConfig:
    return StageConfig.from_mapping(stage, cdk_context()[f"cappi:{stage}"] | {"alarm_email": "ops@example.org"})


def _deployment_group(app: Synth, stage: str) -> dict:
    (group,) = app.resources(stage, "AWS::CodeDeploy::DeploymentGroup").values()
    return group["Properties"]


# -- versions behind aliases -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_query_ingest_and_dispatch_each_have_a_live_alias_on_a_retained_version_of_their_own(
    app: Synth, stage: str
) -> None:
    resources = app.templates[stage]["Resources"]
    for role in RELEASED:
        function = {"Ref": _function(app, stage, role)}
        version = app.logical_id(stage, VERSION, FunctionName=function)
        alias = resources[_alias(app, stage, role)]["Properties"]
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version, "Version"]}, role
        # CodeDeploy rolls back to the previous version: a deploy must not delete it.
        assert resources[version]["DeletionPolicy"] == "Retain"
        assert resources[version]["UpdateReplacePolicy"] == "Retain"
    aliased = {app.describe(stage, a["Properties"]["FunctionName"]) for a in app.resources(stage, ALIAS).values()}
    assert aliased == {f"{LAMBDA}/cappi-{stage}-{role}" for role in RELEASED}  # not the release check
    assert {spec.role for spec in FUNCTIONS if spec.live_alias} == set(RELEASED)


@pytest.mark.parametrize("stage", STAGES)
def test_reserved_concurrency_stays_on_the_functions(app: Synth, stage: str) -> None:
    resources = app.templates[stage]["Resources"]
    for role in ("query", "ingest"):
        assert resources[_function(app, stage, role)]["Properties"]["ReservedConcurrentExecutions"] >= 1
    for alias in app.resources(stage, ALIAS).values():
        assert "ProvisionedConcurrencyConfig" not in alias["Properties"]


@pytest.mark.parametrize("stage", STAGES)
def test_api_gateway_invokes_the_query_alias(app: Synth, stage: str) -> None:
    (integration,) = app.resources(stage, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationUri"] == {"Ref": _alias(app, stage, "query")}
    permissions = [
        p["Properties"]
        for p in app.resources(stage, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": _alias(app, stage, "query")}]


@pytest.mark.parametrize("stage", STAGES)
def test_the_schedule_invokes_the_dispatch_alias_and_may_invoke_nothing_else(app: Synth, stage: str) -> None:
    (schedule,) = app.resources(stage, "AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Ref": _alias(app, stage, "dispatch")}
    invokes = {r for a, r in app.role_grants(stage, target["RoleArn"]["Fn::GetAtt"][0]) if a.startswith("lambda:")}
    assert invokes == {f"{ALIAS}/cappi-{stage}-dispatch:{LIVE_ALIAS}"}


@pytest.mark.parametrize("stage", STAGES)
def test_dispatch_names_and_may_invoke_the_ingest_alias(app: Synth, stage: str) -> None:
    dispatch = app.templates[stage]["Resources"][_function(app, stage, "dispatch")]["Properties"]
    assert dispatch["Environment"]["Variables"]["CAPPI_INGEST_FUNCTION"] == {"Ref": _alias(app, stage, "ingest")}
    role = app.function_role(stage, f"cappi-{stage}-dispatch")
    invokes = {(a, r) for a, r in app.role_grants(stage, role) if a.startswith("lambda:")}
    assert invokes == {("lambda:InvokeFunction", f"{ALIAS}/cappi-{stage}-ingest:{LIVE_ALIAS}")}


@pytest.mark.parametrize("stage", STAGES)
def test_asynchronous_invoke_settings_are_on_the_aliases_with_their_dead_letter_queues(app: Synth, stage: str) -> None:
    configs = {
        app.describe(stage, c["Properties"]["FunctionName"]): c["Properties"]
        for c in app.resources(stage, "AWS::Lambda::EventInvokeConfig").values()
    }
    assert set(configs) == {f"{LAMBDA}/cappi-{stage}-ingest", f"{LAMBDA}/cappi-{stage}-dispatch"}
    for role in ("ingest", "dispatch"):
        config = configs[f"{LAMBDA}/cappi-{stage}-{role}"]
        # The alias's name, taken from its ARN: the settings apply to invocations of the alias.
        assert config["Qualifier"] == {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": _alias(app, stage, role)}]}]}
        assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (2, 600)
        destination = config["DestinationConfig"]["OnFailure"]["Destination"]
        assert app.describe(stage, destination) == f"AWS::SQS::Queue/cappi-{stage}-{role}-dlq"


# -- CodeDeploy ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_query_alias_is_released_by_codedeploy_with_the_check_before_traffic(app: Synth, stage: str) -> None:
    alias = app.templates[stage]["Resources"][_alias(app, stage, "query")]
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert app.describe(stage, update["ApplicationName"]) == f"AWS::CodeDeploy::Application/cappi-{stage}-query"
    assert app.describe(stage, update["DeploymentGroupName"]) == (
        f"AWS::CodeDeploy::DeploymentGroup/cappi-{stage}-query-release"
    )
    assert update["BeforeAllowTrafficHook"] == {"Ref": _function(app, stage, "release-check")}
    assert "AfterAllowTrafficHook" not in update
    # The check's new configuration and grants are in place before CodeDeploy calls it.
    check_role = app.function_role(stage, f"cappi-{stage}-release-check")
    assert {_function(app, stage, "release-check"), check_role} <= set(alias["DependsOn"])
    for role in ("ingest", "dispatch"):
        assert "UpdatePolicy" not in app.templates[stage]["Resources"][_alias(app, stage, role)]


@pytest.mark.parametrize("stage", STAGES)
def test_the_deployment_group_shifts_gradually_and_rolls_back_on_failure_stop_and_alarm(app: Synth, stage: str) -> None:
    group = _deployment_group(app, stage)
    assert group["DeploymentConfigName"] == QUERY_RELEASES[DEFAULT_QUERY_RELEASE].codedeploy_name
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert group["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert set(group["AutoRollbackConfiguration"]["Events"]) == ROLLBACK_EVENTS
    assert group["AlarmConfiguration"]["Enabled"] is True
    watched = [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]]
    assert sorted(w["Ref"] for w in watched) == sorted(
        app.logical_id(stage, "AWS::CloudWatch::Alarm", AlarmName=name) for name in _release_alarm_names(stage)
    )


def _release_alarm_names(stage: str) -> set[str]:
    return {f"cappi-{stage}-query-release-{condition}" for condition in ("errors", "p99-latency", "5xx-rate")}


def _alarms(app: Synth, stage: str) -> dict[str, dict]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in app.resources(stage, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] in _release_alarm_names(stage)
    }


@pytest.mark.parametrize("stage", STAGES)
def test_the_release_alarms_watch_the_query_alias_and_the_api_by_the_minute(app: Synth, stage: str) -> None:
    config = _config(stage)
    alarms = _alarms(app, stage)
    assert set(alarms) == _release_alarm_names(stage)
    function = {"Ref": _function(app, stage, "query")}
    alias_dimensions = [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": {"Fn::Join": ["", [function, f":{LIVE_ALIAS}"]]}},
    ]

    errors = alarms[f"cappi-{stage}-query-release-errors"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert errors["Dimensions"] == alias_dimensions
    assert (errors["Period"], errors["EvaluationPeriods"], errors["Threshold"]) == (60, 1, 1)
    assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    latency = alarms[f"cappi-{stage}-query-release-p99-latency"]
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Dimensions"]) == (
        "Duration",
        "p99",
        alias_dimensions,
    )
    assert (latency["Period"], latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (60, LATENCY_PERIODS, 2)
    assert (latency["Threshold"], latency["ComparisonOperator"]) == (config.api_p99_alarm_ms, "GreaterThanThreshold")

    rate = alarms[f"cappi-{stage}-query-release-5xx-rate"]
    expression = next(m for m in rate["Metrics"] if "Expression" in m)
    assert expression["Expression"] == f"IF(requests >= {RELEASE_MIN_REQUESTS}, 100 * FILL(errors, 0) / requests, 0)"
    read = {m["Id"]: m["MetricStat"] for m in rate["Metrics"] if "MetricStat" in m}
    api = {"Ref": app.logical_id(stage, "AWS::ApiGatewayV2::Api", Name=f"cappi-{stage}-api")}
    assert {k: (v["Metric"]["MetricName"], v["Stat"], v["Period"]) for k, v in read.items()} == {
        "requests": ("Count", "Sum", 60),
        "errors": ("5xx", "Sum", 60),
    }
    assert all(v["Metric"]["Dimensions"] == [{"Name": "ApiId", "Value": api}] for v in read.values())
    assert (rate["Threshold"], rate["EvaluationPeriods"]) == (config.api_5xx_alarm_percent, 1)

    topic = {"Ref": app.logical_id(stage, "AWS::SNS::Topic", TopicName=f"cappi-{stage}-alarms")}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"  # a quiet minute is no reason to roll back


# -- the release check ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_check_is_told_the_new_query_version_and_may_invoke_only_that(app: Synth, stage: str) -> None:
    check = app.templates[stage]["Resources"][_function(app, stage, "release-check")]["Properties"]
    version = app.logical_id(stage, VERSION, FunctionName={"Ref": _function(app, stage, "query")})
    assert check["Environment"]["Variables"]["CAPPI_QUERY_VERSION"] == {"Ref": version}
    assert (check["Handler"], check["Timeout"]) == (RELEASE_CHECK.handler, RELEASE_CHECK.timeout_s)
    role = app.function_role(stage, f"cappi-{stage}-release-check")
    invokes = {(a, r) for a, r in app.role_grants(stage, role) if a.startswith("lambda:")}
    assert invokes == {("lambda:InvokeFunction", f"{VERSION}/cappi-{stage}-query")}


def test_the_check_waits_longer_than_the_query_may_run_and_ends_before_its_own_timeout() -> None:
    assert QUERY.timeout_s < SYNC_READ_TIMEOUT_S
    assert RELEASE_CHECK.timeout_s > SYNC_ATTEMPTS * SYNC_READ_TIMEOUT_S


# -- the setting -----------------------------------------------------------------------------------------------


def test_every_release_setting_names_a_deployment_config_cdk_knows() -> None:
    for name, release in QUERY_RELEASES.items():
        config = getattr(codedeploy.LambdaDeploymentConfig, release.cdk_name)
        assert config.deployment_config_name == release.codedeploy_name, name
    assert QUERY_RELEASES["canary-10-5m"].shifting_minutes == 5
    assert QUERY_RELEASES["linear-10-1m"].shifting_minutes == 9
    assert QUERY_RELEASES["all-at-once"].shifting_minutes == 0
    assert _config("stage").query_release == _config("prod").query_release == "canary-10-5m"


def test_a_command_line_override_changes_the_deployment_config() -> None:
    app = synth(**{"cappi:stages": "stage", "stage:query_release": "linear-10-1m"})
    assert _deployment_group(app, "stage")["DeploymentConfigName"] == (
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    )


def test_an_unknown_release_is_refused_with_the_keys_name() -> None:
    context = cdk_context(**{"cappi:stages": ["stage"], "stage:query_release": "canary-50-1h"})
    with pytest.raises(ConfigError, match=r"query_release: must be one of canary-10-5m, .*got 'canary-50-1h'"):
        cdk_app.build_app(context)
