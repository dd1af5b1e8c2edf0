"""cappi-client: which calls are open for a technician, from CAPPI, for tester apps.

    from cappi_client import CappiClient
    with CappiClient("stage") as client:  # CAPPI_CLIENT_ID / CAPPI_CLIENT_SECRET from the environment
        call_ids = client.open_calls(212, "AB12")  # ["8655R", "8679"]

Depends on `requests` only, and on nothing of the CAPPI repository, so it installs into any app.
"""

from cappi_client._version import VERSION
from cappi_client.client import CappiClient, parse_call_ids
from cappi_client.environments import ENVIRONMENTS, Environment, local
from cappi_client.errors import (
    ApiError,
    BadRequest,
    CappiError,
    ConfigurationError,
    DeadlineExceeded,
    Forbidden,
    InvalidClubId,
    InvalidId,
    InvalidTechId,
    NotFound,
    ProtocolError,
    ServerError,
    TokenError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
)
from cappi_client.ids import club_id, tech_id
from cappi_client.retry import Clock, RetryPolicy
from cappi_client.tokens import Credentials, FileTokenCache, Token, TokenKey, TokenProvider

__version__ = VERSION
__all__ = [
    "ENVIRONMENTS",
    "ApiError",
    "BadRequest",
    "CappiClient",
    "CappiError",
    "Clock",
    "ConfigurationError",
    "Credentials",
    "DeadlineExceeded",
    "Environment",
    "FileTokenCache",
    "Forbidden",
    "InvalidClubId",
    "InvalidId",
    "InvalidTechId",
    "NotFound",
    "ProtocolError",
    "RetryPolicy",
    "ServerError",
    "Token",
    "TokenError",
    "TokenKey",
    "TokenProvider",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "club_id",
    "local",
    "parse_call_ids",
    "tech_id",
]
