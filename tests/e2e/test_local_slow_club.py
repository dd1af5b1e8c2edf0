"""Local mode with one club that never answers in time: the other clubs' polls keep the schedule, as separate
Lambda invocations would (each source's poll runs in an execution environment of its own)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from support.local_mode import control

pytestmark = pytest.mark.timeout(240)

INTERVAL_S = 2.0


def test_a_hung_club_does_not_hold_up_the_other_clubs(start: Any) -> None:
    local = start(CAPPI_INGEST_INTERVAL=f"{INTERVAL_S:g}")
    local.wait_for(r"/api/CallData/OpenCalls/212/DEMO1/ids")  # first polls done
    control(local, "demo-large", mode="slow", delay=300)  # each of its polls now waits past the watch below
    mark = len(local.lines)
    time.sleep(8 * INTERVAL_S)  # eight ticks: each adds one more hung poll of demo-large
    for club in ("demo-small", "demo-medium"):
        polls = local.stamped(rf"ingest {club}:", after=mark)
        assert len(polls) >= 7, f"{club} polled {len(polls)} times in 8 ticks:\n{local.output()}"
        gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
        assert max(gaps) < INTERVAL_S + 1.0, f"{club}'s polls came {gaps} s apart"
