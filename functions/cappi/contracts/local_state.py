"""Where a running local mode says it is: `<CAPPI_STATE_DIR>/endpoints.json`, written at start and removed at a
clean stop, read by `cappi --local` so nobody has to type a port."""

from __future__ import annotations

ENDPOINTS_FILE = "endpoints.json"
DEFAULT_STATE_DIR = ".local"
# Keys: api (base URL), dynamodb (moto's URL), region, table, clubs_file, ingest_interval_s, stale_after_s, pid,
# credentials (the operator's keys: local mode enforces IAM) and ingest_credentials (`cappi poll` runs as ingest).
STALE_POLLS = 3  # local mode calls a club stale after this many intervals without a good poll (as the stages do)
