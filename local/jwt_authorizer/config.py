"""One authorizer's configuration, as API Gateway's JWT authorizer and the route's scopes define it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from cappi.domain.registry import is_loopback_host

# Leeway: API Gateway documents none ("exp must be after the current time"). 10 s absorbs clock drift between the
# issuer and this machine (NTP keeps it far below that; an unsynced laptop drifts a few seconds) while staying
# negligible against the 86,400 s token lifetime, so local mode accepts almost exactly what AWS accepts.
DEFAULT_LEEWAY_S: Final = 10.0
DEFAULT_JWKS_COOLDOWN_S: Final = 30.0
# AWS says it may cache the public keys for two hours; one hour keeps rotations visible sooner.
DEFAULT_JWKS_MAX_AGE_S: Final = 3600.0


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
