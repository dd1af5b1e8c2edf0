"""`cappi poll SOURCE`: poll one source now (credentials: cli/credentials.py)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from cappi.domain.feed import REASON_TEXT
from cappi.domain.registry import ClubSource
from cappi.inert import for_terminal
from cappi.log_file import LogFile
from cli.target import Target, TargetError


def source_of(target: Target, name: str) -> ClubSource:
    try:
        return target.registry.source(name)
    except KeyError:
        names = ", ".join(s.name for s in target.registry.sources)
        raise TargetError(f"no club source named {name!r} in {target.where} (sources: {names})") from None


def poll(target: Target, name: str) -> dict[str, Any]:
    """Poll one source now, as a scheduled tick would, and return the ingest handler's summary."""
    source = source_of(target, name)
    payload = {"source": source.name, "scheduled_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if target.ingest_function:
        response = target.client("lambda").invoke(
            FunctionName=target.ingest_function, InvocationType="RequestResponse", Payload=json.dumps(payload)
        )
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            detail = for_terminal(body.get("errorMessage")) if body else "no detail"
            raise TargetError(f"the ingest function failed: {detail}")
        return body
    if target.local_environment is None:
        raise TargetError(f"{target.where} cannot be polled from here")
    return _poll_in_process(target.local_environment, payload)


def _poll_in_process(environment: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    """Run the deployed ingest handler here, against local mode's AWS; its JSON logs go to local mode's log dir."""
    os.environ.update(environment)
    logs = Path(environment["CAPPI_STATE_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    context = SimpleNamespace(
        function_name="cappi-local-ingest",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:local:000000000000:function:cappi-local-ingest",
        aws_request_id=f"cappi-poll-{uuid.uuid4()}",
        get_remaining_time_in_millis=lambda: 180_000,
    )
    # A log line the disk refuses (full) is lost, not a failed poll: the summary says what happened to the data.
    with LogFile(str(logs / "ingest.log")) as log, contextlib.redirect_stdout(log):
        from cappi.handlers import ingest  # imported here, so its logger writes to the log file too

        summary: dict[str, Any] = ingest.make_handler()(payload, context)
        log.flush()
        losses = log.take_losses()
    if losses is not None:
        lost, error = losses
        print(
            f"cappi: warning: the ingest handler's log {logs / 'ingest.log'} cannot be written ({error}): "
            f"{lost} line{'s' if lost != 1 else ''} lost",
            file=sys.stderr,
        )
    return summary


def describe(summary: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """The outcome in words: what readers see now, or why nothing changed; rules broken with an example each.
    Values that can come from the feed or the club's server (errors, excerpts, example rows) are made inert."""
    print(f"{for_terminal(summary['source'])}: {for_terminal(summary['status'])}", end="", file=out)
    if summary.get("error_code"):
        print(f" ({for_terminal(summary['error_code'])}: {for_terminal(summary.get('error'))})", end="", file=out)
    print(f"; {summary.get('rows', 0)} rows, {summary.get('accepted', 0)} accepted", file=out)
    for club in summary.get("clubs", []):
        print(f"  club {club['club_id']}: {club['outcome']} ({club['calls']} calls, {club['techs']} techs)", file=out)
    for reason, count in sorted(summary.get("rejected", {}).items(), key=lambda item: -item[1]):
        examples = summary.get("examples", {}).get(reason) or []
        shown = "; ".join(f"row {e['index']}: {for_terminal(e['value'])}" for e in examples)
        print(f"  rejected {count}: {REASON_TEXT.get(reason, reason)}{' (' + shown + ')' if shown else ''}", file=out)
