"""`cappi secrets set` reads the credential from a prompt without echo (getpass) on a terminal, from stdin when
piped, never from an argument, and stores it in the SSM SecureString parameter "/" + the registry's secret name,
standard tier up to 4 KB and advanced above, saying which; `cappi secrets migrate` copies values from Secrets Manager
(where earlier deploys kept them) without printing any. Against moto's SSM and Secrets Manager."""

from __future__ import annotations

import io
from typing import Any

import pytest

from cappi.domain.registry import parse_registry
from cli.credentials import StageCredentials, migrate, set_secret
from cli.target import TargetError

REGISTRY = parse_registry(
    {
        "sources": [
            {
                "name": "aaa",
                "club_ids": [1],
                "base_url": "https://a.example",
                "auth": {"type": "bearer", "secret": "s/aaa"},
            },
            {"name": "open", "club_ids": [2], "base_url": "https://b.example"},
            {
                "name": "cert",
                "club_ids": [3],
                "base_url": "https://c.example",
                "auth": {"type": "mtls", "secret": "s/cert", "header_auth": {"type": "bearer", "secret": "s/ctoken"}},
            },
            {
                "name": "old",
                "club_ids": [4],
                "base_url": "https://d.example",
                "auth": {"type": "bearer", "secret": "s/old"},
                "enabled": False,
            },
        ]
    }
)
LONG_PEM = '{"certificate": "' + "C" * 5000 + '", "key": "K"}'  # an mTLS chain past the standard tier's 4 KB


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def aws(moto_aws: None) -> StageCredentials:
    import boto3

    return StageCredentials("test", REGISTRY, lambda service: boto3.client(service, region_name="us-east-1"))


def parameter(aws: StageCredentials, name: str) -> dict[str, Any]:
    ssm = aws.client("ssm")
    found = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    (described,) = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    return {"value": found["Value"], "type": found["Type"], "tier": described["Tier"]}


def test_on_a_terminal_the_value_comes_from_getpass(aws: StageCredentials, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def no_echo(prompt: str) -> str:
        prompts.append(prompt)
        return "tok-1"

    monkeypatch.setattr("getpass.getpass", no_echo)
    stored = set_secret(aws, "aaa", stdin=Terminal())
    assert (stored.parameter, stored.tier) == ("/s/aaa", "Standard")
    assert parameter(aws, "/s/aaa") == {"value": "tok-1", "type": "SecureString", "tier": "Standard"}
    assert len(prompts) == 1
    assert "tok-1" not in prompts[0]
    assert "/s/aaa" in prompts[0]


def test_piped_the_value_is_stdin_without_its_newline_and_setting_again_rotates(aws: StageCredentials) -> None:
    set_secret(aws, "aaa", stdin=io.StringIO("tok-2\n"))
    assert parameter(aws, "/s/aaa")["value"] == "tok-2"
    stored = set_secret(aws, "aaa", stdin=io.StringIO("tok-3\n"))
    assert parameter(aws, "/s/aaa")["value"] == "tok-3"
    assert "tok-3" not in stored.describe()


def test_a_value_past_4_kb_goes_to_the_advanced_tier_and_says_so(aws: StageCredentials) -> None:
    stored = set_secret(aws, "cert", stdin=io.StringIO(LONG_PEM))
    assert parameter(aws, "/s/cert") == {"value": LONG_PEM, "type": "SecureString", "tier": "Advanced"}
    assert "advanced tier, $0.05 a month" in stored.describe()
    assert "over the standard tier's 4096" in stored.describe()
    # Parameter Store cannot make an advanced parameter standard again: a short value keeps the tier, and says why.
    shorter = set_secret(aws, "cert", stdin=io.StringIO('{"certificate": "C", "key": "K"}'))
    assert (shorter.tier, parameter(aws, "/s/cert")["tier"]) == ("Advanced", "Advanced")
    assert "cannot make it standard again" in shorter.describe()


@pytest.mark.parametrize(
    ("source", "stdin", "message"),
    [
        ("open", "x", "needs no secret"),
        ("aaa", "", "nothing was stored"),
        ("zzz", "x", "no club source"),
        ("aaa", "x" * 8193, "longer than Parameter Store's 8192"),
    ],
)
def test_refusals_store_nothing(aws: StageCredentials, source: str, stdin: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as refused:
        set_secret(aws, source, stdin=io.StringIO(stdin))
    assert aws.client("ssm").describe_parameters()["Parameters"] == []
    if stdin:
        assert stdin not in str(refused.value)


def test_migrate_copies_from_secrets_manager_keeps_newer_values_and_names_what_is_missing(
    aws: StageCredentials,
) -> None:
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="s/aaa", SecretString="old-aaa-value")
    secrets.create_secret(Name="s/cert", SecretString=LONG_PEM)
    secrets.create_secret(Name="s/old", SecretString="old-disabled-value")
    secrets.create_secret(Name="s/ctoken")  # as the old stack made them: no value until ops set one
    set_secret(aws, "aaa", stdin=io.StringIO("newer-aaa-value"))  # set in SSM already: migrate keeps it

    found = {m.secret: m for m in migrate(aws)}

    assert {name: m.outcome for name, m in found.items()} == {
        "s/aaa": "kept",
        "s/cert": "copied",
        "s/ctoken": "missing",
        "s/old": "copied",
    }
    assert parameter(aws, "/s/aaa")["value"] == "newer-aaa-value"
    assert parameter(aws, "/s/cert") == {"value": LONG_PEM, "type": "SecureString", "tier": "Advanced"}
    assert parameter(aws, "/s/old")["value"] == "old-disabled-value"
    assert found["s/ctoken"].needed and not found["s/old"].needed
    assert "cappi secrets set" in found["s/ctoken"].line()
    printed = "\n".join(m.line() for m in found.values())
    for value in ("old-aaa-value", "newer-aaa-value", "CCCC", "old-disabled-value"):
        assert value not in printed

    again = {m.secret: m.outcome for m in migrate(aws, overwrite=True)}
    assert again["s/aaa"] == "copied"
    assert parameter(aws, "/s/aaa")["value"] == "old-aaa-value"


def test_migrate_exits_1_while_an_enabled_sources_credential_is_missing(
    aws: StageCredentials, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    monkeypatch.setattr(main, "stage_credentials", lambda _stage, _region: aws)
    aws.client("secretsmanager").create_secret(Name="s/aaa", SecretString="old-aaa-value")
    assert main.main(["secrets", "migrate", "--stage", "stage"]) == 1
    for source in ("cert", "aaa"):
        set_secret(aws, source, stdin=io.StringIO(f"{source}-value"))
    aws.client("secretsmanager").create_secret(Name="s/ctoken", SecretString="ctoken-value")
    assert main.main(["secrets", "migrate", "--stage", "stage"]) == 0  # s/old is missing, but disabled
    out = capsys.readouterr()
    assert "/s/ctoken: copied" in out.out
    for value in ("old-aaa-value", "aaa-value", "cert-value", "ctoken-value"):
        assert value not in out.out + out.err


def test_the_command_has_no_argument_for_the_value() -> None:
    from cli.main import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["secrets", "set", "aaa", "tok-3"])
