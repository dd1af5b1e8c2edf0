"""The authorizer: an `Authorization` header's token checked as API Gateway's JWT authorizer checks it, in its
order (structure, header, key, signature, then time claims, issuer, audience and scopes), and the decision."""

from __future__ import annotations

import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import jwt
from jwt.utils import base64url_decode

from local.http_api import AuthorizerDecision, WouldWait
from local.jwt_authorizer.claims import TIME_CLAIMS, api_gateway_claims, numeric_date, token_scopes
from local.jwt_authorizer.config import AuthorizerConfig
from local.jwt_authorizer.decisions import (
    BAD_ALGORITHM,
    BAD_SIGNATURE,
    ERROR,
    EXPIRED,
    ISSUED_IN_FUTURE,
    MALFORMED,
    MISSING_CLAIM,
    NOT_YET_VALID,
    OK,
    SEGMENTS_DESCRIPTION,
    UNKNOWN_KEY,
    WRONG_AUDIENCE,
    WRONG_ISSUER,
    insufficient_scope,
    missing,
    unauthorized,
)
from local.jwt_authorizer.jwks import JwksCache
from local.jwt_authorizer.verified import DEFAULT_VERIFIED_TOKENS, Verified, VerifiedTokens

log = logging.getLogger("local.jwt_authorizer")  # one logger for the package, as when it was one module

# Fixed here, never read from the token: taking `alg` from the header is how `none` and HS256-with-the-public-key
# forgeries get in (RFC 8725 section 2.1).
ALGORITHMS: Final = ("RS256",)

# API Gateway's HTTP API quota on the request line plus header values; a longer token cannot arrive there.
MAX_TOKEN_CHARS: Final = 10_240

# Three base64url segments without padding (RFC 7515 sections 2 and 7.1). PyJWT also decodes `=` padding, so
# `<token>==` would pass as a second spelling of a valid token; golang-jwt's default raw decoding refuses it.
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def _peek_header(token: str) -> dict[str, Any] | None:
    """The unverified JOSE header, only to pick the key; None when unreadable.

    Cheaper than `jwt.get_unverified_header`, which decodes and checks all three segments: PyJWT's
    `decode_complete` does that (strictly) right after, and it is where most of a warm verification's time goes.
    """
    try:
        header = json.loads(base64url_decode(token.partition(".")[0]))
    except (ValueError, TypeError, binascii.Error, RecursionError):
        return None
    return header if isinstance(header, dict) else None


