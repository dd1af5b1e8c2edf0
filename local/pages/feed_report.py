"""The adapter between `/status/{source}` and `cappi check-feed`: the page shows what the command says, by running
it (`cappi check-feed --source S --plan --json`: one fetch of the feed, the plan under `plan`) against this local
mode.

Local mode may not import `cli/` (the floors stand side by side), and the command's JSON is its stable face; when
check-feed's report or plan changes shape, this module is the one place the pages follow it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAPPI = "import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class FeedReport:
    report: dict[str, Any] | None  # check-feed's report, as its --json prints it
    plan: Any  # check-feed --plan's, when the command has it
    note: str | None = None  # why something is missing, for the page


def _run(state_dir: Path, args: list[str]) -> tuple[int, str, str]:
    env = {**os.environ, "CAPPI_STATE_DIR": str(state_dir)}
    done = subprocess.run(  # noqa: S603 - our own interpreter running our own command
        [sys.executable, "-c", CAPPI, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False
    )
    return done.returncode, done.stdout, done.stderr


def _json(code: int, out: str, err: str) -> tuple[Any, str | None]:
    try:
        return json.loads(out), None
    except ValueError:
        last = (err.strip().splitlines() or [f"exit {code}"])[-1]
        return None, last


def feed_report(state_dir: Path, source: str) -> FeedReport:
    """The report and the plan, from one run of the command (one fetch of the feed)."""
    report, error = _json(*_run(state_dir, ["check-feed", "--source", source, "--plan", "--json"]))
    if not isinstance(report, dict):
        return FeedReport(None, None, f"cappi check-feed failed: {error}")
    plan = report.pop("plan", None)
    return FeedReport(report, plan, None if plan is not None else "no feed plan: the feed could not be fetched")
