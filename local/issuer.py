"""Local mode's token issuer: Auth0's client-credentials endpoint, as much as a tester app can observe of it.

`POST /oauth/token` takes the document's Authentication request (JSON `client_id`, `client_secret`, `audience`,
`grant_type`), the same fields form-encoded, or the client's credentials in an HTTP Basic header (Auth0's
`client_secret_basic`). It answers with the document's response shape and signs RS256 tokens whose claims are the
ones Auth0 puts in a client-credentials access token (`iss`, `sub` = `<client_id>@clients`, `aud`, `iat`, `exp`,
`azp`, `scope`, `gty`), plus the club-list claim for clients configured with clubs. `/.well-known/jwks.json` and
`/.well-known/openid-configuration` let any verifier find the key, as they would at Auth0.

Errors follow Auth0's shapes: 401 `access_denied` "Unauthorized" for an unknown client or a wrong secret (one
answer for both, so client IDs cannot be probed), 403 `access_denied` for an audience the client has no grant for
(Auth0's sentence, as users have quoted it), 400 `invalid_request` / `unsupported_grant_type` for malformed
requests.

Deliberate departures, for a friendlier local loop:
- A request without `audience` gets the issuer's default audience (the local base URL). Auth0 applies a tenant's
  default audience only under some tenant settings and otherwise refuses; tester apps should still send it.
- A JSON object posted as `application/x-www-form-urlencoded` (what `curl -d '{...}'` does without `-H`) is read
  as JSON rather than refused.
- The signing key is kept in CAPPI_STATE_DIR (local/state.py), so tokens survive a restart on the same port;
  `--fresh` makes a new one.

Nothing here logs or echoes a secret or a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from cappi.contracts.api import CLUB_CLAIM
from local.clients import DEFAULT_SCOPES, LocalClient

log = logging.getLogger("cappi.local.issuer")

DEFAULT_LIFETIME_S = 86_400  # the document's expires_in
CLIENT_CREDENTIALS = "client_credentials"
_ECHO_LIMIT = 200  # caller-supplied text quoted back in an error is cut to this
MAX_REQUEST_BODY = 64 * 1024  # a token request is a few hundred bytes; anything near this is no request

Handler = Callable[[bytes, Mapping[str, str]], tuple[int, dict[str, str], bytes]]


class _Refusal(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


class TokenIssuer:
    """Issues RS256 client-credentials tokens for `clients`, as `issuer` (a URL ending with "/")."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        clients: list[LocalClient],
        *,
        club_claim: str = CLUB_CLAIM,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        clock: Callable[[], float] = time.time,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        if not issuer.endswith("/"):
            raise ValueError(f"issuer {issuer!r} must end with '/' (Auth0 issuers do, and verifiers compare exactly)")
        if not audience:
            raise ValueError("the default audience must not be empty")
        if lifetime_s <= 0:
            raise ValueError("lifetime_s must be positive")
        ids = [c.client_id for c in clients]
        if len(set(ids)) != len(ids):
            raise ValueError("client IDs must be unique")
        self.issuer = issuer
        self.audience = audience
        self.clients = list(clients)
        self.club_claim = club_claim
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._by_id = {c.client_id: c for c in self.clients}
        self._private_key = signing_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._private_key.public_key(), as_dict=True)
        self._jwk = {name: public[name] for name in ("kty", "n", "e")}  # as Auth0 publishes keys: no key_ops
        self.kid = _jwk_thumbprint(self._jwk)

    # --- discovery ---

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "oauth/token"

    @property
    def jwks_uri(self) -> str:
        return self.issuer + ".well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def openid_configuration(self) -> dict[str, Any]:
        scopes = sorted({s for c in self.clients for s in c.scopes} | set(DEFAULT_SCOPES))
        claims = ["iss", "sub", "aud", "iat", "exp", "azp", "scope", "gty"]
        if any(c.clubs is not None for c in self.clients):
            claims.append(self.club_claim)
        # Only what this issuer really does: no authorize, userinfo or ID-token flows.
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": [CLIENT_CREDENTIALS],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": scopes,
            "claims_supported": claims,
        }

    # --- the token endpoint ---

    def token(self, body: bytes, content_type: str | None, authorization: str | None = None) -> tuple[int, dict]:
        """Answer one `POST /oauth/token`: (200, the document's token response) or (4xx, an Auth0-shaped error).

        A body it cannot read is a 400 `invalid_request`, whatever is wrong with it; a bug of ours is a 500
        `server_error` in the same shape (logged, with no part of the request)."""
        try:
            return 200, self._issue(body, content_type, authorization)
        except _Refusal as refusal:
            return refusal.status, refusal.body
        except Exception:
            log.exception("token request failed")
            return 500, {"error": "server_error", "error_description": "The token could not be issued"}

    def _issue(self, body: bytes, content_type: str | None, authorization: str | None) -> dict[str, Any]:
        params = _request_params(body, content_type)
        basic = _basic_credentials(authorization)

        grant_type = params.get("grant_type")
        if not grant_type:
            raise _Refusal(400, "invalid_request", "Missing required parameter: grant_type")
        if grant_type != CLIENT_CREDENTIALS:
            raise _Refusal(400, "unsupported_grant_type", f"Unsupported grant type: {_echo(grant_type)}")

        client_id: str | None
        secret: str | None
        if basic is not None:
            client_id, secret = basic
            if params.get("client_id") not in (None, client_id):
                raise _Refusal(400, "invalid_request", "client_id in the body differs from the Authorization header")
            if params.get("client_secret") is not None:
                raise _Refusal(400, "invalid_request", "Send the client secret in the body or in the header, not both")
        else:
            client_id, secret = params.get("client_id"), params.get("client_secret")
            if not client_id:
                raise _Refusal(400, "invalid_request", "Missing required parameter: client_id")
            if not secret:
                raise _Refusal(400, "invalid_request", "Missing required parameter: client_secret")

        client = self._authenticate(client_id, secret)
        audience = params.get("audience") or self.audience
        allowed = client.audiences if client.audiences is not None else (self.audience,)
        if audience not in allowed:
            log.info("token refused: client %s has no grant for audience %s", client.client_id, _echo(audience))
            raise _Refusal(
                403,
                "access_denied",
                # Auth0 points at its client grants here; locally the fix is the audience asked for (the client has
                # authenticated, so naming its own audiences tells a stranger nothing).
                f'Client is not authorized to access "{_echo(audience)}". This issuer expects the audience '
                + " or ".join(f'"{a}"' for a in allowed)
                + " for this client: send that as `audience` (CAPPI_AUDIENCE sets local mode's default; a "
                "CAPPI_CLIENTS_FILE client may list others in `audiences`)",
            )

        scopes = self._granted_scopes(client, params.get("scope"))
        issued_at = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"{client.client_id}@clients",
            "aud": audience,
            "iat": issued_at,
            "exp": issued_at + self.lifetime_s,
            "azp": client.client_id,
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        claims["gty"] = "client-credentials"
        if client.clubs is not None and self.club_claim:
            claims[self.club_claim] = list(client.clubs)
        token = jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})
        log.info("token issued: client %s, audience %s, scope %r", client.client_id, audience, claims.get("scope"))
        response: dict[str, Any] = {"access_token": token}
        if scopes:
            response["scope"] = claims["scope"]
        response["expires_in"] = self.lifetime_s
        response["token_type"] = "Bearer"  # noqa: S105 - a token type, not a password
        return response

    def _authenticate(self, client_id: str, secret: str) -> LocalClient:
        client = self._by_id.get(client_id)
        # Compared even for an unknown client, so timing tells nothing about which IDs exist.
        expected = client.client_secret if client is not None else "\0" * 32
        matches = hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8"))
        if client is None or not matches:
            log.info("token refused: %s", "unknown client" if client is None else f"wrong secret for {client_id}")
            raise _Refusal(401, "access_denied", "Unauthorized")
        return client

    @staticmethod
    def _granted_scopes(client: LocalClient, requested: str | None) -> tuple[str, ...]:
        if requested is None or not requested.strip():
            return client.scopes
        # Auth0 narrows the token to the scopes asked for, and refuses scopes the client has no grant for.
        wanted = list(dict.fromkeys(requested.split()))
        missing = [s for s in wanted if s not in client.scopes]
        if missing:
            raise _Refusal(403, "access_denied", f"Client has not been granted scopes: {_echo(' '.join(missing))}")
        return tuple(s for s in client.scopes if s in wanted)


