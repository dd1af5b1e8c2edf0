"""Which answers are worth another attempt, and how long to wait before it.

Client errors are final; 429 and 5xx are retried, after Retry-After when the server gives one and after a
jittered exponential backoff otherwise.
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.redaction import loggable_url


def status_failure(url: str, status: int, excerpt: str, retry_after: str | None) -> AttemptFailure:
    """The failure for a response that is neither 200 nor a redirect; `excerpt` is its cleaned body."""
    message = f"HTTP {status} from {loggable_url(url)}" + (f": {excerpt}" if excerpt else "")
    if status in (401, 403):
        return AttemptFailure("auth_failed", message, status=status)
    if status == 429 or 500 <= status <= 599:
        wait = retry_after_s(retry_after)
        return AttemptFailure("http_status", message, status=status, retryable=True, retry_after=wait)
    return AttemptFailure("http_status", message, status=status)


def backoff_s(retries: int, base: float, cap: float) -> float:
    """Full jitter: anywhere from 0 to base * 2**retries, capped."""
    ceiling = min(cap, base * 2**retries)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def retry_after_s(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (delay or HTTP date), or None when absent or unreadable."""
    # Not urllib3's Retry.parse_retry_after: it raises on bad values, caps long waits, reads zoneless dates as local.
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit also accepts "²", which float() refuses
        return float(value[:12])  # an absurd number of digits still means "too long to wait"
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
