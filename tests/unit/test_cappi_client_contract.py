"""cappi-client (clients/python) keeps its own copy of CAPPI's contract, since it may not import CAPPI: these tests
fail the day the two drift apart (a new environment URL, a changed ID rule, another body shape), and the day the
package starts importing something from this repository or depending on more than `requests`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cappi_client
from cappi.contracts import api, local_state
from cappi.domain import ids as server_ids
from cappi.domain import query
from cappi_client import environments, ids

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "python"
REPO_TOP_LEVEL = {"cappi", "local", "tools", "cli", "infra", "app", "bench", "support", "tests"}


def test_deployed_environments_equal_the_servers() -> None:
    assert set(environments.ENVIRONMENTS) == set(api.ENVIRONMENTS)
    for name, server in api.ENVIRONMENTS.items():
        client = environments.ENVIRONMENTS[name]
        assert (client.base_url, client.token_url, client.audience) == (
            server.base_url,
            server.token_url,
            server.audience,
        )


def test_local_environment_follows_cappi_port() -> None:
    assert environments.local(env={}).base_url == "http://127.0.0.1:3000"
    local = environments.local(env={"CAPPI_PORT": "4123"})
    assert (local.base_url, local.token_url, local.audience) == (
        "http://127.0.0.1:4123",
        "http://127.0.0.1:4123/oauth/token",
        "http://127.0.0.1:4123",
    )


def test_the_route_equals_the_servers() -> None:
    assert environments.ROUTE == api.ROUTE
    env = environments.ENVIRONMENTS["prod"]
    assert env.url_for(212, "AB12") == env.base_url + api.path_for(212, "AB12")


def test_id_limits_equal_the_servers() -> None:
    assert ids.MAX_CLUB_ID == server_ids.MAX_CLUB_ID
    assert ids.MAX_TECH_ID_LEN == server_ids.MAX_TECH_ID_LEN
    assert ids.TECH_ID_TRIMMED == server_ids.TECH_ID_TRIMMED


SAMPLES = [
    "", "0", "4", "004", "212", "999", "1000", "1234", "a1", "12a", " 12", "12 ", "-1", "+1", "1.0", "١٢", "１２",
    "AB12", "ab12", "aB1", "A" * 32, "A" * 33, "AB 12", " AB12", "AB12 ", "AB-12", "AB_12", "ÅB12", "ß", "AB\n",
    "AB12/..", "%41", "\x00", " ", "\t\n\r\f\v", " \tab12\r\n", "\vAB12\f", " " + "A" * 32 + " ", " " + "A" * 33,
    "\x1fAB12\x1e", "\x1cAB12", "AB12\x1d", "\x85AB12", "\xa0AB12", "AB12\u2028", "\u3000AB12", "\u200bAB12",
    " 212", "212\n", "\t4",
]  # fmt: skip


def server_path_club_id(raw: str) -> int | None:
    """The server's rule for a path's ClubId (`cappi.domain.ids`), None for any Reason."""
    checked = server_ids.path_club_id(raw)
    return None if isinstance(checked, server_ids.Reason) else checked


def server_path_tech_id(raw: str) -> str | None:
    checked = server_ids.path_tech_id(raw)
    return None if isinstance(checked, server_ids.Reason) else checked


@pytest.mark.parametrize("raw", SAMPLES)
def test_club_id_rule_equals_the_servers_path_rule(raw: str) -> None:
    expected = server_path_club_id(raw)
    try:
        got: int | None = ids.club_id(raw)
    except cappi_client.InvalidClubId:
        got = None
    assert got == expected


@pytest.mark.parametrize("raw", SAMPLES)
def test_tech_id_rule_equals_the_servers_path_rule(raw: str) -> None:
    expected = server_path_tech_id(raw)
    try:
        assert query.parse_path("1", raw)[1] == expected
    except query.MalformedRequest as refused:
        assert refused.code == "invalid_tech_id"
        assert expected is None
    try:
        got: str | None = ids.tech_id(raw)
    except cappi_client.InvalidTechId as refused:
        assert refused.code == "invalid_tech_id"
        got = None
    assert got == expected


@settings(max_examples=300)
@given(
    st.text(max_size=40)
    | st.from_regex(r"[ \t\n\r\f\v\x1c-\x1f\x85\xa0]*[0-9A-Za-z]{0,34}[ \t\x1f\xa0]*", fullmatch=True)
)
def test_property_both_id_rules_equal_the_servers(raw: str) -> None:
    try:
        got_tech: str | None = ids.tech_id(raw)
    except cappi_client.InvalidTechId:
        got_tech = None
    assert got_tech == server_path_tech_id(raw)
    try:
        got_club: int | None = ids.club_id(raw)
    except cappi_client.InvalidClubId:
        got_club = None
    assert got_club == server_path_club_id(raw)


@pytest.mark.parametrize("calls", [[], ["8679"], ["8655R", "8679", "9999"]])
@pytest.mark.parametrize("nested", [False, True])
def test_every_body_the_server_sends_parses(calls: list[str], nested: bool) -> None:
    body = query.response_body(calls, nested_single=nested)
    assert list(cappi_client.parse_call_ids(body)) == calls


def validate(club: str, tech: str) -> tuple[int, str]:
    return ids.club_id(club), ids.tech_id(tech)


@pytest.mark.parametrize(("club", "tech"), [("1234", "AB12"), ("1", "AB 12"), ("x", "")])
def test_error_codes_of_invalid_ids_equal_the_servers(club: str, tech: str) -> None:
    with pytest.raises(query.MalformedRequest) as server:
        query.parse_path(club, tech)
    with pytest.raises(cappi_client.InvalidId) as client:
        validate(club, tech)
    assert client.value.code == server.value.code


def test_the_package_imports_nothing_from_the_repository(tmp_path: Path) -> None:
    code = (
        "import sys, cappi_client, cappi_client.cli\n"
        f"repo = {sorted(REPO_TOP_LEVEL)!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in repo))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_package_source_imports_only_the_standard_library_and_requests() -> None:
    allowed = set(sys.stdlib_module_names) | {"requests", "cappi_client"}
    found = set()
    for path in (PACKAGE / "cappi_client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    assert found - allowed == set()
    assert "requests" in found


def test_requests_is_the_only_runtime_dependency() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert project["name"] == "cappi-client"
    assert project["requires-python"] == ">=3.11"
    assert [d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]] == ["requests"]
    assert project["scripts"] == {"cappi-client": "cappi_client.cli:main"}


# --- the running local mode's endpoints file: written by local/run.py, read by `cappi-client --env local` ---


def test_the_endpoints_file_names_are_the_same_on_both_sides() -> None:
    assert environments.LOCAL_ENDPOINTS_FILE == local_state.ENDPOINTS_FILE
    assert environments.LOCAL_STATE_DIR == local_state.DEFAULT_STATE_DIR
    assert local_state.CLIENT_KEYS == ("api", "token_url", "audience")


def write_endpoints(state_dir: Path, **overrides: object) -> Path:
    document = local_state.endpoints_document(
        api="http://127.0.0.1:4567",
        token_url="http://127.0.0.1:4567/oauth/token",
        audience="https://audience.example",
        pid=1,
        dynamodb="http://127.0.0.1:9",
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / local_state.ENDPOINTS_FILE
    path.write_text(json.dumps({**document, **overrides}))
    return path


def test_the_client_reads_what_local_mode_writes(tmp_path: Path) -> None:
    write_endpoints(tmp_path / "state")
    found = environments.running_local(env={"CAPPI_STATE_DIR": str(tmp_path / "state")})
    assert (found.name, found.base_url, found.token_url, found.audience) == (
        "local",
        "http://127.0.0.1:4567",
        "http://127.0.0.1:4567/oauth/token",
        "https://audience.example",
    )


def test_without_cappi_state_dir_the_client_looks_in_dot_local_here_and_above(tmp_path: Path) -> None:
    write_endpoints(tmp_path / "checkout" / local_state.DEFAULT_STATE_DIR)
    deeper = tmp_path / "checkout" / "clients" / "python"
    deeper.mkdir(parents=True)
    assert environments.running_local(env={}, cwd=deeper).base_url == "http://127.0.0.1:4567"
    # CAPPI_PORT, when set, wins: it is what the README told people to export before.
    assert environments.running_local(env={"CAPPI_PORT": "4123"}, cwd=deeper).base_url == "http://127.0.0.1:4123"


def test_no_running_local_mode_says_which_variables_to_set(tmp_path: Path) -> None:
    with pytest.raises(cappi_client.ConfigurationError) as caught:
        environments.running_local(env={}, cwd=tmp_path)
    message = str(caught.value)
    assert "local mode not found" in message
    assert "make run" in message
    assert "CAPPI_STATE_DIR" in message
    assert "CAPPI_PORT" in message
    with pytest.raises(cappi_client.ConfigurationError, match=f"CAPPI_STATE_DIR={tmp_path / 'nowhere'}"):
        environments.running_local(env={"CAPPI_STATE_DIR": str(tmp_path / "nowhere")})


@pytest.mark.parametrize("content", ["{not json", "[]", '{"api": 5}', '{"token_url": "http://x/oauth/token"}'])
def test_an_unreadable_endpoints_file_is_a_configuration_error(tmp_path: Path, content: str) -> None:
    (tmp_path / local_state.ENDPOINTS_FILE).write_text(content)
    with pytest.raises(cappi_client.ConfigurationError, match="CAPPI_PORT"):
        environments.running_local(env={"CAPPI_STATE_DIR": str(tmp_path)})


def test_the_command_without_a_running_local_mode_exits_2_naming_the_variables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CAPPI_PORT", "CAPPI_STATE_DIR")}
    env.update(CAPPI_CLIENT_ID="x", CAPPI_CLIENT_SECRET="y", PYTHONPATH=str(PACKAGE))
    command = [sys.executable, "-m", "cappi_client", "open-calls", "212", "AB12", "--env", "local"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1  # one line, no traceback
    assert "CAPPI_STATE_DIR" in done.stderr
    assert "CAPPI_PORT" in done.stderr
