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
