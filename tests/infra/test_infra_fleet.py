"""A stack whose size and reservations do not grow with the registry: both stages synthesized for a generated
registry of 1,000 club sources (every auth type, one in eight disabled) stay under 450 resources each, and their
reservations together leave at least 100 of a default 1,000-execution quota unreserved.

One synth builds both stages (module-scoped: at 1,000 sources a synth takes tens of seconds); the registry-sized
one is compared with cdk.json's own synth, which the other infra tests share.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

from cappi.contracts.stack import UNRESERVED_MINIMUM
from cappi.domain.registry import AUTH_TYPES, parse_registry

STAGES = ("stage", "prod")
SOURCES = 1000
RESOURCE_BOUND = 450  # CloudFormation's limit is 500 a stack: room for what comes next
DEFAULT_QUOTA = 1000  # Lambda's default concurrent executions per account and region


def _auth(n: int, stage: str) -> dict[str, Any]:
    kind = AUTH_TYPES[n % len(AUTH_TYPES)]
    secret = f"cappi/{stage}/clubs/club-{n:04d}"
    return {
        "none": {"type": "none"},
        "bearer": {"type": "bearer", "secret": secret},
        "basic": {"type": "basic", "secret": secret},
        "api_key": {"type": "api_key", "secret": secret, "header": "X-Api-Key"},
        "oauth2_client_credentials": {
            "type": "oauth2_client_credentials",
            "secret": secret,
            "token_url": f"https://auth.club-{n:04d}.example.org/oauth/token",
            "client_id": "cappi",
        },
        "mtls": {"type": "mtls", "secret": secret, "header_auth": {"type": "bearer", "secret": f"{secret}-token"}},
    }[kind]


def fleet(stage: str) -> dict[str, Any]:
    """1,000 sources, one club each (club IDs are 0-999), every auth type in turn, one in eight disabled."""
    return {
        "sources": [
            {
                "name": f"club-{n:04d}",
                "club_ids": [n],
                "base_url": f"https://calls.club-{n:04d}.example.org",
                "auth": _auth(n, stage),
                **({"enabled": False} if n % 8 == 7 else {}),
            }
            for n in range(SOURCES)
        ]
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    folder = tmp_path_factory.mktemp("fleet")
    overrides = {}
    for stage in STAGES:
        registry = fleet(stage)
        parse_registry(registry)  # a registry the product accepts
        (folder / f"{stage}.json").write_text(json.dumps(registry))
        overrides[f"{stage}:clubs_file"] = str(folder / f"{stage}.json")
    return synth(**overrides)


@pytest.fixture(scope="module")
def reference() -> Synth:
    return synth()  # cdk.json's registries: a source or two


def _types(app: Synth, stage: str) -> Counter[str]:
    return Counter(r["Type"] for r in app.templates[stage]["Resources"].values())


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_stays_well_under_cloudformations_limit_at_1000_sources(app: Synth, stage: str) -> None:
    types = _types(app, stage)
    assert sum(types.values()) < RESOURCE_BOUND, types.most_common(5)


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_but_club_secrets_follows_the_registry(app: Synth, reference: Synth, stage: str) -> None:
    """Alarms, dashboards, metrics, functions, roles: the same at 1,000 sources as at one. (Club credentials are
    held to the bound above: they must not be a resource per source either.)"""
    big, small = _types(app, stage), _types(reference, stage)
    for counts in (big, small):
        counts.pop("AWS::SecretsManager::Secret", None)
    assert big == small
    alarms = [
        r["Properties"] for r in app.templates[stage]["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert not [a["AlarmName"] for a in alarms if "club-" in a["AlarmName"]]
    dashboard = next(r for r in app.templates[stage]["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    assert "club-0" not in json.dumps(dashboard)


def test_both_stages_leave_100_of_a_default_quota_unreserved_at_1000_sources(app: Synth) -> None:
    reserved = {
        stage: sum(
            r["Properties"].get("ReservedConcurrentExecutions", 0)
            for r in app.templates[stage]["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        )
        for stage in STAGES
    }
    assert DEFAULT_QUOTA - sum(reserved.values()) >= UNRESERVED_MINIMUM, reserved
    errors = [
        entry["data"]
        for stage in STAGES
        for entries in app.metadata[stage].values()
        for entry in entries
        if entry["type"] == "aws:cdk:error"
    ]
    assert errors == []


@pytest.mark.parametrize("stage", STAGES)
def test_at_1000_sources_each_minute_starts_a_tenth_of_them(app: Synth, stage: str) -> None:
    """Polls spread over the interval: the schedule ticks every minute, each tick one of the interval's slots."""
    resources = app.templates[stage]["Resources"].values()
    (schedule,) = [r["Properties"] for r in resources if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    (dispatch,) = [
        r["Properties"]
        for r in resources
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("FunctionName") == f"cappi-{stage}-dispatch"
    ]
    assert dispatch["Environment"]["Variables"]["CAPPI_POLL_SLOTS"] == "10"  # cdk.json: every 10 minutes
