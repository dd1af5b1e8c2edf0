"""EventBridge Scheduler's part in local mode: the dispatch handler at start and every interval after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.console import Console
from local.http_api import LambdaContext


class Scheduler(threading.Thread):
    """EventBridge Scheduler's part: invoke the dispatch handler now and every `interval_s` seconds."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], interval_s: float, console: Console) -> None:
        super().__init__(name="scheduler", daemon=True)
        self._handler = handler
        self._interval_s = interval_s
        self._console = console
        self.stopping = threading.Event()

    def run(self) -> None:
        """Ticks at a fixed rate, as a `rate(...)` schedule fires: a slow tick does not push the later ones back."""
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            tick = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            try:
                context = LambdaContext(function_name="cappi-local-dispatch", aws_request_id=f"dispatch-{tick}")
                result = self._handler({"scheduled_time": tick}, context)
                if result.get("failed"):
                    self._console.event(f"dispatch: could not start {sorted(result['failed'])}")
            except Exception as exc:  # the next tick tries again, as the schedule would
                self._console.event(f"dispatch failed: {type(exc).__name__}: {exc}")
            next_tick += self._interval_s
            now = time.monotonic()
            if next_tick < now:  # a tick longer than the interval: skip the missed ones, as the scheduler would
                next_tick = now + self._interval_s - (now - next_tick) % self._interval_s
            self.stopping.wait(next_tick - now)
