"""The local-mode contract (DESIGN.md section 5): environment variables, read once at start."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cappi.contracts.local_state import DEFAULT_STATE_DIR as LOCAL_STATE_DIR
from cappi.settings import QuerySettings
from cappi.values import read_bool, read_number, read_whole_number

DEFAULT_PORT = 3000
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / LOCAL_STATE_DIR
DEFAULT_INTERVAL_S: float = QuerySettings.default("poll_interval_s")  # the stages' schedule
# Local mode's registry is the functions' own variable: the functions read what local mode was given.
CLUBS_FILE = QuerySettings.variables()["clubs_file"].name


class LocalConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LocalConfig:
    port: int
    clubs_file: Path | None  # None: the built-in demo clubs
    secrets_file: Path | None  # None: the demo secrets (or none, with a custom registry)
    interval_s: float
    issuer: str | None  # None: the built-in local issuer
    audience: str | None  # None: the local base URL
    clients_file: Path | None  # None: one demo client
    host: str = "127.0.0.1"
    state_dir: Path = DEFAULT_STATE_DIR  # logs, the generated demo registry and the kept state (local/state.py)
    fresh: bool = False  # discard the kept state (signing key, snapshots) before starting

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def local_issuer(self) -> str:
        return f"{self.base_url}/"

    @property
    def effective_issuer(self) -> str:
        return self.issuer or self.local_issuer

    @property
    def effective_audience(self) -> str:
        return self.audience or self.base_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LocalConfig:
        def path(name: str) -> Path | None:
            raw = env.get(name, "").strip()
            if not raw:
                return None
            value = Path(raw).expanduser()
            if not value.is_file():
                raise LocalConfigError(f"{name}={raw}: no such file; give an existing file's path, or unset {name}")
            return value

        port_raw = env.get("CAPPI_PORT", "").strip() or str(DEFAULT_PORT)
        try:
            port = read_whole_number(port_raw, low=0, high=65535)
        except ValueError:
            raise LocalConfigError(f"CAPPI_PORT must be a port number (0-65535), got {port_raw!r}") from None
        interval_raw = env.get("CAPPI_INGEST_INTERVAL", "").strip() or str(DEFAULT_INTERVAL_S)
        try:
            interval = read_number(interval_raw, low=1)
        except ValueError as exc:
            raise LocalConfigError(f"CAPPI_INGEST_INTERVAL (seconds) {exc}") from None
        issuer = env.get("CAPPI_ISSUER", "").strip() or None
        if issuer and not issuer.endswith("/"):
            raise LocalConfigError(f"CAPPI_ISSUER must end with '/' as Auth0 issuers do, got {issuer!r}")
        fresh_raw = env.get("CAPPI_FRESH", "").strip() or "0"
        try:
            fresh = read_bool(fresh_raw)
        except ValueError:
            raise LocalConfigError(f"CAPPI_FRESH must be 1 or 0, got {fresh_raw!r}") from None
        return cls(
            port=port,
            clubs_file=path(CLUBS_FILE),
            secrets_file=path("CAPPI_SECRETS_FILE"),
            interval_s=interval,
            issuer=issuer,
            audience=env.get("CAPPI_AUDIENCE", "").strip() or None,
            clients_file=path("CAPPI_CLIENTS_FILE"),
            state_dir=Path(env.get("CAPPI_STATE_DIR", "").strip() or DEFAULT_STATE_DIR),
            fresh=fresh,
        )


_SECRETS_FIX = '; fix the file ({"secret name": "value", ...}) or unset CAPPI_SECRETS_FILE'


def load_secrets(path: Path) -> dict[str, str]:
    """CAPPI_SECRETS_FILE: a JSON object of secret name -> value (a string, or an object stored as JSON text)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LocalConfigError(f"CAPPI_SECRETS_FILE={path}: not a readable JSON file ({exc}){_SECRETS_FIX}") from None
    if not isinstance(data, dict):
        raise LocalConfigError(
            f"CAPPI_SECRETS_FILE={path}: must be a JSON object of secret name -> value{_SECRETS_FIX}"
        )
    secrets: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, str):
            secrets[name] = value
        elif isinstance(value, dict):
            secrets[name] = json.dumps(value)
        else:
            raise LocalConfigError(
                f"CAPPI_SECRETS_FILE={path}: secret {name!r} must be a string or an object{_SECRETS_FIX}"
            )
    return secrets
