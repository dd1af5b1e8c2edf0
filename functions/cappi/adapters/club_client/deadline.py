"""The one time budget of a fetch: attempts, backoff, redirects and token calls all draw on it.

Per-request timeouts alone do not bound a fetch: a retry, a redirect or a server dripping bytes each stay
within them while the whole fetch runs on.
"""

from __future__ import annotations

from collections.abc import Callable

from cappi.adapters.club_client.errors import AttemptFailure


class Deadline:
    def __init__(self, clock: Callable[[], float], seconds: float) -> None:
        self.clock = clock
        self.start = clock()
        self.end = self.start + seconds

    def remaining(self) -> float:
        return self.end - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def elapsed(self) -> float:
        return self.clock() - self.start

    def failure(self, during: str) -> AttemptFailure:
        return AttemptFailure("deadline", f"deadline of {self.end - self.start:g}s passed {during}")

    def timeout_failure(self, message: str) -> AttemptFailure:
        """A timed-out request or read: worth a retry, unless it was the deadline that cut the wait short."""
        if self.expired():
            return self.failure(f"({message})")
        return AttemptFailure("timeout", message, retryable=True)
