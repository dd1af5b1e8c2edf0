"""Where CAPPI runs: the two deployed environments, local mode, or any base URL with its token URL and audience.

The URLs are the integration document's "Club Assist Environments": the token audience is CAPPI's base URL, and
the token URL is the Auth0 tenant's `oauth/token`. Local mode (`make run` in the CAPPI repository) serves both the
API and a compatible token endpoint on one port, `CAPPI_PORT` (default 3000).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cappi_client.errors import ConfigurationError

ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
LOCAL_HOST = "127.0.0.1"
LOCAL_DEFAULT_PORT = 3000


@dataclass(frozen=True, slots=True)
class Environment:
    """One CAPPI as a tester app sees it: where to ask, where to get a token, and for which audience."""

    name: str
    base_url: str  # no trailing slash
    token_url: str
    audience: str

    def __post_init__(self) -> None:
        for field in ("base_url", "token_url"):
            value = getattr(self, field)
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError(f"{field} must be an http(s) URL, got {value!r}")
        if not self.audience:
            raise ConfigurationError("audience must not be empty")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def url_for(self, club_id: int, tech_id: str) -> str:
        """The query URL for an already validated ClubId and TechId."""
        return self.base_url + ROUTE.format(ClubId=club_id, TechId=tech_id)

    @classmethod
    def custom(cls, base_url: str, token_url: str, audience: str | None = None, name: str = "custom") -> Environment:
        """Any CAPPI: the audience defaults to the base URL, as CAPPI's own environments have it."""
        return cls(name, base_url, token_url, audience or base_url.rstrip("/"))


def _deployed(name: str, base_url: str, issuer: str) -> Environment:
    return Environment(name, base_url, f"{issuer}oauth/token", base_url)


ENVIRONMENTS: dict[str, Environment] = {
    "stage": _deployed("stage", "https://stagecappi.clubassist.com", "https://stage-clubassist.auth0.com/"),
    "prod": _deployed("prod", "https://cappi.clubassist.com", "https://prod-clubassist.auth0.com/"),
}
NAMES = (*ENVIRONMENTS, "local")


def local(port: int | None = None, env: Mapping[str, str] = os.environ) -> Environment:
    """Local mode on this machine: `port`, else `CAPPI_PORT`, else 3000 (read when called, not at import)."""
    if port is None:
        raw = env.get("CAPPI_PORT", "").strip() or str(LOCAL_DEFAULT_PORT)
        if not raw.isdigit() or not 0 < int(raw) <= 65535:
            raise ConfigurationError(f"CAPPI_PORT must be a port number (1-65535), got {raw!r}")
        port = int(raw)
    base = f"http://{LOCAL_HOST}:{port}"
    return Environment("local", base, f"{base}/oauth/token", base)


def resolve(environment: str | Environment) -> Environment:
    """An Environment from its name (`stage`, `prod`, `local`) or as given."""
    if isinstance(environment, Environment):
        return environment
    if environment == "local":
        return local()
    if environment in ENVIRONMENTS:
        return ENVIRONMENTS[environment]
    raise ConfigurationError(
        f"unknown environment {environment!r}: use one of {', '.join(NAMES)} or Environment.custom"
    )
