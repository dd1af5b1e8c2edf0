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
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK
from jwt.utils import base64url_decode

from cappi.domain.registry import is_loopback_host
from local.http_api import AuthorizerDecision

log = logging.getLogger(__name__)

# Fixed here, never read from the token: taking `alg` from the header is how `none` and HS256-with-the-public-key
# forgeries get in (RFC 8725 section 2.1).
ALGORITHMS: Final = ("RS256",)

UNAUTHORIZED_BODY: Final = '{"message":"Unauthorized"}'
FORBIDDEN_BODY: Final = '{"message":"Forbidden"}'

# API Gateway's HTTP API quota on the request line plus header values; a longer token cannot arrive there.
MAX_TOKEN_CHARS: Final = 10_240

# Leeway: API Gateway documents none ("exp must be after the current time"). 10 s absorbs clock drift between the
# issuer and this machine (NTP keeps it far below that; an unsynced laptop drifts a few seconds) while staying
# negligible against the 86,400 s token lifetime, so local mode accepts almost exactly what AWS accepts.
DEFAULT_LEEWAY_S: Final = 10.0
DEFAULT_JWKS_COOLDOWN_S: Final = 30.0
# AWS says it may cache the public keys for two hours; one hour keeps rotations visible sooner.
DEFAULT_JWKS_MAX_AGE_S: Final = 3600.0
DEFAULT_FETCH_TIMEOUT_S: Final = 3.0
DEFAULT_JWKS_MAX_BYTES: Final = 256 * 1024
# Tokens whose signature checked out, kept so a client's next requests skip the RSA check (most of a warm
# authorization's time): a few thousand clients' current tokens, a few MB at most.
DEFAULT_VERIFIED_TOKENS: Final = 4096
# The last second of year 9999. A later "date" is no issuer's intent, and golang-jwt (which API Gateway's wording
# follows) overflows converting it; an earlier one than 1970 neither. Both are refused as malformed.
MAX_NUMERIC_DATE: Final = 253_402_300_799
TIME_CLAIMS: Final = ("exp", "nbf", "iat")

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


def check_jwks_uri(uri: str) -> None:
    """Refuse a JWKS URL other than https, or plain http on loopback (local mode's issuer): keys fetched in the
    clear from another host could be swapped on the way."""
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    raise ValueError(f"JWKS URL must be https, or http on a loopback address: {uri!r}")


