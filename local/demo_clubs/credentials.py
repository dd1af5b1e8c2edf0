"""What a simulated club endpoint accepts: its authentication type and secret, the headers it requires, and the
OAuth2 access tokens it has issued. Nothing here echoes a secret in a refusal."""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from cappi.domain.registry import AUTH_TYPES

SECRET_PREFIX = "cappi/local/clubs/"  # noqa: S105 - a name prefix, not a value
DOCUMENT_HEADERS = {"Ident": "ClubAssist", "User-Agent": "API Services B2B Partners"}  # the document's example


class ClubCredentials:
    """The credentials of the club endpoint `name`, in the registry's auth types (cappi.domain.registry)."""

    def __init__(
        self,
        name: str,
        auth: str = "none",
        secret: str | None = None,
        *,
        api_key_header: str = "X-Api-Key",
        client_id: str | None = None,
        required_headers: Mapping[str, str] | None = None,
        token_lifetime_s: int = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if auth not in AUTH_TYPES:
            raise ValueError(f"unknown auth type {auth!r}")
        if auth != "none" and not secret:
            raise ValueError(f"auth type {auth!r} needs a secret")
        if auth == "basic" and ":" not in (secret or ""):
            raise ValueError("basic auth needs a 'user:password' secret")
        self.name = name
        self.auth = auth
        self.secret = secret
        self.api_key_header = api_key_header
        self.client_id = client_id or ("cappi-local" if auth == "oauth2_client_credentials" else None)
        self.required_headers = dict(required_headers or {})
        self.token_lifetime_s = token_lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # access token -> expiry on `clock`

    @property
    def secret_name(self) -> str | None:
        """The secret's name (its value goes in the local SSM parameter "/" + the name), None for an endpoint
        without authentication."""
        return SECRET_PREFIX + self.name if self.auth != "none" else None

    def registry_auth(self, club_base: str) -> dict[str, Any]:
        """The `auth` object of this endpoint's registry entry, for an endpoint served at `club_base`."""
        auth: dict[str, Any] = {"type": self.auth}
        if self.auth != "none":
            auth["secret"] = self.secret_name
        if self.auth == "api_key":
            auth["header"] = self.api_key_header
        if self.auth == "oauth2_client_credentials":
            auth["token_url"] = f"{club_base}/oauth/token"
            auth["client_id"] = self.client_id
        return auth

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a feed request with these headers is refused, or None when its credentials are good."""
        got = {k.lower(): v for k, v in headers.items()}
        for name, value in self.required_headers.items():
            if got.get(name.lower()) != value:
                return f"missing or wrong {name} header"
        if self.auth == "none":
            return None
        if self.auth == "api_key":
            return None if _same(got.get(self.api_key_header.lower()), self.secret) else f"bad {self.api_key_header}"
        authorization = got.get("authorization") or ""
        scheme, _, credential = authorization.partition(" ")
        if self.auth == "basic":
            return (
                None if scheme.lower() == "basic" and _same(_unbase64(credential), self.secret) else "bad credentials"
            )
        if scheme.lower() != "bearer" or not credential:
            return "missing bearer token"
        if self.auth == "bearer":
            return None if _same(credential.strip(), self.secret) else "bad bearer token"
        with self._lock:
            expiry = self._tokens.get(credential.strip())
            if expiry is None or expiry <= self._clock():
                return "unknown or expired access token"
        return None

    def issue_token(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """The club's own OAuth2 token endpoint (form-encoded client_credentials, as RFC 6749 has it)."""
        if self.auth != "oauth2_client_credentials":
            return 404, {"error": "not_found"}
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return 400, {"error": "invalid_request"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if authorization.lower().startswith("basic "):
            client_id, _, secret = (_unbase64(authorization[6:]) or "").partition(":")
        if client_id != self.client_id or not _same(secret, self.secret):
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + self.token_lifetime_s
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s}

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()


def _same(given: str | None, expected: str | None) -> bool:
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _unbase64(value: str) -> str | None:
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
