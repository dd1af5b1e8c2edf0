"""Monitoring does not follow the registry's size: one staleness alarm over every source, a dashboard without
per-source widgets. Also the stage settings that only show with overrides (`-c stage:<key>=<value>`): alarm e-mail,
custom domain, schedule rate and poll slots, retention.

Uses its own three-source registry (one disabled), so nothing per source hides behind a single example club.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from support.alarm_metrics import dashboard_widgets
from support.synth import Synth, synth

from cappi.contracts.metrics import STALE_LINE
from infra.dashboard import STALE_WIDGET

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


def test_no_alarm_is_per_source_and_one_watches_staleness_for_every_source(app: Synth) -> None:
    alarms = _alarms(app)
    assert not [name for name, a in alarms.items() if a.get("Dimensions") and a.get("Namespace") == "CAPPI/stage"]
    for source in SOURCES:
        assert not [name for name in alarms if source in name]
    assert [name for name in alarms if name.endswith("-stale")] == ["cappi-stage-sources-stale"]


def test_the_stale_alarm_counts_stale_sources_with_missing_data_as_stale(app: Synth) -> None:
    stale = _alarms(app)["cappi-stage-sources-stale"]
    assert (stale["Namespace"], stale["MetricName"], stale["Statistic"]) == ("CAPPI/stage", "StaleSources", "Maximum")
    assert "Dimensions" not in stale
    assert (stale["ComparisonOperator"], stale["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert stale["TreatMissingData"] == "breaching"  # a dispatch that does not run vouches for no source
    # Dispatch reports every minute: two five-minute periods in a row, so one lost tick is not an alarm.
    assert (stale["Period"], stale["EvaluationPeriods"], stale["DatapointsToAlarm"]) == (300, 2, 2)
    assert stale["ActionsEnabled"] is True
    assert stale["AlarmActions"] == [_topic(app)]
    assert stale["OKActions"] == [_topic(app)]
    # It says where the names are: the command, and the dashboard widget over dispatch's line.
    description = stale["AlarmDescription"]
    assert "`cappi status --stage stage` lists them first" in description
    assert "30 min" in description
    assert f'cappi-stage-dashboard\'s widget "{STALE_WIDGET}"' in description
    assert f"`{STALE_LINE}`" in description


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


def test_the_dashboard_shows_stale_sources_by_name_and_nothing_per_source(app: Synth) -> None:
    dashboard = next(iter(app.resources("stage", "AWS::CloudWatch::Dashboard").values()))["Properties"]
    assert dashboard["DashboardName"] == "cappi-stage-dashboard"
    body = json.dumps(dashboard["DashboardBody"])
    for source in SOURCES:
        assert source not in body
    assert '\\"StaleSources\\"' in body and '\\"OldestSnapshotAge\\"' in body
    widgets = {w["properties"].get("title"): w["properties"] for w in dashboard_widgets(app.templates["stage"])}
    stale = widgets[STALE_WIDGET]
    assert f'filter message = "{STALE_LINE}"' in stale["query"]
    assert "Last poll per source (ingest log)" in widgets
    # Which log group each Logs Insights widget reads: the token just before its query's text.
    _, parts = dashboard["DashboardBody"]["Fn::Join"]
    read = {
        text.split("|", 2)[1].split("\\n")[0].strip(): app.describe("stage", parts[i - 1])
        for i, text in enumerate(parts)
        if isinstance(text, str) and text.startswith("' | fields ")
    }
    assert read == {
        "fields @timestamp, stale_sources, oldest_snapshot_age_s, stale": (
            "AWS::Logs::LogGroup//aws/lambda/cappi-stage-dispatch"
        ),
        "fields @timestamp, Source, PollSuccess, FetchFailure, FeedRejected, Calls, Techs, SnapshotAge, RejectedRows": (
            "AWS::Logs::LogGroup//aws/lambda/cappi-stage-ingest"
        ),
    }
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
    assert schedule["ScheduleExpression"] == "rate(1 minute)"  # each tick starts one of the interval's 5 slots
    assert schedule["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 300
    dispatch = app.logical_id("stage", "AWS::Lambda::Function", FunctionName="cappi-stage-dispatch")
    dispatch_env = app.templates["stage"]["Resources"][dispatch]["Properties"]["Environment"]["Variables"]
    assert (dispatch_env["CAPPI_POLL_SLOTS"], dispatch_env["CAPPI_STALE_AFTER_S"]) == ("5", "1800")
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
