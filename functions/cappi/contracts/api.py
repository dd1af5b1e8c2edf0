"""The query API's contract: its one route, the scope and claims it checks, and the two environments.

The integration document's "Club Assist Environments" section names the token and base URLs; Auth0 issuers are
the token URL's origin with a trailing slash (API Gateway compares `iss` byte for byte).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# API Gateway and OpenAPI spell path parameters {Name}; Powertools' resolver spells them <Name>.
ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
RESOLVER_ROUTE = ROUTE.replace("{", "<").replace("}", ">")
METHOD = "GET"
# Any single path segment per parameter, as API Gateway captures them: the handler, not the router, says 400.
ROUTE_SHAPE = re.compile(re.escape(ROUTE).replace(r"\{ClubId\}", "([^/]+)").replace(r"\{TechId\}", "([^/]+)"))

SCOPE = "read:callids"
SCOPE_DESCRIPTION = "read open call IDs"
# The claim that lists the clubs a client may read (DESIGN.md section 2, object-level authorization).
CLUB_CLAIM = "https://cappi.clubassist.com/clubs"
ERROR_FIELDS = ("error", "message")


def path_for(club_id: int | str, tech_id: str) -> str:
    """The request path for one technician: `path_for(212, "AB12")` -> `/api/CallData/OpenCalls/212/AB12/ids`."""
    return ROUTE.format(ClubId=club_id, TechId=tech_id)


@dataclass(frozen=True, slots=True)
class Environment:
    """One deployed CAPPI as tester apps see it."""

    stage: str  # the CDK stage name
    title: str  # what the integration document calls it
    base_url: str  # CAPPI's base URL, which is also the token audience
    issuer: str  # the Auth0 tenant that issues tokens (trailing slash included)

    @property
    def token_url(self) -> str:
        return f"{self.issuer}oauth/token"

    @property
    def audience(self) -> str:
        return self.base_url


ENVIRONMENTS: dict[str, Environment] = {
    "stage": Environment(
        "stage", "development", "https://stagecappi.clubassist.com", "https://stage-clubassist.auth0.com/"
    ),
    "prod": Environment("prod", "production", "https://cappi.clubassist.com", "https://prod-clubassist.auth0.com/"),
}

# How the one operation is described in the OpenAPI document (tools/openapi.py generates it from the resolver).
OPERATION_ID = "getOpenCallIds"
OPERATION_TAG = "OpenCalls"
OPERATION_SUMMARY = "Open call IDs for a technician"
OPERATION_DESCRIPTION = (
    "The IDs of the calls open for the technician `TechId` of club `ClubId`, from the club's latest snapshot "
    "(refreshed every 10 minutes). `ClubId` is 1-3 digits; `TechId` is 1-32 ASCII letters or digits, "
    f"matched case-insensitively. Requires a bearer token with scope `{SCOPE}`."
)
RESPONSES: dict[int, Any] = {  # OpenAPI response objects
    200: {
        "description": 'Call IDs as a JSON array of strings, e.g. `[]`, `["8679"]`, `["8655R", "8679"]`.',
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}},
    },
    304: {"description": "Not modified: the `If-None-Match` ETag still matches."},
    400: {"description": "Malformed ClubId or TechId."},
    401: {"description": "Missing, invalid or expired token."},
    403: {"description": f"Token without scope `{SCOPE}`, or for a club the client may not read."},
    404: {"description": "Unknown endpoint, or a club CAPPI does not serve."},
    503: {"description": "No snapshot for this club yet, or storage briefly unavailable."},
}
