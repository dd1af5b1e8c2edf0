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
# The operation's one optional request header: declared so that generated clients can send it per call (without it
# they have no place for it, and a client that set it once for every call got 304s with no body on later calls).
DOCUMENT_TITLE = "CAPPI"  # short: generators name the package after it (openapi-python-client: `cappi_client`)
DOCUMENT_SUMMARY = "Club Assist API for open call IDs"
IF_NONE_MATCH_PARAMETER: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": (
        "The `ETag` of the last 200 this app received for the same ClubId and TechId. While the list is unchanged "
        "CAPPI answers 304 with no body: use the body of that 200 again. Send it per call, only with the ETag of "
        "the same path, and keep the body that came with it; leave it out to always get a 200 with the body."
    ),
    "schema": {"type": "string"},
    "example": '"9b2f0c1e8a7d6e5f4c3b2a19"',
}
# The OpenAPI document's response side. Plain dicts, so the Lambda imports no pydantic; tools/openapi.py adds the
# `Error` schema's `enum` of codes, which it reads from the code that raises them (a new code cannot be missed).
ERROR_SCHEMA = "Error"  # CAPPI's own refusals and failures
GATEWAY_ERROR_SCHEMA = "GatewayError"  # what API Gateway answers itself
OPEN_CALL_IDS_SCHEMA = "OpenCallIds"
ROUTE_NOT_FOUND = "RouteNotFound"  # components/responses: any method and path outside `paths`


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _json(*schemas: str) -> dict[str, Any]:
    """A JSON content map; several schemas are `oneOf` (the two error shapes never overlap)."""
    schema = _ref(schemas[0]) if len(schemas) == 1 else {"oneOf": [_ref(s) for s in schemas]}
    return {"application/json": {"schema": schema}}


def _header(description: str, *, required: bool = True, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


SCHEMAS: dict[str, Any] = {  # components/schemas
    OPEN_CALL_IDS_SCHEMA: {
        "description": (
            "The technician's open call IDs, in natural order: a flat array of strings. A stage whose "
            "`CAPPI_NESTED_SINGLE_RESULT` setting is on (as the integration document's example shows) nests "
            'a single result: `[["8679"]]`; none and several stay flat.'
        ),
        "oneOf": [
            {"title": "Flat", "type": "array", "items": {"type": "string"}},
            {
                "title": "NestedSingle",
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}},
            },
        ],
        "examples": [[], ["8679"], ["8655R", "8679"], [["8679"]]],
    },
    ERROR_SCHEMA: {
        "description": "CAPPI's answer when it refuses a request or cannot serve it.",
        "type": "object",
        "required": list(ERROR_FIELDS),
        "properties": {
            "error": {"type": "string", "description": "A stable code for programs."},
            "message": {"type": "string", "description": "What went wrong, for people; wording may change."},
        },
        "additionalProperties": False,
        "examples": [{"error": "invalid_tech_id", "message": "TechId must be 1 to 32 letters (A-Z, a-z) or digits"}],
    },
    GATEWAY_ERROR_SCHEMA: {
        "description": (
            "API Gateway's own answer, before or instead of CAPPI's function: a bad or missing token (401), a "
            "token without the scope (403), a route that does not exist (404), throttling (429), a request too "
            "large (413, 431) or a failed function (500)."
        ),
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
        "additionalProperties": False,
        "examples": [{"message": "Unauthorized"}, {"message": "Not Found"}, {"message": "Too Many Requests"}],
    },
}

_VALIDATORS = {
    "ETag": _header("Strong validator of the body: send it back as `If-None-Match` to get a 304."),
    "Last-Modified": _header("When the club's list was fetched (HTTP-date)."),
    "Cache-Control": _header("`private, max-age=<seconds>` (the stage's setting)."),
}
_RETRY_AFTER = {
    **_header("Whole seconds to wait before asking again.", schema={"type": "integer", "minimum": 0}),
    "example": 10,
}
_CHALLENGE = "Bearer challenge (RFC 6750), sent by API Gateway's JWT authorizer and by CAPPI"

RESPONSES: dict[int, Any] = {  # the operation's OpenAPI response objects
    200: {
        "description": 'Call IDs as a JSON array of strings, e.g. `[]`, `["8679"]`, `["8655R", "8679"]`.',
        "headers": _VALIDATORS,
        "content": _json(OPEN_CALL_IDS_SCHEMA),
    },
    304: {"description": "Not modified: the `If-None-Match` ETag still matches. No body.", "headers": _VALIDATORS},
    400: {
        "description": (
            "Malformed ClubId or TechId; or a request that is not well-formed HTTP (e.g. two framings), which API "
            'Gateway refuses itself with `{"message":"Bad Request"}`.'
        ),
        "content": _json(ERROR_SCHEMA, GATEWAY_ERROR_SCHEMA),
    },
    401: {
        "description": (
            'Missing, invalid or expired token: API Gateway\'s JWT authorizer answers `{"message":"Unauthorized"}`.'
        ),
        "headers": {"WWW-Authenticate": _header(_CHALLENGE + ".")},
        "content": _json(ERROR_SCHEMA, GATEWAY_ERROR_SCHEMA),
    },
    403: {
        "description": (
            f'Token without scope `{SCOPE}` (API Gateway: `{{"message":"Forbidden"}}`), or for a club the '
            "client may not read."
        ),
        "headers": {
            "WWW-Authenticate": _header(_CHALLENGE + " when the scope is missing.", required=False),
        },
        "content": _json(ERROR_SCHEMA, GATEWAY_ERROR_SCHEMA),
    },
    404: {
        "description": (
            "A club CAPPI does not serve, or a path that does not fit the route (an empty segment, a slash in "
            'TechId): API Gateway then answers `{"message":"Not Found"}`.'
        ),
        "content": _json(ERROR_SCHEMA, GATEWAY_ERROR_SCHEMA),
    },
    413: {"description": "Request body too large (API Gateway).", "content": _json(GATEWAY_ERROR_SCHEMA)},
    414: {"description": "Request line over 10 KiB (the front door).", "content": _json(GATEWAY_ERROR_SCHEMA)},
    429: {
        "description": (
            'Throttled: the stage\'s rate or burst limit was reached. API Gateway answers `{"message":"Too Many '
            'Requests"}`; wait and retry with backoff (and honour `Retry-After` should it be sent).'
        ),
        "headers": {"Retry-After": {**_RETRY_AFTER, "required": False}},
        "content": _json(GATEWAY_ERROR_SCHEMA),
    },
    431: {"description": "Request line and headers over 10 KiB (API Gateway).", "content": _json(GATEWAY_ERROR_SCHEMA)},
    500: {
        "description": (
            'A fault of CAPPI\'s: its function answers `{"error":"internal_error",...}`, or API Gateway '
            '`{"message":"Internal Server Error"}` when the function itself failed or timed out.'
        ),
        "content": _json(ERROR_SCHEMA, GATEWAY_ERROR_SCHEMA),
    },
    503: {
        "description": (
            "No list received from this club yet, or storage briefly unavailable: retry after `Retry-After` seconds."
        ),
        "headers": {"Retry-After": _RETRY_AFTER},
        "content": _json(ERROR_SCHEMA),
    },
}
SHARED_RESPONSES: dict[str, Any] = {  # components/responses
    ROUTE_NOT_FOUND: {
        "description": (
            f'API Gateway\'s answer to any method and path but {METHOD} {ROUTE}: 404 `{{"message":"Not Found"}}`.'
        ),
        "content": _json(GATEWAY_ERROR_SCHEMA),
    },
}
