"""Every error the client raises, under one base class so an app can catch `CappiError` and be done.

The hierarchy follows what an app does next: fix its input (`InvalidId`), fix its configuration or credentials
(`TokenError`, `Unauthorized`, `Forbidden`), tell the technician "try later" (`Unavailable`, `DeadlineExceeded`),
or report a bug on one side or the other (`ProtocolError`, `BadRequest`).
"""

from __future__ import annotations


class CappiError(Exception):
    """Base class of everything this package raises."""


class InvalidId(CappiError, ValueError):
    """A ClubId or TechId that CAPPI would refuse: raised before any HTTP request is made.

    `code` is the one the server would answer with (`invalid_club_id` / `invalid_tech_id`), so apps can share
    their handling of client-side and server-side refusals. A ValueError too, as bad arguments usually are.
    """

    def __init__(self, code: str, message: str, value: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.value = value


class InvalidClubId(InvalidId):
    """ClubId is not 0-999 (an int) or 1-3 ASCII digits (a str)."""


class InvalidTechId(InvalidId):
    """TechId is not 1-32 ASCII letters or digits."""


class ConfigurationError(CappiError, ValueError):
    """The client cannot be built as asked: no credentials, an unknown environment, a malformed URL."""


class ApiError(CappiError):
    """The API answered with an error status.

    `code` is the server's `error` field (`unknown_club`, `forbidden_club`, ...), or None when API Gateway itself
    answered with its `{"message": ...}` body (a bad token, an unknown route). `retry_after` is the server's
    `Retry-After` in seconds, when it sent one.
    """

    def __init__(
        self, status: int, code: str | None, message: str, *, retry_after: float | None = None, url: str = ""
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if code else f"{status}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.url = url


class BadRequest(ApiError):
    """400: the server refused the path (the client's own checks should have caught it first)."""


class Unauthorized(ApiError):
    """401: the token was refused even after one fresh token was fetched."""


class Forbidden(ApiError):
    """403: the token lacks the scope, or this client may not read this club."""


class NotFound(ApiError):
    """404: a club CAPPI does not serve (`unknown_club`), or a wrong base URL (API Gateway's `Not Found`)."""


class TooManyRequests(ApiError):
    """429, after the retries the deadline allowed."""


class ServerError(ApiError):
    """A 5xx, after the retries the deadline allowed."""


class Unavailable(ServerError):
    """503: no list from that club yet (`no_snapshot_yet`), or storage briefly unavailable; see `retry_after`."""


class ProtocolError(CappiError):
    """An answer that breaks the API contract: not JSON, not an array of strings, a 304 nothing was cached for."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenError(CappiError):
    """The token endpoint refused or failed: `error` / `error_description` are the OAuth fields when it sent them
    (e.g. `access_denied` "Unauthorized" for a wrong client secret)."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None, error_description: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.error_description = error_description


class TransportError(CappiError):
    """No HTTP answer at all (connection refused, reset, TLS failure) after the retries the deadline allowed."""


class DeadlineExceeded(CappiError, TimeoutError):
    """The call's total deadline ran out before an answer came; `last_error` is what the last attempt met."""

    def __init__(self, message: str, *, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: TooManyRequests,
    503: Unavailable,
}


def api_error_class(status: int) -> type[ApiError]:
    """The ApiError subclass for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError
