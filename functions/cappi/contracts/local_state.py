"""Where a running local mode says it is: `<CAPPI_STATE_DIR>/endpoints.json`, written at start and removed at a
clean stop, read by `cappi --local` and by `cappi-client --env local` so nobody has to type a port.

cappi-client (clients/python) may not import this repository: it reads the file by its own copy of the names below
(`CLIENT_KEYS`, the file name, the default directory), and tests/unit/test_cappi_client_contract.py holds the two
copies, and a document `endpoints_document` builds, to the same format."""

from __future__ import annotations

ENDPOINTS_FILE = "endpoints.json"
DEFAULT_STATE_DIR = ".local"
# Keys: api (base URL), dynamodb (moto's URL), region, table, clubs_file, ingest_interval_s, stale_after_s, pid,
# credentials (the operator's keys: local mode enforces IAM) and ingest_credentials (`cappi poll` runs as ingest);
# token_url (the local issuer's, or the trusted external issuer's) and audience (what the gateway's authorizer wants).

CLIENT_KEYS = ("api", "token_url", "audience")  # what a tester app needs: base URL, token endpoint, token audience
STALE_POLLS = 3  # local mode calls a club stale after this many intervals without a good poll (as the stages do)


def endpoints_document(*, api: str, token_url: str, audience: str, **rest: object) -> dict[str, object]:
    """The endpoints file's content: the keys a client reads first, then local mode's own."""
    return {"api": api, "token_url": token_url, "audience": audience, **rest}