class JwtAuthorizer:
    """Checks `Authorization` header values for one route, as the HTTP API JWT authorizer does."""

    def __init__(
        self, config: AuthorizerConfig, jwks: JwksCache, *, verified_tokens: int = DEFAULT_VERIFIED_TOKENS
    ) -> None:
        self.config = config
        self.jwks = jwks
        self.verified = VerifiedTokens(verified_tokens)
        self._audiences = frozenset(config.audiences)
        self._scope_param = " ".join(config.required_scopes)
        self._expected_scopes = "expected scopes: [" + " ".join(config.required_scopes) + "]"
        # The signature check and `exp`'s presence are PyJWT's; time claims (`_time_reason`), issuer, audience
        # (with API Gateway's client_id rule) and scopes are checked below. `sub`/`jti` type checks are off: API
        # Gateway does not make them.
        self._jwt = jwt.PyJWT(
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
                "require": ["exp"],
            }
        )

    @classmethod
    def from_config(
        cls, config: AuthorizerConfig, *, fetch: Callable[[str], bytes] | None = None, **cache_options: Any
    ) -> JwtAuthorizer:
        """An authorizer with its own key cache for `config.jwks_uri`."""
        cache = JwksCache(
            config.jwks_uri,
            fetch=fetch,
            cooldown_s=config.jwks_cooldown_s,
            max_age_s=config.jwks_max_age_s,
            **cache_options,
        )
        return cls(config, cache)

    def authorize(self, authorization_header: str | None) -> AuthorizerDecision:
        """The decision for one request's `Authorization` header (None when absent). Never raises."""
        try:
            return self._authorize(authorization_header)
        except WouldWait:  # the keys are being fetched and this thread may not wait: asked again from another
            raise
        except Exception:  # whatever went wrong, the request is refused, never a 500
            log.exception("jwt authorizer failed unexpectedly")
            return self._unauthorized(ERROR)

    def _authorize(self, header: str | None) -> AuthorizerDecision:
        # Surrounding blanks are not part of an HTTP field value.
        value = header.strip(" \t") if isinstance(header, str) else ""
        if not value:
            return missing()
        # The identity source may hold the token alone or after "Bearer ".
        token = value[7:] if value.startswith("Bearer ") else value
        verified = self.verified.get(token, self.jwks.key_set)
        # The key cache's upkeep runs for a known token as for any other (a refetch past its max age); a key that
        # is no longer the one the signature was checked with means new keys: check the token against them.
        if verified is not None and self.jwks.get(verified.kid) is not verified.key:
            self.verified.retain(self.jwks.key_set)
            verified = None
        if verified is None:
            checked = self._verify(token)
            if isinstance(checked, AuthorizerDecision):
                return checked
            verified = checked
            # Filed under the keys now held (entries of older ones go); should they have been refetched since the key
            # was taken, the key check above sends the token back here.
            self.verified.put(token, self.jwks.key_set, verified)
        return self._decide(verified)

    def _verify(self, token: str) -> Verified | AuthorizerDecision:
        """The checks only the token's text and the issuer's key decide (structure, header, key, signature, `exp`'s
        presence): what they established, or the refusal."""
        if token.count(".") != 2:
            return self._unauthorized(MALFORMED, SEGMENTS_DESCRIPTION)
        if len(token) > MAX_TOKEN_CHARS:
            return self._unauthorized(MALFORMED)
        if not _COMPACT_JWS.fullmatch(token):
            return self._unauthorized(MALFORMED)

        header_fields = _peek_header(token)
        if header_fields is None:
            return self._unauthorized(MALFORMED)
        if header_fields.get("alg") not in ALGORITHMS:
            return self._unauthorized(BAD_ALGORITHM)
        kid = header_fields.get("kid")
        if not isinstance(kid, str) or not kid:
            return self._unauthorized(UNKNOWN_KEY)
        key = self.jwks.get(kid)
        if key is None:
            return self._unauthorized(UNKNOWN_KEY)

        try:
            payload = self._jwt.decode_complete(token, key=key, algorithms=ALGORITHMS)["payload"]
        except jwt.InvalidSignatureError:
            return self._unauthorized(BAD_SIGNATURE)
        except jwt.MissingRequiredClaimError:
            return self._unauthorized(MISSING_CLAIM)
        except jwt.InvalidAlgorithmError:
            return self._unauthorized(BAD_ALGORITHM)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            # Payload not JSON (or nested past the parser's limit), an unsupported `crit` header...
            return self._unauthorized(MALFORMED)
        return Verified(kid, key, payload, token_scopes(payload))

    def _decide(self, verified: Verified) -> AuthorizerDecision:
        """The checks that depend on the time or the configuration, made on every request."""
        payload = verified.payload
        time_reason = self._time_reason(payload)
        if time_reason is not None:
            return self._unauthorized(time_reason)

        iss = payload.get("iss")
        if not isinstance(iss, str) or iss != self.config.issuer:
            return self._unauthorized(WRONG_ISSUER)
        if not self._audience_ok(payload):
            return self._unauthorized(WRONG_AUDIENCE)

        scopes: list[str] | None = None
        if self.config.required_scopes:
            scopes = list(verified.scopes)
            if not any(scope in scopes for scope in self.config.required_scopes):
                return insufficient_scope(self._scope_param, self._expected_scopes)
        if verified.claims is None:
            verified.claims = api_gateway_claims(payload)
        # A copy: a decision's claims are its caller's, the cached ones stay as the token says.
        return AuthorizerDecision(True, 200, OK, claims=dict(verified.claims), scopes=scopes)

    def _audience_ok(self, payload: Mapping[str, Any]) -> bool:
        # API Gateway: `aud` must match one audience; `client_id` is looked at only when there is no `aud`.
        if "aud" in payload:
            aud = payload["aud"]
            values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            return any(isinstance(v, str) and v in self._audiences for v in values)
        client_id = payload.get("client_id")
        return isinstance(client_id, str) and client_id in self._audiences

    def _time_reason(self, payload: Mapping[str, Any]) -> str | None:
        """Why the time claims refuse the token (None: they do not), in PyJWT's order: a claim that is not a
        NumericDate, then not yet valid (`nbf` before `iat`), then expired."""
        dates = {}
        for name in TIME_CLAIMS:
            if name in payload:
                dates[name] = numeric_date(payload[name])
                if dates[name] is None:
                    return MALFORMED
        now, leeway = time.time(), self.config.leeway_s
        nbf, iat, exp = dates.get("nbf"), dates.get("iat"), dates.get("exp")
        if nbf is not None and nbf > now + leeway:
            return NOT_YET_VALID
        if iat is not None and iat > now + leeway:
            return ISSUED_IN_FUTURE
        if exp is None:  # PyJWT's `require` has refused a missing or null `exp` already
            return MISSING_CLAIM
        if exp <= now - leeway:
            return EXPIRED
        return None

    def _unauthorized(self, reason: str, description: str | None = None) -> AuthorizerDecision:
        return unauthorized(reason, self._scope_param, description)
