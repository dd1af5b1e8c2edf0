"""Every secret value the tests and local mode's demo clubs use, by name, for the session-wide leak check.

The check (`support.log_leak_check`, registered by tests/conftest.py) fails any test during which one of these
values reaches a log: a logging record of any logger, a formatted line (Powertools' JSON included), pytest's
captured output, or local mode's log files. A test that introduces a secret adds it here; `tests/faults/
test_secret_leaks.py` holds the test modules' own constants to this list, so a new one cannot be forgotten.

Only values distinctive enough never to appear by chance belong here (not `tok-1`), so a finding is always real.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

# local mode's demo clubs (local/demo_clubs/demo.py) and its demo tester client (local/clients.py)
DEMO_SMALL_BEARER = "local-demo-small-bearer-token"
DEMO_MEDIUM_API_KEY = "local-demo-medium-api-key"
DEMO_LARGE_CLIENT_SECRET = "local-demo-large-client-secret"
DEMO_CLIENT_SECRET = "cappi-demo-secret"

# the club client's tests (tests/integration/test_club_client.py) and the hostile-server suite
BEARER_SECRET = "Zq9-BEARER-SECRET-7xK"
API_KEY_SECRET = "ak-API-KEY-SECRET-31"
BASIC_PASSWORD = "PW-BASIC-SECRET-42"
CLIENT_SECRET = "CS-CLIENT-SECRET-99"
# tests/faults/test_echoed_secrets.py: every character JSON, HTML and URLs like to escape
ECHOED_BEARER_SECRET = "Echo+Secret/Val&ue=9f3Q~zx<EOS>"

SECRETS: dict[str, str] = {
    "demo-small bearer token": DEMO_SMALL_BEARER,
    "demo-medium API key": DEMO_MEDIUM_API_KEY,
    "demo-large OAuth2 client secret": DEMO_LARGE_CLIENT_SECRET,
    "local issuer demo client secret": DEMO_CLIENT_SECRET,
    "club client bearer secret": BEARER_SECRET,
    "club client API key": API_KEY_SECRET,
    "club client basic password": BASIC_PASSWORD,
    "club client basic credential (base64)": base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode(),
    "club client OAuth2 client secret": CLIENT_SECRET,
    "echoed bearer secret": ECHOED_BEARER_SECRET,
    "ingest test bearer secret": "s3cr3t-Token-Value-4711",  # tests/integration/test_ingest.py
    "cappi-client test client secret": "s3cret-never-stored-9f2c",  # tests/integration/test_cappi_client.py
    "check-feed test token": "club-Secret-Token-0042",  # tests/integration/test_cli_check_feed.py
    "gateway test bearer value": "secret-token-do-not-echo",  # tests/integration/test_local_gateway.py
    "leak-check self-test secret": "LEAK-CHECK-CANARY-5e1f",  # tests/faults/test_secret_leaks.py
    "smoke test access token": "smoke-Access-Token-7c41",  # tests/integration/test_cli_smoke.py
    "smoke test client secret": "smoke-Client-Secret-3b9e",  # tests/integration/test_cli_smoke.py
}


@dataclass(frozen=True)
class Intended:
    """A place where a registered secret is shown on purpose: never a log, only a line printed for a person."""

    secret: str  # a key of SECRETS
    line: re.Pattern[str]  # the whole printed line must match
    reason: str


INTENDED: tuple[Intended, ...] = (
    Intended(
        "local issuer demo client secret",
        # local/console.py: the start-up banner tells the person running `make run` how to get a token.
        re.compile(r"\s*client_id \S+\s+client_secret \S+\s.*"),
        "local mode's console banner prints the demo tester client's credentials so a developer can get a token",
    ),
    Intended(
        "local issuer demo client secret",
        re.compile(r".*curl .*client_secret.*"),
        "local mode's console banner prints a ready-to-run token request for the demo client",
    ),
)