def routes(issuer: TokenIssuer) -> dict[tuple[str, str], Handler]:
    """The issuer's endpoints for the gateway: (method, path) -> handler(body, headers) -> (status, headers, body)."""

    def token(body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        lowered = {k.lower(): v for k, v in headers.items()}
        status, payload = issuer.token(body, lowered.get("content-type"), lowered.get("authorization"))
        # RFC 6749 section 5.1: token responses must not be cached anywhere.
        return status, {**_JSON, "Cache-Control": "no-store", "Pragma": "no-cache"}, _dump(payload)

    def jwks(_body: bytes, _headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        # The key changes with `--fresh`: a verifier caching the old set for long would refuse fresh tokens.
        return 200, {**_JSON, "Cache-Control": "public, max-age=60"}, _dump(issuer.jwks())

    def discovery(_body: bytes, _headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 200, {**_JSON, "Cache-Control": "public, max-age=60"}, _dump(issuer.openid_configuration())

    return {
        ("POST", "/oauth/token"): token,
        ("GET", "/.well-known/jwks.json"): jwks,
        ("GET", "/.well-known/openid-configuration"): discovery,
    }


_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _dump(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _request_params(body: bytes, content_type: str | None) -> dict[str, str]:
    if len(body) > MAX_REQUEST_BODY:
        raise _Refusal(400, "invalid_request", "Invalid request body: too large")
    params = _parsed_params(body, content_type)
    for key, value in params.items():
        if not (_is_text(key) and _is_text(value)):
            # A lone surrogate (JSON "\ud800") is no Unicode text: it cannot be compared, signed or logged.
            raise _Refusal(400, "invalid_request", "Invalid request body: not valid Unicode text")
    return params


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parsed_params(body: bytes, content_type: str | None) -> dict[str, str]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    stripped = body.lstrip()
    if media == "application/json" or media.endswith("+json"):
        return _json_params(body)
    if media == "application/x-www-form-urlencoded" or not media:
        # curl -d sends JSON under the form type unless told otherwise; read it for what it is.
        return _json_params(body) if stripped.startswith(b"{") else _form_params(body)
    raise _Refusal(
        400,
        "invalid_request",
        "Unsupported Content-Type: send application/json or application/x-www-form-urlencoded",
    )


def _json_params(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deep
        raise _Refusal(400, "invalid_request", "Invalid request body: not valid JSON") from None
    if not isinstance(data, dict):
        raise _Refusal(400, "invalid_request", "Invalid request body: expected a JSON object")
    params: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Refusal(400, "invalid_request", f"Invalid parameter {_echo(key)}: expected a string")
        params[key] = value
    return params


def _form_params(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(400, "invalid_request", "Invalid request body: not a valid form") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            # RFC 6749 section 3.2: parameters must not be repeated.
            raise _Refusal(400, "invalid_request", f"Parameter {_echo(key)} is repeated")
        params[key] = value
    return params


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(client_id, secret) from `Authorization: Basic ...`, or None when the header is absent."""
    if not authorization or not authorization.strip():
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _Refusal(400, "invalid_request", "Unsupported Authorization scheme: use Basic client credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _Refusal(400, "invalid_request", "Malformed Basic Authorization header") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise _Refusal(400, "invalid_request", "Malformed Basic Authorization header")
    # RFC 6749 section 2.3.1: both parts are form-encoded before base64.
    return unquote_plus(user), unquote_plus(password)


def _echo(text: str) -> str:
    """Caller-supplied text made safe to quote in an error or a log line: printable and short."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= _ECHO_LIMIT else clean[: _ECHO_LIMIT - 1] + "\u2026"


def _jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint: a kid that names the key itself."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode("ascii")
