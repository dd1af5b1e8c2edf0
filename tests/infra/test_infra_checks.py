"""cdk-nag (AwsSolutions and Serverless packs) and cfn-lint pass on both stages' templates.

cdk-nag runs inside every synth as a CDK validation plugin, so `synth()` succeeding already means no finding is
left unacknowledged; these tests add that the packs really ran, that each acknowledgement carries its reason, and
that the set of acknowledged rules only grows by a reviewed change here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")
pytest.importorskip("cdk_nag")

from support.synth import Synth, synth

# Every rule acknowledged somewhere in the app, and where the reason lives. A new acknowledgement must be added
# here too, so it cannot slip in unnoticed.
ACKNOWLEDGED = {
    "AwsSolutions::AwsSolutions-L1": "infra/functions.py: Python pinned to what the wheels are built for",
    "Serverless::Serverless-LambdaLatestVersion": "infra/functions.py: same as AwsSolutions-L1",
    "Serverless::Serverless-LambdaTracing": "infra/functions.py: X-Ray off on purpose (cold start)",
    "Serverless::Serverless-LambdaDLQ": "infra/ingest.py, infra/api.py: on-failure destinations; query is sync",
    "AwsSolutions::AwsSolutions-SQS3": "infra/queues.py: the queue is itself a dead-letter queue",
    "Serverless::Serverless-SQSRedrivePolicy": "infra/queues.py: the queue is itself a dead-letter queue",
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaVPCAccessExecutionRole]": "infra/egress.py: a function in a VPC needs network interfaces",
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSCodeDeployRoleForLambdaLimited]": "infra/release.py: CodeDeploy's own role for Lambda deployments",
    "AwsSolutions::AwsSolutions-IAM5[Resource::<QueryReleaseCheckFunctionE58268EF.Arn>:*]": (
        "infra/release.py: CDK's grant to invoke the pre-traffic hook covers its own qualified ARNs only"
    ),
    "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:"
    "parameter/cappi/stage/clubs/*]": (
        "infra/storage.py: ingest reads the credentials under a directory of secret names, one pattern per directory"
    ),
}
# Two credentials in one directory: ingest's grant is that directory's pattern (cappi.contracts.credentials).
SHARED_DIRECTORY = Path(tempfile.mkdtemp(prefix="cappi-nag-registry-")) / "clubs.json"
SHARED_DIRECTORY.write_text(
    json.dumps(
        {
            "sources": [
                {
                    "name": f"club-{n}",
                    "club_ids": [n],
                    "base_url": f"https://club-{n}.example.org",
                    "auth": {"type": "bearer", "secret": f"cappi/stage/clubs/club-{n}"},
                }
                for n in (1, 2)
            ]
        }
    )
)
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
CFN_LINT_ALLOWED = {
    # CDK itself adds DependsOn for a function's role next to the GetAtt of the same role.
    "W3005",
}


def _synths() -> list[Synth]:
    return [
        synth(),
        synth(**{"stage:alarm_email": "ops@example.org", "cappi:stages": "stage"}),
        synth(**{"stage:static_egress": True, "stage:egress_addresses": 2, "cappi:stages": "stage"}),
        synth(**{"stage:clubs_file": str(SHARED_DIRECTORY), "cappi:stages": "stage"}),
    ]


@pytest.mark.parametrize(
    "which", [0, 1, 2, 3], ids=["cdk.json", "with-alarm-email", "with-static-egress", "credentials-in-a-directory"]
)
def test_both_nag_packs_ran_and_passed(which: int) -> None:
    app = _synths()[which]
    report = json.loads((app.outdir / "validation-report.json").read_text())
    conclusions = {r["pluginName"]: r["conclusion"] for r in report["pluginReports"]}
    assert conclusions == {"AwsSolutions": "success", "Serverless": "success"}


def test_every_acknowledgement_is_a_known_rule_with_a_reason() -> None:
    seen: set[str] = set()
    for app in _synths():
        for stage_metadata in app.metadata.values():
            for path, entries in stage_metadata.items():
                for entry in entries:
                    if entry["type"] != "aws:cdk:acknowledged-rules":
                        continue
                    for rule, reason in entry["data"].items():
                        if rule.startswith("CloudFormation-Validate::"):
                            continue  # aws-cdk-lib's own (its Vpc and FlowLog acknowledge cfn-lint rules), not ours
                        assert rule in ACKNOWLEDGED, f"{path}: {rule} is acknowledged but not listed in this test"
                        assert len(reason.split()) >= 8, f"{path}: {rule} needs a real reason, got {reason!r}"
                        seen.add(rule)
    assert seen == set(ACKNOWLEDGED), "a listed acknowledgement is no longer used: remove it from ACKNOWLEDGED"


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    """The plugins are wired so that a finding stops synthesis (and so `cdk deploy`), not just prints."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_sqs as sqs

    from infra.nag import add_nag_checks

    app = App(outdir=str(tmp_path))
    sqs.Queue(Stack(app, "Careless"), "PlainQueue")  # no TLS enforcement, no dead-letter queue
    add_nag_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert "AwsSolutions-SQS4" in rules


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_cfn_lint_finds_no_error(stage: str) -> None:
    from cfnlint.api import lint_file

    # cfn-lint reads its own config from the working directory; a clean one keeps the result reproducible.
    os.environ.pop("CFN_LINT_CONFIG", None)
    template = synth().template_path(stage)
    findings = [m for m in lint_file(template) if m.rule.id not in CFN_LINT_ALLOWED]
    assert not [f for f in findings if f.rule.id.startswith("E")], "\n".join(map(str, findings))
    assert not findings, "\n".join(map(str, findings))


def test_cfn_lint_finds_no_error_with_every_optional_resource(tmp_path: Path) -> None:
    from cfnlint.api import lint_file

    registry = tmp_path / "clubs.json"
    registry.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "name": "lint-club",
                        "club_ids": [9],
                        "base_url": "https://lint.example.org",
                        "auth": {"type": "basic", "secret": "cappi/stage/clubs/lint-club"},
                    }
                ]
            }
        )
    )
    app = synth(
        **{
            "cappi:stages": "stage",
            "stage:clubs_file": str(registry),
            "stage:alarm_email": "ops@example.org",
            "stage:domain_name": "api.example.org",
            "stage:certificate_arn": CERTIFICATE,
        }
    )
    findings = [m for m in lint_file(app.template_path("stage")) if m.rule.id not in CFN_LINT_ALLOWED]
    assert not findings, "\n".join(map(str, findings))
