"""`make deploy` runs `cappi preflight` on the template it just synthesized and deploys nothing when preflight fails.

The CDK CLI is a fake that records its arguments (and, for `synth`, writes a template into the out dir), the
stamps are emptied so make installs nothing, and AWS points at no credentials at all: preflight exits 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.target import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

TEMPLATE = {
    "Resources": {
        "Auth0": {
            "Type": "AWS::ApiGatewayV2::Authorizer",
            "Properties": {
                "AuthorizerType": "JWT",
                "JwtConfiguration": {"Issuer": "https://tenant.auth0.com/", "Audience": ["https://api.example.org"]},
            },
        },
        "Query": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"FunctionName": "cappi-stage-query", "ReservedConcurrentExecutions": 100},
        },
    }
}


def fake_cdk(tmp_path: Path, out: Path) -> tuple[Path, Path]:
    """A `cdk` that appends its arguments to a log; its `synth` copies a template into `out`."""
    log, template = tmp_path / "cdk-calls.txt", tmp_path / "template.json"
    template.write_text(json.dumps(TEMPLATE))
    cdk = tmp_path / "cdk"
    cdk.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        f'if [ "$1" = synth ]; then mkdir -p "{out}" && cp "{template}" "{out}/Cappi-stage.template.json"; fi\n'
    )
    cdk.chmod(0o755)
    return cdk, log


def no_aws_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MAKEFLAGS", "MFLAGS")}
    env.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",  # so preflight gets as far as asking for credentials
        }
    )
    return env


def make_deploy(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "cdk.out"
    cdk, log = fake_cdk(tmp_path, out)
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "deploy",
        f"CDK={cdk}",
        f"CDK_OUT={out}",
        "STAMP=",  # nothing to install: the virtualenv running this test is the one to use
        "NODE_STAMP=",  # and no npm
        f"BIN={Path(sys.executable).parent}",
        *extra,
    ]
    result = subprocess.run(command, env=no_aws_environment(), capture_output=True, text=True, timeout=180, check=False)
    return result, log


def test_a_failing_preflight_stops_the_deploy(tmp_path: Path) -> None:
    result, log = make_deploy(tmp_path, "STAGE=stage")
    calls = log.read_text().splitlines()
    assert result.returncode != 0, result.stdout + result.stderr
    assert len(calls) == 1, calls
    assert calls[0].startswith("synth --quiet -c cappi:stages=stage")
    assert f"--output {tmp_path / 'cdk.out'}" in calls[0]
    assert not any(c.startswith("deploy") for c in calls)
    assert "no AWS credentials" in result.stderr
    assert "preflight stopped the deploy of Cappi-stage" in result.stderr
    assert "smoke" not in result.stdout + result.stderr


def test_no_stage_no_cdk(tmp_path: Path) -> None:
    result, log = make_deploy(tmp_path)
    assert result.returncode != 0
    assert "Say which stage" in result.stderr
    assert not log.exists()