@dataclass(frozen=True)
class AuthorizerConfig:
    """One JWT authorizer and the route scopes it guards.

    `issuer` is compared exactly (Auth0 issuers end with "/"). `audience` is one accepted audience or several.
    `required_scopes` are the route's authorization scopes; at least one must be in the token (none: any token).
    """

    issuer: str
    audience: str | tuple[str, ...]
    required_scopes: tuple[str, ...] = ()
    jwks_uri: str = ""  # empty: issuer + ".well-known/jwks.json", as Auth0 and the local issuer publish it
    leeway_s: float = DEFAULT_LEEWAY_S
    jwks_cooldown_s: float = DEFAULT_JWKS_COOLDOWN_S
    jwks_max_age_s: float = DEFAULT_JWKS_MAX_AGE_S

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer is required")
        audiences = (self.audience,) if isinstance(self.audience, str) else tuple(self.audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("at least one non-empty audience is required")
        object.__setattr__(self, "audience", audiences)
        scopes = tuple(self.required_scopes)
        for scope in scopes:
            # Scopes go into a quoted header parameter: keep them to RFC 6749's scope-token characters.
            if not scope or any(c in scope for c in ' "\\') or not scope.isprintable() or not scope.isascii():
                raise ValueError(f"invalid route scope {scope!r}")
        object.__setattr__(self, "required_scopes", scopes)
        if not self.jwks_uri:
            base = self.issuer if self.issuer.endswith("/") else self.issuer + "/"
            object.__setattr__(self, "jwks_uri", base + ".well-known/jwks.json")
        check_jwks_uri(self.jwks_uri)
        for name in ("leeway_s", "jwks_cooldown_s", "jwks_max_age_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")

    @property
    def audiences(self) -> tuple[str, ...]:
        return self.audience if isinstance(self.audience, tuple) else (self.audience,)


# --- the key cache ---


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A JWKS that redirects elsewhere is refused rather than followed: the keys must come from the configured URL.
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def fetch_url(
    uri: str, *, timeout_s: float = DEFAULT_FETCH_TIMEOUT_S, max_bytes: int = DEFAULT_JWKS_MAX_BYTES
) -> bytes:
    """GET `uri` and return the body of a 200 answer; raise on anything else, past `timeout_s` or `max_bytes`."""
    check_jwks_uri(uri)
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if is_loopback_host(urlsplit(uri).hostname):
        handlers.append(urllib.request.ProxyHandler({}))  # an HTTP(S)_PROXY must not capture loopback traffic
    opener = urllib.request.build_opener(*handlers)
    headers = {"Accept": "application/json", "User-Agent": "cappi-local"}
    request = urllib.request.Request(uri, headers=headers)  # noqa: S310 (scheme checked above)
    deadline = time.monotonic() + timeout_s
    with opener.open(request, timeout=timeout_s) as response:
        if response.status != 200:
            raise OSError(f"JWKS answered {response.status}")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise OSError(f"JWKS too large ({declared} bytes)")
        chunks: list[bytes] = []
        size = 0
        while True:
            # The socket timeout bounds each read; the deadline bounds a server that drips bytes.
            if time.monotonic() > deadline:
                raise TimeoutError("JWKS fetch took too long")
            chunk = response.read(16 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise OSError(f"JWKS larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def parse_jwks(document: bytes) -> dict[str, PyJWK]:
    """RSA signing keys of a JWKS document by `kid`, parsed once. Raises ValueError when it is not a JWKS."""
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' array)")
    keys: dict[str, PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue  # first key of a kid wins; a later duplicate cannot shadow it
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            # Bound to RS256 here, so PyJWT verifies with RS256 whatever a token's header says.
            keys[kid] = PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            log.warning("jwks key skipped: unusable RSA key", extra={"kid": kid})
    return keys


class JwksCache:
    """The issuer's signing keys by `kid`, fetched on first use and kept parsed.

    A fetch happens when there are no keys yet, when the keys are older than `max_age_s`, or when a token names a
    `kid` the cache does not hold (a rotation). All fetches share one cooldown: at most one every `cooldown_s`,
    so a flood of tokens with random `kid`s costs one fetch, not one each. A failed fetch keeps the old keys.

    Not `jwt.PyJWKClient` (2.15): its cooldown starts only after a successful fetch (a down issuer gets one fetch
    per request), its expired cache is dropped before the refetch (a failed refetch loses the keys), it reads
    `time.monotonic` itself (no clock to inject) and its fetch has no size limit.
    """

    def __init__(
        self,
        uri: str,
        *,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cooldown_s: float = DEFAULT_JWKS_COOLDOWN_S,
        max_age_s: float = DEFAULT_JWKS_MAX_AGE_S,
        timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
        max_bytes: int = DEFAULT_JWKS_MAX_BYTES,
    ) -> None:
        if fetch is None:
            check_jwks_uri(uri)  # an injected fetch may serve any name (tests); the real one only https/loopback

            def fetch(u: str) -> bytes:
                return fetch_url(u, timeout_s=timeout_s, max_bytes=max_bytes)

        self.uri = uri
        self._fetch = fetch
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._max_age_s = max_age_s
        # Replaced whole, never mutated, so readers need no lock.
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, for the cooldown
        self._fetch_lock = threading.Lock()
        self.fetches = 0
        self.fetch_failures = 0
        self.last_error: str | None = None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def key_set(self) -> Mapping[str, PyJWK]:
        """The keys now held: a mapping replaced whole by every successful fetch, so its identity tells whether
        the keys were refetched since it was last looked at."""
        return self._keys

    def get(self, kid: str) -> PyJWK | None:
        """The key for `kid`, fetching the JWKS first when due and allowed; None when it is not known."""
        key = self._keys.get(kid)
        if key is not None and not self._stale(self._clock()):
            return key  # the warm path: one dict lookup, no lock
        # A known key past max age is still good while another request refetches: do not queue behind that fetch.
        if not self._fetch_lock.acquire(blocking=key is None):
            return key
        try:  # one fetch at a time; requests for an unknown kid wait for it and then see its result
            now = self._clock()
            key = self._keys.get(kid)
            if key is not None and not self._stale(now):
                return key
            if self._attempted_at is None or now - self._attempted_at >= self._cooldown_s:
                self._refresh(now)
            return self._keys.get(kid)
        finally:
            self._fetch_lock.release()

    def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (startup, operator action). True when the keys were replaced."""
        with self._fetch_lock:
            return self._refresh(self._clock())

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._max_age_s

    def _refresh(self, now: float) -> bool:
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self.uri))
        except Exception as exc:  # any failure: keep serving the keys we have
            self.fetch_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("jwks fetch failed, keeping %d cached keys", len(self._keys), extra={"error": self.last_error})
            return False
        self._keys = keys
        self._fetched_at = now
        self.last_error = None
        return True


# --- claims as API Gateway hands them to the Lambda ---


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return json.dumps(value)  # JSON has no such numbers; PyJWT's parser lets them through as NaN/Infinity
    # Shortest round-trip digits, no exponent, no trailing ".0": 1e20 -> "100000000000000000000", 1.0 -> "1".
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _claim_text(value: Any, *, nested: bool = False) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item, nested=True) for item in value) + "]"
    if value is None and nested:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def api_gateway_claims(payload: Mapping[str, Any]) -> dict[str, str]:
    """The token's claims as `requestContext.authorizer.jwt.claims`: every value a string.

    Strings as they are, numbers as decimal text (`1700000000`), booleans `true`/`false`, arrays as
    `[a b c]` (so `aud: ["x", "y"]` arrives as `"[x y]"` and a club list `[212, 213]` as `"[212 213]"`),
    objects as compact JSON, null-valued claims left out.
    """
    return {str(name): _claim_text(value) for name, value in payload.items() if value is not None}


def _scope_list(value: Any) -> list[str]:
    # RFC 6749: space-delimited; some issuers (Okta's and Azure's `scp`) send a JSON array instead.
    if isinstance(value, str):
        return [s for s in value.split(" ") if s]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str) and s]
    return []


def token_scopes(payload: Mapping[str, Any]) -> list[str]:
    """The scopes a token grants: its `scope` claim, then any further ones from `scp`, in order, once each."""
    scopes: list[str] = []
    for name in ("scope", "scp"):
        for scope in _scope_list(payload.get(name)):
            if scope not in scopes:
                scopes.append(scope)
    return scopes


# --- the authorizer ---

# Three base64url segments without padding (RFC 7515 sections 2 and 7.1). PyJWT also decodes `=` padding, so
# `<token>==` would pass as a second spelling of a valid token; golang-jwt's default raw decoding refuses it.
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def numeric_date(value: Any) -> int | float | None:
    """`value` when it is a NumericDate (RFC 7519 section 2) CAPPI accepts, else None.

    A JSON number only: not a string of digits, not a boolean (`bool` is an `int` in Python), null, array or
    object. NaN and infinities (which Python's JSON parser lets through) and values outside 0..MAX_NUMERIC_DATE
    fail the range test; it compares without converting, so a 400-digit integer costs nothing either.
    """
    if type(value) not in (int, float):
        return None
    return value if 0 <= value <= MAX_NUMERIC_DATE else None


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


@dataclass(slots=True)
class _Verified:
    """What checking a token's structure and signature established, which only the token's text and the key decide:
    its payload and scopes, and once it was first allowed, its claims as the Lambda gets them. The checks that
    depend on the time or the configuration are made on every request, from `payload`."""

    kid: str
    key: PyJWK
    payload: Mapping[str, Any]
    scopes: list[str]
    claims: dict[str, str] | None = None  # set by the first decision that allows the token


class VerifiedTokens:
    """Tokens whose signature checked out, by their exact text (a changed byte is another key, so a tampered token
    is never served from here), least recently used dropped past `size`; all of them are dropped as soon as the
    key set they were checked against is replaced (a refetch, a rotation). Only successes are kept: a refused
    token is checked again each time. Shared by the gateway's threads, hence the lock (held for dict operations)."""

    def __init__(self, size: int = DEFAULT_VERIFIED_TOKENS) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._entries: OrderedDict[str, _Verified] = OrderedDict()
        self._key_set: Mapping[str, PyJWK] | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, key_set: Mapping[str, PyJWK]) -> _Verified | None:
        with self._lock:
            self._retain(key_set)
            verified = self._entries.get(token)
            if verified is None:
                self.misses += 1
                return None
            self._entries.move_to_end(token)
            self.hits += 1
            return verified

    def put(self, token: str, key_set: Mapping[str, PyJWK], verified: _Verified) -> None:
        with self._lock:
            self._retain(key_set)
            self._entries[token] = verified
            self._entries.move_to_end(token)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def retain(self, key_set: Mapping[str, PyJWK]) -> None:
        """Drop every entry unless `key_set` is the one they were checked against."""
        with self._lock:
            self._retain(key_set)

    def _retain(self, key_set: Mapping[str, PyJWK]) -> None:
        if key_set is not self._key_set:
            self._entries.clear()
            self._key_set = key_set


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
        except Exception:  # whatever went wrong, the request is refused, never a 500
            log.exception("jwt authorizer failed unexpectedly")
            return self._unauthorized(ERROR)

    def _authorize(self, header: str | None) -> AuthorizerDecision:
        # Surrounding blanks are not part of an HTTP field value.
        value = header.strip(" \t") if isinstance(header, str) else ""
        if not value:
            return AuthorizerDecision(
                False, 401, MISSING, UNAUTHORIZED_BODY, {"www-authenticate": "Bearer"}, description=""
            )
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

    def _verify(self, token: str) -> _Verified | AuthorizerDecision:
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
        return _Verified(kid, key, payload, token_scopes(payload))

    def _decide(self, verified: _Verified) -> AuthorizerDecision:
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
                return AuthorizerDecision(
                    False,
                    403,
                    INSUFFICIENT_SCOPE,
                    FORBIDDEN_BODY,
                    {
                        "www-authenticate": f'Bearer scope="{self._scope_param}" error="insufficient_scope" '
                        f'error_description="{self._expected_scopes}"'
                    },
                    description=self._expected_scopes,
                )
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
        text = description if description is not None else DESCRIPTIONS[reason]
        challenge = f'Bearer scope="{self._scope_param}" error="invalid_token" error_description="{text}"'
        return AuthorizerDecision(
            False, 401, reason, UNAUTHORIZED_BODY, {"www-authenticate": challenge}, description=text
        )
