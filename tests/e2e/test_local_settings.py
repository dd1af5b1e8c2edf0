"""Local mode's first meeting: a bad setting is one line naming the variable and the fix, and the token and query
commands print at start even when no poll has published anything (yet)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.club_servers import respond, serve
from support.local_mode import ROOT, free_port

pytestmark = pytest.mark.timeout(240)

SECRET = "never-printed-4b7e"


def one_client(**fields: Any) -> dict[str, Any]:
    return {"clients": [{"client_id": "app", "client_secret": SECRET, **fields}]}


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),  # missing
        ("{not json", "not valid JSON"),
        ("\xff\xfe", "not UTF-8 text"),  # not text: written as latin-1 bytes below
        ("[]", 'the top level must be an object with a "clients" array'),
        (json.dumps({"clients": []}), '"clients" is empty'),
        (json.dumps({"clients": ["app"]}), "clients[0]: must be an object"),
        (json.dumps(one_client(scopes="read:callids")), "field 'scopes'"),
        (json.dumps(one_client(clubs=[1000])), "field 'clubs'"),
        (json.dumps({"clients": [{"client_id": "app", "client_secret": ""}]}), "field 'client_secret'"),
        (json.dumps(one_client(colour="red")), "field 'colour': unknown field"),
    ],
)
def test_a_bad_clients_file_is_one_line_naming_the_variable_and_the_fix(
    tmp_path: Path, content: str | None, said: str
) -> None:
    path = tmp_path / "clients.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    env = {
        **os.environ,
        "CAPPI_PORT": str(free_port()),
        "CAPPI_STATE_DIR": str(tmp_path / "state"),
        "CAPPI_CLIENTS_FILE": str(path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    lines = output.splitlines()
    assert len(lines) == 1, output  # no traceback
    assert lines[0].startswith(f"cappi local: CAPPI_CLIENTS_FILE={path}: ")
    assert said in lines[0]
    assert "unset CAPPI_CLIENTS_FILE" in lines[0]  # the fix
    assert SECRET not in output
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())  # nothing started


REGISTRY_WITH_HTTP = {"sources": [{"name": "x", "club_ids": [1], "base_url": "http://example.org"}]}


@pytest.mark.parametrize(
    ("variable", "value", "file", "said"),
    [
        ("CAPPI_PORT", "abc", None, "must be a port number"),
        ("CAPPI_INGEST_INTERVAL", "0", None, "must be at least 1"),
        ("CAPPI_FRESH", "maybe", None, "must be 1 or 0"),
        ("CAPPI_ISSUER", "https://no-slash.example", None, "must end with '/'"),
        ("CAPPI_STATE_DIR", "/dev/null/state", None, "cannot create /dev/null/state/logs"),
        ("CAPPI_SECRETS_FILE", None, "{not json", "not a readable JSON file"),
        ("CAPPI_SECRETS_FILE", None, "[]", "must be a JSON object"),
        ("CAPPI_SECRETS_FILE", None, '{"a": 5}', "secret 'a' must be a string or an object"),
        ("CAPPI_CLUBS_FILE", None, "{not json", "not valid JSON"),
        ("CAPPI_CLUBS_FILE", None, "[]", 'an object with a "sources" array'),
        ("CAPPI_CLUBS_FILE", None, json.dumps(REGISTRY_WITH_HTTP), "field 'base_url': must use https://"),
    ],
)
def test_every_bad_local_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str | None, file: str | None, said: str
) -> None:
    if file is not None:
        value = str(tmp_path / "setting.json")
        Path(value).write_text(file)
    assert value is not None
    env = {**os.environ, "CAPPI_PORT": "0", "CAPPI_STATE_DIR": str(tmp_path / "state"), variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    (line,) = output.splitlines()
    assert line.startswith(f"cappi local: {variable}")
    assert said in line
    if file is not None:  # a file: the fix is named too
        assert "fix the file" in line
        assert f"unset {variable}" in line


def test_a_custom_registry_whose_first_poll_fails_still_prints_the_commands(start: Any, tmp_path: Path) -> None:
    with serve() as club:
        club.route("/feed/service/calls/status", respond(503, b"down for maintenance"))
        registry = tmp_path / "clubs.json"
        registry.write_text(
            json.dumps({"sources": [{"name": "down-club", "club_ids": [77], "base_url": club.base_url + "/feed"}]})
        )
        local = start(CAPPI_CLUBS_FILE=str(registry))
        local.wait_for(r"ingest down-club: ")  # the first poll, refused
        output = local.output()
        assert f"curl -s -X POST http://127.0.0.1:{local.port}/oauth/token" in output
        assert f"'http://127.0.0.1:{local.port}/api/CallData/OpenCalls/77/<TechId>/ids'" in output
        assert "cappi-client open-calls 77 '<TechId>' --env local" in output
        local.process.send_signal(signal.SIGINT)
        assert local.process.wait(timeout=60) == 0
