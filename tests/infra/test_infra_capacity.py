"""Capacity and log volume: ingest has a floor of concurrency no burst of queries can take, of the stage's setting
whatever the number of sources, the query function reserves what its steady throttle needs, both stages fit one
account with the default quota (at 1,000 sources too: test_infra_fleet.py), and the query function leaves no Lambda
platform lines (three per request at ~36 million requests a month, bench/cost.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

from infra.api import ACCESS_LOG_FORMAT, QUERY_SECONDS_BUDGET
from infra.config import StageConfig

STAGES = ("stage", "prod")
BURST = {"stage": 100, "prod": 400}  # cdk.json's throttle_burst
RATE = {"stage": 50, "prod": 200}  # cdk.json's throttle_rate


@pytest.fixture(scope="module")
def app() -> Synth:
    return synth()


def _function(app: Synth, stage: str, role: str) -> dict:
    lid = app.logical_id(stage, "AWS::Lambda::Function", FunctionName=f"cappi-{stage}-{role}")
    return app.templates[stage]["Resources"][lid]["Properties"]


@pytest.mark.parametrize("stage", STAGES)
def test_ingest_reserves_the_stage_setting_and_query_what_its_steady_throttle_needs(app: Synth, stage: str) -> None:
    ingest = _function(app, stage, "ingest")["ReservedConcurrentExecutions"]
    default = next(f.default for f in dataclasses.fields(StageConfig) if f.name == "ingest_reserved_concurrency")
    assert ingest == default
    # Little's law at the steady throttle: requests per second x the seconds one query may take.
    expected = min(BURST[stage], math.ceil(RATE[stage] * QUERY_SECONDS_BUDGET))
    assert _function(app, stage, "query")["ReservedConcurrentExecutions"] == expected
    assert "ReservedConcurrentExecutions" not in _function(app, stage, "dispatch")  # one short run per tick


def test_both_stages_fit_one_account_with_the_default_quota(app: Synth) -> None:
    """Stage and prod often share an account: together they must leave AWS's 100 of the default 1,000, and room
    for the account's other functions besides."""
    reserved = sum(
        r["Properties"].get("ReservedConcurrentExecutions", 0)
        for stage in STAGES
        for r in app.resources(stage, "AWS::Lambda::Function").values()
    )
    assert 1000 - reserved >= 100 + 500, reserved


def test_the_ingest_reservation_is_a_setting_not_a_count_of_sources() -> None:
    chosen = synth(**{"cappi:stages": "stage", "stage:ingest_reserved_concurrency": "12"})
    assert _function(chosen, "stage", "ingest")["ReservedConcurrentExecutions"] == 12


def test_a_reservation_that_leaves_under_100_unreserved_fails_the_synth() -> None:
    crowded = synth(
        **{"cappi:stages": "stage", "stage:account_concurrency": "200", "stage:query_reserved_concurrency": "150"}
    )
    errors = [
        entry["data"]
        for entries in crowded.metadata["stage"].values()
        for entry in entries
        if entry["type"] == "aws:cdk:error"
    ]
    assert any("leaves fewer than 100" in str(e) and "query: 150" in str(e) for e in errors), errors


@pytest.mark.parametrize("stage", STAGES)
def test_query_logs_no_platform_lines_and_samples_its_own(app: Synth, stage: str) -> None:
    query = _function(app, stage, "query")
    assert query["LoggingConfig"]["LogFormat"] == "JSON"
    assert query["LoggingConfig"]["SystemLogLevel"] == "WARN"  # no START/END/REPORT; timeouts still logged
    assert query["LoggingConfig"]["ApplicationLogLevel"] == "INFO"  # the sampled line is INFO, EMF lines too
    for role in ("ingest", "dispatch"):  # few invocations: REPORT's memory figure is worth its bytes
        assert "LogFormat" not in _function(app, stage, role)["LoggingConfig"]


def test_the_access_log_keeps_what_support_asks_for() -> None:
    assert set(ACCESS_LOG_FORMAT) >= {"id", "status", "ms", "authError", "client"}
    assert "$context.authorizer.claims.azp" in ACCESS_LOG_FORMAT.values()
    # No personal data beyond the app's client ID: a device's address is not needed to answer a support question.
    assert not any("sourceip" in value.lower() or "useragent" in value.lower() for value in ACCESS_LOG_FORMAT.values())
    # Nothing the one GET route implies: every byte is paid per request.
    assert not {"$context.httpMethod", "$context.routeKey", "$context.requestTime"} & set(ACCESS_LOG_FORMAT.values())
    assert not any("token" in value.lower() or "authorization" in value.lower() for value in ACCESS_LOG_FORMAT.values())
