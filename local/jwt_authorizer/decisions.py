"""The authorizer's answers as API Gateway gives them: the reasons (machine codes for logs and tests), the
refusals' bodies, their `www-authenticate` challenges and `error_description` texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from local.http_api import AuthorizerDecision

UNAUTHORIZED_BODY: Final = '{"message":"Unauthorized"}'
FORBIDDEN_BODY: Final = '{"message":"Forbidden"}'

# Reasons (machine codes for logs and tests).
OK = "ok"
MISSING = "missing"
MALFORMED = "malformed"
BAD_ALGORITHM = "bad_algorithm"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
ISSUED_IN_FUTURE = "issued_in_future"
MISSING_CLAIM = "missing_claim"
WRONG_ISSUER = "wrong_issuer"
WRONG_AUDIENCE = "wrong_audience"
INSUFFICIENT_SCOPE = "insufficient_scope"
ERROR = "error"

# error_description per reason. Only SEGMENTS and WRONG_AUDIENCE are AWS's observed wording (see module docstring);
# the others follow golang-jwt, whose "invalid number of segments" message API Gateway evidently passes through.
SEGMENTS_DESCRIPTION: Final = "token contains an invalid number of segments"
DESCRIPTIONS: Final[Mapping[str, str]] = {
    MALFORMED: "token is malformed",
    BAD_ALGORITHM: "signing method is invalid",
    UNKNOWN_KEY: "the token's kid does not match any key of the issuer",
    BAD_SIGNATURE: "token signature is invalid",
    EXPIRED: "token is expired",
    NOT_YET_VALID: "token is not valid yet",
    ISSUED_IN_FUTURE: "token used before issued",
    MISSING_CLAIM: "token is missing required claim: exp",
    WRONG_ISSUER: "the token does not have a valid issuer",
    WRONG_AUDIENCE: "the token does not have a valid audience",
    ERROR: "token is unverifiable",
}


def missing() -> AuthorizerDecision:
    """No token: 401 with a bare `Bearer` challenge."""
    return AuthorizerDecision(False, 401, MISSING, UNAUTHORIZED_BODY, {"www-authenticate": "Bearer"}, description="")


def unauthorized(reason: str, scope_param: str, description: str | None = None) -> AuthorizerDecision:
    """401 for `reason`, its challenge naming the route's scopes (`scope_param`: space-separated)."""
    text = description if description is not None else DESCRIPTIONS[reason]
    challenge = f'Bearer scope="{scope_param}" error="invalid_token" error_description="{text}"'
    return AuthorizerDecision(False, 401, reason, UNAUTHORIZED_BODY, {"www-authenticate": challenge}, description=text)


def insufficient_scope(scope_param: str, expected_scopes: str) -> AuthorizerDecision:
    """403: the token grants none of the route's scopes (`expected_scopes`: "expected scopes: [A B]")."""
    return AuthorizerDecision(
        False,
        403,
        INSUFFICIENT_SCOPE,
        FORBIDDEN_BODY,
        {
            "www-authenticate": f'Bearer scope="{scope_param}" error="insufficient_scope" '
            f'error_description="{expected_scopes}"'
        },
        description=expected_scopes,
    )
