"""Releases behind aliases: query, ingest and dispatch run as published versions behind `live`, which is what API
Gateway, the schedule and dispatch invoke."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

from infra.functions import FUNCTIONS, LIVE_ALIAS

STAGES = ("stage", "prod")
RELEASED = ("query", "ingest", "dispatch")
LAMBDA = "AWS::Lambda::Function"
ALIAS = "AWS::Lambda::Alias"
VERSION = "AWS::Lambda::Version"


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def _function(app: Synth, stage: str, role: str) -> str:
    return app.logical_id(stage, LAMBDA, FunctionName=f"cappi-{stage}-{role}")


def _alias(app: Synth, stage: str, role: str) -> str:
    return app.logical_id(stage, ALIAS, FunctionName={"Ref": _function(app, stage, role)}, Name=LIVE_ALIAS)


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
    assert aliased == {f"{LAMBDA}/cappi-{stage}-{role}" for role in RELEASED}
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
