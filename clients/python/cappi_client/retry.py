"""Retries with exponential backoff and jitter inside one total deadline, shared by the API and the token endpoint.

Why one deadline rather than a number of retries: a tester app waits for a technician's screen, so what matters is
how long the whole call may take. Each attempt's timeout is cut to what is left, a wait that would end past the
deadline is not started, and a `Retry-After` (seconds or an HTTP date) is honoured as the least wait: retrying
sooner only earns another 429 or 503.
"""

from __future__ import annotations

import logging
import math
import random as _random
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from cappi_client.errors import ApiError, CappiError, DeadlineExceeded, TokenError

log = logging.getLogger("cappi_client")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Clock:
    """The time sources the client uses, injectable so tests neither sleep nor wait for tokens to expire."""

    time: Callable[[], float] = _time.time  # wall clock: token expiry (shared across processes), HTTP dates
    monotonic: Callable[[], float] = _time.monotonic  # deadlines
    sleep: Callable[[float], None] = _time.sleep
    random: Callable[[], float] = _random.random  # jitter, in [0, 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one call tries: `deadline_s` in total, at most `max_attempts` requests, each at most
    `request_timeout_s`; waits double from `base_delay_s` up to `max_delay_s`, each jittered to 50-100%."""

    deadline_s: float = 30.0
    max_attempts: int = 5
    request_timeout_s: float = 10.0
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if not self.deadline_s > 0 or not self.request_timeout_s > 0:
            raise ValueError("deadline_s and request_timeout_s must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, attempt: int, rand: float) -> float:
        """The wait after failed attempt number `attempt` (1-based) when the server named none ("equal jitter":
        never less than half the exponential step, so retries stay spread out but never hammer)."""
        step = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return step * (0.5 + 0.5 * rand)


class Deadline:
    """A point on the monotonic clock after which no request starts and no wait ends."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - self._clock.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


class Retryable(Exception):
    """Raised by an attempt whose failure is worth another try (429, 5xx, no connection)."""

    def __init__(self, error: CappiError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` in seconds from now: delta-seconds or an HTTP date (RFC 9110 section 10.2.3); None if absent
    or unreadable, 0 for a date in the past."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone; HTTP dates are always GMT
        return None
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def with_retries(
    attempt: Callable[[float], T], *, what: str, policy: RetryPolicy, clock: Clock, deadline: Deadline
) -> T:
    """Run `attempt(timeout)` until it returns, retrying on `Retryable` within `deadline` and `policy`.

    When retrying stops, an HTTP error is raised as the server gave it (its `retry_after` tells the app when to
    come back); a failure without any answer becomes `DeadlineExceeded` if the deadline is what stopped it.
    """
    last: Retryable | None = None
    for number in range(1, policy.max_attempts + 1):
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _out_of_time(what, deadline, last)
        try:
            return attempt(min(policy.request_timeout_s, remaining))
        except Retryable as failure:
            last = failure
        if number == policy.max_attempts:
            break
        wait = last.retry_after if last.retry_after is not None else policy.backoff(number, clock.random())
        if wait >= deadline.remaining():
            log.debug("%s: not retrying: a %.2fs wait would pass the deadline (%s)", what, wait, last.error)
            raise _out_of_time(what, deadline, last)
        log.debug("%s: attempt %d failed (%s); retrying in %.2fs", what, number, last.error, wait)
        clock.sleep(wait)
    assert last is not None
    raise last.error


def _out_of_time(what: str, deadline: Deadline, last: Retryable | None) -> CappiError:
    if last is not None and isinstance(last.error, ApiError | TokenError):
        return last.error  # the server answered: its error says more than "out of time"
    message = f"{what}: no answer within the {deadline.seconds:g}s deadline"
    if last is not None:
        message += f" (last: {last.error})"
    error = DeadlineExceeded(message, last_error=last.error if last else None)
    if last is not None:
        error.__cause__ = last.error
    return error
