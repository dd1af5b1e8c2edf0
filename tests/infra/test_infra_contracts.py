"""The deployed API agrees with the API contract (`cappi.contracts.api`): cdk.json's issuer and audience of each
environment (ops edit them there), the query function's scope and claim defaults, and the synthesized route,
authorizer and function environment."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, cdk_context, synth

from cappi.contracts import api, metrics
from cappi.settings import QuerySettings

STAGES = tuple(api.ENVIRONMENTS)


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


@pytest.mark.parametrize("stage", STAGES)
def test_cdk_json_names_the_contracts_issuer_and_audience(stage: str) -> None:
    context = cdk_context()
    environment = api.ENVIRONMENTS[stage]
    assert stage in context["cappi:stages"]
    assert context[f"cappi:{stage}"]["issuer"] == environment.issuer
    assert context[f"cappi:{stage}"]["audience"] == environment.audience


def test_query_function_defaults_are_the_contracts_scope_and_claim() -> None:
    assert (QuerySettings.default("required_scope"), QuerySettings.default("club_claim")) == (api.SCOPE, api.CLUB_CLAIM)


@pytest.mark.parametrize("stage", STAGES)
def test_route_authorizer_and_function_follow_the_contract(app: Synth, stage: str) -> None:
    (route,) = app.resources(stage, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == f"{api.METHOD} {api.ROUTE}"
    assert route["Properties"]["AuthorizationScopes"] == [api.SCOPE]
    (authorizer,) = app.resources(stage, "AWS::ApiGatewayV2::Authorizer").values()
    jwt = authorizer["Properties"]["JwtConfiguration"]
    assert (jwt["Issuer"], jwt["Audience"]) == (api.ENVIRONMENTS[stage].issuer, [api.ENVIRONMENTS[stage].audience])
    functions = app.resources(stage, "AWS::Lambda::Function").values()
    query = next(f for f in functions if f["Properties"]["FunctionName"] == f"cappi-{stage}-query")
    environment = query["Properties"]["Environment"]["Variables"]
    assert environment["CAPPI_REQUIRED_SCOPE"] == api.SCOPE
    assert environment["CAPPI_CLUB_CLAIM"] == api.CLUB_CLAIM
    assert all(
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == metrics.namespace_for(stage)
        for f in functions
    )
