"""What a failed fetch raises, and the failure of one request that the retry loop weighs before that.

`FeedFetchError.code` is a closed set: metrics and alarms count by it, so a new code is a deliberate change.
"""

from __future__ import annotations

from cappi.domain.poll import FeedUnavailable

FETCH_ERROR_CODES = frozenset(
    {
        "insecure_url",
        "connection",
        "timeout",
        "deadline",
        "http_status",
        "auth_failed",
        "redirect_refused",
        "too_large",
        "bad_encoding",
        "truncated",
        "secret_missing",
        "token_endpoint",
        "unexpected_not_modified",  # 304 to a request that sent no validator
    }
)


class FeedFetchError(FeedUnavailable):
    """A fetch failed; `code` is one of FETCH_ERROR_CODES, for metrics and alarms."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None, attempts: int = 0, sent_at_ms: int | None = None
    ) -> None:
        if code not in FETCH_ERROR_CODES:
            raise ValueError(f"unknown fetch error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.attempts = attempts
        self.sent_at_ms = sent_at_ms  # when the first feed request went out (None: the fetch failed before it)

    def __repr__(self) -> str:
        return (
            f"FeedFetchError(code={self.code!r}, status={self.status!r}, attempts={self.attempts!r}, "
            f"message={self.message!r})"
        )


class AttemptFailure(Exception):
    """One request went wrong; the retry loop decides whether it is final. It never leaves the package:
    what escapes is the FeedFetchError made from it."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
