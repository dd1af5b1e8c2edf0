"""`cappi secrets set` reads the credential from a prompt without echo (getpass) on a terminal, from stdin when
piped, never from an argument, and stores it in the secret the registry names."""

from __future__ import annotations

import io

import pytest

from cappi.domain.registry import parse_registry
from cli.operations import set_secret
from cli.target import Target, TargetError

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
        ]
    }
)


class FakeSecrets:
    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}

    def put_secret_value(self, SecretId: str, SecretString: str) -> None:
        self.stored[SecretId] = SecretString


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def target(secrets: FakeSecrets) -> Target:
    return Target("test", table=None, registry=REGISTRY, stale_after_s=1800, client=lambda _service: secrets)  # type: ignore[arg-type]


def test_on_a_terminal_the_value_comes_from_getpass(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def no_echo(prompt: str) -> str:
        prompts.append(prompt)
        return "tok-1"

    monkeypatch.setattr("getpass.getpass", no_echo)
    secrets = FakeSecrets()
    assert set_secret(target(secrets), "aaa", stdin=Terminal()) == "s/aaa"
    assert secrets.stored == {"s/aaa": "tok-1"}
    assert len(prompts) == 1
    assert "tok-1" not in prompts[0]


def test_piped_the_value_is_stdin_without_its_newline() -> None:
    secrets = FakeSecrets()
    set_secret(target(secrets), "aaa", stdin=io.StringIO("tok-2\n"))
    assert secrets.stored == {"s/aaa": "tok-2"}


@pytest.mark.parametrize(
    ("source", "stdin", "message"),
    [("open", "x", "needs no secret"), ("aaa", "", "nothing was stored"), ("zzz", "x", "no club source")],
)
def test_refusals_store_nothing(source: str, stdin: str, message: str) -> None:
    secrets = FakeSecrets()
    with pytest.raises(TargetError, match=message):
        set_secret(target(secrets), source, stdin=io.StringIO(stdin))
    assert secrets.stored == {}


def test_the_command_has_no_argument_for_the_value() -> None:
    from cli.main import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["secrets", "set", "aaa", "tok-3"])
