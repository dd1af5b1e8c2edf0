"""Monitoring follows the registry: one alarm set and one dashboard row per club source. Also the stage settings
that only show with overrides (`-c stage:<key>=<value>`): alarm e-mail, custom domain, schedule rate, retention.

Uses its own three-source registry, so the per-club behaviour is proved on more than the example club.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from support.synth import Synth, synth

REGISTRY = {
    "sources": [
        {
            "name": "north-club",
            "club_ids": [301, 302],
            "base_url": "https://north.example.org",
            "auth": {"type": "bearer", "secret": "cappi/stage/clubs/north-club"},
        },
        {"name": "south-club", "club_ids": [303], "base_url": "https://south.example.org"},
        {
            "name": "west-club",
            "club_ids": [304],
            "base_url": "https://west.example.org",
            "auth": {"type": "api_key", "secret": "cappi/stage/clubs/west-club", "header": "X-Api-Key"},
            "enabled": False,
        },
    ]
}
SOURCES = {"north-club": True, "south-club": True, "west-club": False}  # name -> enabled
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-123456789abc"
# As `-c` passes them: every value a string.
OVERRIDES = {
    "cappi:stages": "stage",
    "stage:alarm_email": "cappi-ops@example.org",
    "stage:domain_name": "api.stagecappi.example.org",
    "stage:certificate_arn": CERTIFICATE,
    "stage:schedule_minutes": "5",
    "stage:log_retention_days": "14",
    "stage:throttle_rate": "20",
    "stage:throttle_burst": "40",
    "stage:require_club_claim": "true",
    "stage:rejected_ratio_alarm_percent": "2.5",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    registry = tmp_path_factory.mktemp("registry") / "clubs.json"
    registry.write_text(json.dumps(REGISTRY))
    return synth(**OVERRIDES, **{"stage:clubs_file": str(registry)})


def _alarms(app: Synth) -> dict[str, dict[str, Any]]:
    alarms = app.resources("stage", "AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms}


def _topic(app: Synth) -> dict[str, str]:
    return {"Ref": app.logical_id("stage", "AWS::SNS::Topic", TopicName="cappi-stage-alarms")}


def test_every_registry_source_gets_one_alarm_and_no_other_source_does(app: Synth) -> None:
    per_source = {
        (a["Dimensions"][0]["Value"], a["MetricName"])
        for a in _alarms(app).values()
        if a.get("Namespace") == "CAPPI/stage" and a.get("Dimensions")
    }
    assert per_source == {(source, "SnapshotAge") for source in SOURCES}
    for source in SOURCES:
        assert f"cappi-stage-{source}-stale" in _alarms(app)
        for gone in ("poll-failures", "drop-guard", "rejected-rows"):  # one health alarm per source, not four
            assert f"cappi-stage-{source}-{gone}" not in _alarms(app)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_source_alarm_watches_snapshot_age_with_missing_data_as_stale(app: Synth, source: str) -> None:
    stale = _alarms(app)[f"cappi-stage-{source}-stale"]
    assert (stale["MetricName"], stale["Statistic"]) == ("SnapshotAge", "Maximum")
    assert (stale["ComparisonOperator"], stale["Threshold"]) == ("GreaterThanThreshold", 1800)
    assert stale["TreatMissingData"] == "breaching"  # a club nobody polls is a stale club
    # Half-schedule periods, 3 of 4: a healthy source leaves at most every other period empty.
    assert stale["Period"] == 120  # half the overridden 5-minute schedule, in whole minutes
    assert (stale["EvaluationPeriods"], stale["DatapointsToAlarm"]) == (4, 3)
    assert stale["Namespace"] == "CAPPI/stage"
    assert stale["Dimensions"] == [{"Name": "Source", "Value": source}]
    assert stale["ActionsEnabled"] is SOURCES[source]  # a disabled source's alarm stays quiet
    assert stale["AlarmActions"] == [_topic(app)]
    assert stale["OKActions"] == [_topic(app)]
    assert "cappi status --stage stage" in stale["AlarmDescription"]


def test_drops_and_rejected_rows_alarm_once_for_the_stage(app: Synth) -> None:
    alarms = _alarms(app)
    held = alarms["cappi-stage-ingest-drop-guard"]
    assert (held["Namespace"], held["MetricName"], held["Statistic"], held["Threshold"]) == (
        "CAPPI/stage",
        "DropGuardHolds",
        "Sum",
        1,
    )
    assert held["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    rejected = alarms["cappi-stage-ingest-rejected-rows"]
    assert (rejected["MetricName"], rejected["Statistic"]) == ("RejectedRowRatio", "Maximum")
    assert (rejected["ComparisonOperator"], rejected["Threshold"]) == ("GreaterThanThreshold", 2.5)
    for alarm in (held, rejected):
        assert "Dimensions" not in alarm
        assert alarm["Period"] == 300
        assert alarm["AlarmActions"] == [_topic(app)]


def test_api_alarms_watch_the_5xx_rate_and_p99_latency(app: Synth) -> None:
    alarms = _alarms(app)
    api_id = {"Ref": app.logical_id("stage", "AWS::ApiGatewayV2::Api", Name="cappi-stage-api")}

    rate = alarms["cappi-stage-api-5xx-rate"]
    expression = next(m for m in rate["Metrics"] if "Expression" in m)
    assert "100 * FILL(errors, 0) / requests" in expression["Expression"]
    used = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {(k, v["Namespace"], v["MetricName"]) for k, v in used.items()} == {
        ("errors", "AWS/ApiGateway", "5xx"),
        ("requests", "AWS/ApiGateway", "Count"),
    }
    assert all(v["Dimensions"] == [{"Name": "ApiId", "Value": api_id}] for v in used.values())

    latency = alarms["cappi-stage-api-p99-latency"]
    assert (latency["Namespace"], latency["MetricName"], latency["ExtendedStatistic"]) == (
        "AWS/ApiGateway",
        "Latency",
        "p99",
    )
    assert latency["Dimensions"] == [{"Name": "ApiId", "Value": api_id}]


def test_system_alarms_cover_both_queues_and_every_function(app: Synth) -> None:
    alarms = _alarms(app)
    for hop in ("dispatch", "ingest", "alarm-delivery"):
        depth = alarms[f"cappi-stage-{hop}-dlq-not-empty"]
        assert depth["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert app.describe("stage", depth["Dimensions"][0]["Value"]).endswith(f"cappi-stage-{hop}-dlq")
    for role in ("dispatch", "ingest", "query"):
        for condition, metric in (("errors", "Errors"), ("throttles", "Throttles")):
            alarm = alarms[f"cappi-stage-{role}-{condition}"]
            assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
            assert app.describe("stage", alarm["Dimensions"][0]["Value"]) == f"AWS::Lambda::Function/cappi-stage-{role}"
    assert alarms["cappi-stage-dispatch-invoke-failures"]["MetricName"] == "IngestDispatchFailures"
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [_topic(app)]


def test_alarms_reach_the_configured_address_through_an_encrypted_topic(app: Synth) -> None:
    subscription = app.template().find_resources(
        "AWS::SNS::Subscription", {"Properties": {"Protocol": "email", "Endpoint": "cappi-ops@example.org"}}
    )
    assert len(subscription) == 1
    props = next(iter(subscription.values()))["Properties"]
    assert props["TopicArn"] == _topic(app)
    # A notification SNS cannot deliver waits in a queue (with its own depth alarm) instead of vanishing.
    dead_letters = app.describe("stage", props["RedrivePolicy"]["deadLetterTargetArn"])
    assert dead_letters == "AWS::SQS::Queue/cappi-stage-alarm-delivery-dlq"
    topic = app.resources("stage", "AWS::SNS::Topic")[_topic(app)["Ref"]]["Properties"]
    key = app.resources("stage", "AWS::KMS::Key")[topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch_may_use_it = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch_may_use_it
    assert set(cloudwatch_may_use_it[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_without_an_alarm_email_there_is_no_subscription_and_synth_warns() -> None:
    default = synth()
    assert not default.resources("stage", "AWS::SNS::Subscription")
    warnings = [
        entry["data"]
        for entries in default.metadata["stage"].values()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
    ]
    assert any("No alarm e-mail for stage stage" in str(w) for w in warnings)


def test_dashboard_graphs_every_source_and_shows_the_last_polls_and_the_api(app: Synth) -> None:
    dashboard = next(iter(app.resources("stage", "AWS::CloudWatch::Dashboard").values()))["Properties"]
    assert dashboard["DashboardName"] == "cappi-stage-dashboard"
    body = json.dumps(dashboard["DashboardBody"])
    assert "Snapshot age (s): north-club .. west-club" in body
    assert "Source alarms: north-club .. west-club" in body
    for source, enabled in SOURCES.items():
        label = source if enabled else f"{source} (disabled)"
        assert f'\\"Source\\",\\"{source}\\",{{\\"label\\":\\"{label}\\"' in body
    assert "Last poll per source (ingest log)" in body
    assert "/aws/lambda/cappi-stage-ingest" in body or "IngestLogs" in body
    assert "API requests" in body
    assert "API latency" in body


def test_credentials_are_no_resource_and_ingest_reads_only_the_registrys_parameters(app: Synth) -> None:
    assert app.resources("stage", "AWS::SecretsManager::Secret") == {}
    assert app.resources("stage", "AWS::SSM::Parameter") == {}
    ingest_role = app.function_role("stage", "cappi-stage-ingest")
    readable = {(a, r) for a, r in app.role_grants("stage", ingest_role) if a.startswith(("ssm:", "secretsmanager:"))}
    # Both credentials share a directory: one pattern, whatever the number of sources under it.
    arn = "arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/cappi/stage/clubs/*"
    assert readable == {("ssm:GetParameter", arn)}
    # Preflight checks the enabled sources' parameters: the disabled west-club's is not asked for.
    enabled = {"north-club": ["/cappi/stage/clubs/north-club"]}
    assert app.templates["stage"]["Metadata"]["CappiClubCredentials"] == enabled


def test_custom_domain_maps_to_the_default_stage(app: Synth) -> None:
    app.template().has_resource_properties(
        "AWS::ApiGatewayV2::DomainName",
        {
            "DomainName": "api.stagecappi.example.org",
            "DomainNameConfigurations": [
                {"CertificateArn": CERTIFICATE, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
            ],
        },
    )
    mapping = next(iter(app.resources("stage", "AWS::ApiGatewayV2::ApiMapping").values()))
    stage_id = next(iter(app.resources("stage", "AWS::ApiGatewayV2::Stage")))
    assert mapping["Properties"]["Stage"] == "$default"
    assert stage_id in mapping["DependsOn"]
    assert "ApiDomainTarget" in "".join(app.templates["stage"]["Outputs"])


def test_overrides_reach_schedule_throttling_retention_and_query_settings(app: Synth) -> None:
    schedule = next(iter(app.resources("stage", "AWS::Scheduler::Schedule").values()))["Properties"]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 300
    stage = next(iter(app.resources("stage", "AWS::ApiGatewayV2::Stage").values()))["Properties"]
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40}
    assert {g["Properties"]["RetentionInDays"] for g in app.resources("stage", "AWS::Logs::LogGroup").values()} == {14}
    query = app.logical_id("stage", "AWS::Lambda::Function", FunctionName="cappi-stage-query")
    env = app.templates["stage"]["Resources"][query]["Properties"]["Environment"]["Variables"]
    assert env["CAPPI_REQUIRE_CLUB_CLAIM"] == "true"


def test_registry_file_is_bundled_as_the_functions_clubs_json(app: Synth) -> None:
    """The asset of every function carries this stage's registry, so dispatch and ingest agree with CDK on it."""
    assets = json.loads((app.outdir / "Cappi-stage.assets.json").read_text())["files"]
    folders = [app.outdir / a["source"]["path"] for a in assets.values() if a["source"].get("packaging") == "zip"]
    assert folders
    for folder in folders:
        assert json.loads(Path(folder, "clubs.json").read_text()) == REGISTRY
