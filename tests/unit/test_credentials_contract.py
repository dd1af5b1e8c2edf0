"""Where credentials live: the parameter of each registry secret name, and the bounded grants that read them."""

from __future__ import annotations

import pytest

from cappi.contracts.credentials import (
    MAX_PARAMETER_PATTERNS,
    CredentialLayoutError,
    parameter_arn,
    parameter_name,
    parameter_patterns,
)


def test_the_parameter_is_slash_plus_the_registry_name() -> None:
    assert parameter_name("cappi/stage/clubs/aaa") == "/cappi/stage/clubs/aaa"
    arn = parameter_arn("/cappi/stage/clubs/*", partition="aws", region="eu-west-1", account="123456789012")
    assert arn == "arn:aws:ssm:eu-west-1:123456789012:parameter/cappi/stage/clubs/*"


def test_a_thousand_sources_in_one_directory_are_one_grant() -> None:
    names = [f"cappi/stage/clubs/club-{n:04d}" for n in range(1000)]
    assert parameter_patterns(names) == ("/cappi/stage/clubs/*",)


def test_a_name_alone_in_its_directory_or_at_the_root_is_granted_by_itself() -> None:
    names = ["cappi/stage/clubs/a", "cappi/stage/clubs/b", "cappi/stage/mtls/cert", "token", "other"]
    assert parameter_patterns(names) == ("/cappi/stage/clubs/*", "/cappi/stage/mtls/cert", "/other", "/token")
    assert "/*" not in parameter_patterns([f"t{n}" for n in range(MAX_PARAMETER_PATTERNS)])  # never the whole account


def test_names_scattered_over_too_many_directories_are_refused_with_the_fix() -> None:
    names = [f"dir{n}/a" for n in range(MAX_PARAMETER_PATTERNS + 1)] + [f"dir{n}/b" for n in range(21)]
    with pytest.raises(CredentialLayoutError, match=rf"need 21 grants .* at most {MAX_PARAMETER_PATTERNS}.*cappi/"):
        parameter_patterns(names)
    assert len(parameter_patterns(names[:MAX_PARAMETER_PATTERNS])) == MAX_PARAMETER_PATTERNS
