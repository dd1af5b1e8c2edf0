"""What a deployed stage tells its tools: the stack's name and the outputs `cappi` reads (infra writes them)."""

from __future__ import annotations

TABLE_OUTPUT = "TableName"  # the snapshot table: heads, versions and each source's last poll
INGEST_FUNCTION_OUTPUT = "IngestFunctionName"  # `name:live`, what scheduled polls run: `cappi poll` invokes it
STALE_AFTER_OUTPUT = "StaleAfterSeconds"  # the stage's staleness bound, the one its alarms use
# Lambda refuses a reservation that leaves fewer of an account's concurrent executions unreserved: synth checks the
# stage's setting against it, `cappi preflight` the account's real quota.
UNRESERVED_MINIMUM = 100


def stack_name(stage: str) -> str:
    return f"Cappi-{stage}"
