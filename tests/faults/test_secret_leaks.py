"""The session-wide secret-leak check itself: it catches a registered secret on every log channel, names the test
and the secret but never prints the value, allows only the intended console banner, and knows every test secret.

Each scenario runs a tiny pytest session in a subprocess with the real check registered, as tests/conftest.py does.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.secrets_registry import SECRETS

from local.clients import DEMO_CLIENT_SECRET
from local.demo_clubs.demo import DemoClubs

TESTS = Path(__file__).resolve().parents[1]
CANARY = "leak-check self-test secret"

CONFTEST = """
from support.log_leak_check import register

def pytest_configure(config):
    register(config)
"""

INNER_TESTS = """
import logging
import sys
from support.secrets_registry import SECRETS

VALUE = SECRETS["leak-check self-test secret"]

def test_clean():
    logging.getLogger("inner").warning("nothing to see")
    print("nothing to see either")

def test_std_logging():
    logging.getLogger("inner").error("token is %s", VALUE)

def test_quiet_logger_without_handlers():
    quiet = logging.getLogger("inner.quiet")
    quiet.propagate = False
    quiet.handlers = [logging.NullHandler()]
    quiet.setLevel(logging.INFO)
    quiet.info("fetched", extra={"url": f"https://club.example/{VALUE}/calls"})

def test_powertools_json():
    from aws_lambda_powertools import Logger
    log = Logger(service="inner", stream=sys.stdout)
    log.append_keys(header=VALUE)
    log.info("poll done")

def test_printed_line():
    print(f"debug: {VALUE}")

def test_local_mode_log_file(tmp_path):
    logs = tmp_path / "state-1" / "logs"
    logs.mkdir(parents=True)
    (logs / "cappi.log").write_text('{"message": "GET /' + VALUE + '/calls"}\\n')

def test_intended_banner():
    secret = SECRETS["local issuer demo client secret"]
    print(f"    client_id cappi-demo-tester  client_secret {secret}  scopes read:callids")

def test_unintended_demo_secret_in_a_log():
    logging.getLogger("inner").warning("client_secret=%s", SECRETS["local issuer demo client secret"])
"""


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    root = tmp_path_factory.mktemp("leak-check-session")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_inner.py").write_text(INNER_TESTS)
    (root / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA", "-q", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outcomes(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    found = {}
    for line in run.stdout.splitlines():
        for outcome in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(f"{outcome} ") and "test_inner.py::" in line:
                found[line.split("::", 1)[1].split()[0]] = outcome
    return found


def test_the_check_fails_the_session_on_every_log_channel(inner_run: subprocess.CompletedProcess[str]) -> None:
    assert inner_run.returncode == 1, inner_run.stdout + inner_run.stderr
    results = outcomes(inner_run)
    assert results == {
        "test_clean": "PASSED",
        "test_std_logging": "FAILED",
        "test_quiet_logger_without_handlers": "FAILED",
        "test_powertools_json": "FAILED",
        "test_printed_line": "FAILED",
        "test_local_mode_log_file": "ERROR",  # found once the test's tmp_path is torn down
        "test_intended_banner": "PASSED",
        "test_unintended_demo_secret_in_a_log": "FAILED",
    }, inner_run.stdout


def test_a_finding_names_the_test_and_the_secret_never_the_value(inner_run: subprocess.CompletedProcess[str]) -> None:
    out = inner_run.stdout + inner_run.stderr
    assert f"secret {CANARY!r} reached a log record of logger 'inner.quiet' during " in out
    assert "test_inner.py::test_quiet_logger_without_handlers" in out
    assert "local mode's log file cappi.log" in out
    assert "registered test secrets in logs" in out  # the summary at the end of the session
    for value in (SECRETS[CANARY], SECRETS["local issuer demo client secret"]):
        assert value not in out


def test_every_secret_the_tests_use_is_registered() -> None:
    """Constants named like secrets in the test modules, and local mode's demo secrets, are all in the registry."""
    registered = set(SECRETS.values())
    demo = set(DemoClubs().secrets().values()) | {DEMO_CLIENT_SECRET}
    assert demo <= registered
    for module in sorted((TESTS / "integration").glob("test_*.py")):
        tree = ast.parse(module.read_text())
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
                continue
            value = node.value.value
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            secret_like = any(w in n for n in names for w in ("SECRET", "PASSWORD", "TOKEN", "API_KEY"))
            if not secret_like or not isinstance(value, str) or value.startswith("/") or "/" in value:
                continue  # paths and secret *names* (cappi/test/clubs/...) are not values
            assert any(secret in value for secret in registered), f"{module.name}: {names} is not registered"
