"""Where CAPPI runs: the two deployed environments, local mode, or any base URL with its token URL and audience.

The URLs are the integration document's "Club Assist Environments": the token audience is CAPPI's base URL, and
the token URL is the Auth0 tenant's `oauth/token`. Local mode (`make run` in the CAPPI repository) serves both the
API and a compatible token endpoint on one port. `resolve("local")` (and `cappi-client --env local`) finds the
running instance as `cappi` does: `CAPPI_PORT` if set, else the file local mode writes at start,
`<CAPPI_STATE_DIR>/endpoints.json` (default `.local/` in the current directory or a parent: the CAPPI checkout),
whose `api`, `token_url` and `audience` keys this reads. That file's format is a contract shared with
`cappi.contracts.local_state` without importing it (tests/unit/test_cappi_client_contract.py holds both sides to it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cappi_client.errors import ConfigurationError

ROUTE = "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
LOCAL_HOST = "127.0.0.1"
LOCAL_DEFAULT_PORT = 3000
LOCAL_STATE_DIR = ".local"  # local mode's CAPPI_STATE_DIR default, relative to the CAPPI checkout
LOCAL_ENDPOINTS_FILE = "endpoints.json"  # written by a running local mode, removed when it stops


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


def running_local(env: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Environment:
    """The local mode running on this machine: `CAPPI_PORT` when set, else what its endpoints file says (under
    `CAPPI_STATE_DIR`, else `.local/` in `cwd` or its nearest parent that has one). Says which variable to set when
    neither finds it."""
    if env.get("CAPPI_PORT", "").strip():
        return local(env=env)
    given = env.get("CAPPI_STATE_DIR", "").strip()
    if given:
        candidates = [Path(given).expanduser()]
    else:
        here = (cwd or Path.cwd()).resolve()
        candidates = [directory / LOCAL_STATE_DIR for directory in (here, *here.parents)]
    for state_dir in candidates:
        path = state_dir / LOCAL_ENDPOINTS_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read local mode's {path} ({exc}): restart it with `make run`, or set CAPPI_PORT"
            ) from None
        return _from_endpoints(document, path)
    where = f"CAPPI_STATE_DIR={given}" if given else f"{LOCAL_STATE_DIR}/ here or in a parent directory"
    raise ConfigurationError(
        f"local mode not found (no {LOCAL_ENDPOINTS_FILE} under {where}): start it with `make run`, then run this "
        "from the CAPPI checkout, or set CAPPI_STATE_DIR to its state directory, or CAPPI_PORT to its port"
    )


def _from_endpoints(document: object, path: Path) -> Environment:
    api = document.get("api") if isinstance(document, dict) else None
    if not isinstance(api, str) or not api:
        raise ConfigurationError(f"{path} has no `api` URL: restart local mode with `make run`, or set CAPPI_PORT")
    assert isinstance(document, dict)
    token_url = document.get("token_url")
    audience = document.get("audience")
    return Environment(
        "local",
        api,
        token_url if isinstance(token_url, str) and token_url else api.rstrip("/") + "/oauth/token",
        audience if isinstance(audience, str) and audience else api.rstrip("/"),
    )


def resolve(environment: str | Environment) -> Environment:
    """An Environment from its name (`stage`, `prod`, `local`: the running local mode) or as given."""
    if isinstance(environment, Environment):
        return environment
    if environment == "local":
        return running_local()
    if environment in ENVIRONMENTS:
        return ENVIRONMENTS[environment]
    raise ConfigurationError(
        f"unknown environment {environment!r}: use one of {', '.join(NAMES)} or Environment.custom"
    )
