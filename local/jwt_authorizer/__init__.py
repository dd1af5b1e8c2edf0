"""Bearer-token checks as Amazon API Gateway's HTTP API JWT authorizer makes them, with PyJWT.

Local mode's gateway and the tests put this in front of the query Lambda in place of API Gateway, so the same
handler runs unchanged behind it: it refuses what the authorizer refuses, with the same status, body and
`www-authenticate` header, and hands the Lambda `requestContext.authorizer.jwt` in the shape API Gateway does.

What API Gateway does, and where that comes from (reference material, not this project):
- The identity source holds the token alone or prefixed with `Bearer ` (AWS developer guide, "Control access to
  HTTP APIs with JWT authorizers"); the troubleshooting page's `curl -H "Authorization: token"` reaches the
  audience check, so a bare token is accepted.
- Checks: `kid` names a key of the issuer's JWKS; signature (RSA algorithms only); `iss` equals the configured
  issuer; `aud` (or `client_id` when `aud` is absent) matches one configured audience; `exp` after now; `nbf` and
  `iat` before now; `scope` or `scp` holds at least one of the route's scopes (same guide).
- Refusals: 401 `{"message":"Unauthorized"}`, 403 `{"message":"Forbidden"}` (Content-Length 26 and 23 in AWS's
  and users' captures, so compact JSON). `www-authenticate` values seen on real APIs:
  no token: `Bearer`; `Bearer scope="" error="invalid_token" error_description="the token does not have a valid
  audience"` (AWS troubleshooting page); `... error_description="token contains an invalid number of segments"`
  (two unrelated deployment reports); 403: `Bearer scope="A B" error="insufficient_scope"
  error_description="expected scopes: [A B]"` (a user's capture).
- Claims reach the Lambda as strings: numbers and booleans as text, arrays as `[a b]`, null claims left out,
  objects as JSON text; `scopes` is null on a route without scopes, else the token's whole scope list (a public
  emulator's tests "measured against real API Gateway", 2026-08; AWS's payload 2.0 example).

Inferred, not seen: the other `error_description` texts (golang-jwt's wording for parse and time errors, the
audience sentence's pattern for the issuer); `scope="..."` in 401 challenges carrying the route's scopes (the
captures above show `scope=""`, apparently on routes without scopes); `Bearer` matched case-sensitively (a
lower-case `bearer ` is then part of the token and fails as malformed); `scope` and `scp` read together.

Deliberately stricter than API Gateway: RS256 only (DESIGN.md section 2; AWS accepts "RSA-based" algorithms),
`exp` required, JWKS keys with another `alg` or `use` ignored, and `exp`, `nbf` and `iat` must be NumericDates
(RFC 7519 section 2: JSON numbers, here between 1970 and the end of year 9999) or the token is malformed. PyJWT's
own time checks are off because they take whatever `int()` takes: `"exp": "1999999999"` or `"nbf": true`.

A token's structure and signature are checked once: what the check established is kept by the token's exact text
(`VerifiedTokens`) until the key set it was checked against is refetched, so a tester app's later requests skip
the RSA check. The time claims, issuer, audience and scopes are checked on every request.

One job per module: `authorizer` (the checks and the decision), `decisions` (the answers: reasons, bodies,
challenges), `claims` (what a token's claims say, and as the Lambda gets them), `jwks` (the issuer's keys: fetched,
parsed, cached), `verified` (tokens whose signature checked out), `config` (one authorizer's configuration).
"""

from local.http_api import AuthorizerDecision
from local.jwt_authorizer.authorizer import JwtAuthorizer
from local.jwt_authorizer.claims import api_gateway_claims, token_scopes
from local.jwt_authorizer.config import AuthorizerConfig
from local.jwt_authorizer.decisions import ERROR, FORBIDDEN_BODY, UNAUTHORIZED_BODY
from local.jwt_authorizer.jwks import JwksCache, parse_jwks

__all__ = [
    "ERROR",
    "FORBIDDEN_BODY",
    "UNAUTHORIZED_BODY",
    "AuthorizerConfig",
    "AuthorizerDecision",
    "JwksCache",
    "JwtAuthorizer",
    "api_gateway_claims",
    "parse_jwks",
    "token_scopes",
]
