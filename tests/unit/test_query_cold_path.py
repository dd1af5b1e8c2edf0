"""The query function's cold start: what importing and wiring its handler loads (bench/query.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loaded by nothing the query function runs on a warm request or while it starts: each cost the cold start
# milliseconds (Powertools' event handler package, with every resolver and asyncio, about a third of it).
NOT_ON_THE_COLD_PATH = (
    "aws_lambda_powertools.event_handler",
    "asyncio",
    "pydantic",
    "msgspec",
    "cappi.contracts.metrics",
    "cappi.domain.last_poll",
    "cappi.domain.feed",
    "cappi.domain.row_example",
    "jwt",
)


def test_starting_the_query_function_loads_nothing_it_does_not_need() -> None:
    code = (
        "import json, sys\n"
        "import cappi.handlers.query as q\n"
        "q.QueryDependencies.from_env()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CAPPI_TABLE_NAME": "t",
        "CAPPI_CLUBS_FILE": str(ROOT / "clubs" / "stage.json"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "cappi.handlers.query" in loaded and "boto3" in loaded  # the check ran what it says
    found = sorted(m for m in loaded for prefix in NOT_ON_THE_COLD_PATH if m == prefix or m.startswith(prefix + "."))
    assert found == []
