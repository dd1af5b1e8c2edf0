"""Environment settings, parsed once at cold start into typed objects so a missing variable fails loudly."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cappi.contracts import api

# The deploy bundles the stage's registry next to the package; local mode points elsewhere.
DEFAULT_CLUBS_FILE = str(Path(__file__).resolve().parent.parent / "clubs.json")


class SettingsError(RuntimeError):
    pass


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, kind="a number", rule="positive", valid=lambda value: value > 0)


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    between = "a number from 0 to 1"
    return _number(env, name, default, kind=between, rule=between, valid=lambda value: 0 <= value <= 1)


def _number(
    env: Mapping[str, str], name: str, default: float, *, kind: str, rule: str, valid: Callable[[float], bool]
) -> float:
    """`name` as a float, `default` when unset or empty; SettingsError saying it must be `kind` (not a number) or
    `rule` (out of range)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be {kind}, got {raw!r}") from None
    if not valid(value):
        raise SettingsError(f"environment variable {name} must be {rule}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class IngestSettings:
    table_name: str
    clubs_file: str
    fetch_deadline_s: float
    max_body_bytes: int
    secrets_max_age_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> IngestSettings:
        return cls(
            table_name=_required(env, "CAPPI_TABLE_NAME"),
            clubs_file=env.get("CAPPI_CLUBS_FILE") or DEFAULT_CLUBS_FILE,
            fetch_deadline_s=_float(env, "CAPPI_FETCH_DEADLINE_S", 120.0),
            max_body_bytes=int(_float(env, "CAPPI_MAX_BODY_BYTES", 50 * 1024 * 1024)),
            secrets_max_age_s=_float(env, "CAPPI_SECRETS_MAX_AGE_S", 300.0),
        )


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    clubs_file: str
    ingest_function: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DispatchSettings:
        return cls(
            clubs_file=env.get("CAPPI_CLUBS_FILE") or DEFAULT_CLUBS_FILE,
            ingest_function=_required(env, "CAPPI_INGEST_FUNCTION"),
        )


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"environment variable {name} must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class QuerySettings:
    """The query Lambda's stage settings (CDK sets them from the stage config; local mode from its own)."""

    table_name: str
    clubs_file: str
    required_scope: str  # checked again in the handler, whatever the route's authorizer says
    club_claim: str  # claim listing the clubs a client may read ("" disables club-level authorization)
    require_club_claim: bool  # refuse tokens that lack the club claim
    nested_single_result: bool  # answer one call as [["8679"]], as the integration document's example shows
    pointer_max_age_s: float  # how long a warm Lambda trusts its cached snapshot pointer (staleness bound)
    cache_max_age_s: int  # Cache-Control max-age for clients
    poll_interval_s: float = 600.0  # the ingest schedule's period: a 503's Retry-After counts down to the next poll
    # Share of successful answers (200, 304) that get the `request` log line; every refusal and failure gets one.
    # API Gateway's access log records every request, so a line per answer would pay CloudWatch Logs twice; infra
    # sets a small share, local mode and tests keep every line.
    request_log_sample_rate: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> QuerySettings:
        return cls(
            table_name=_required(env, "CAPPI_TABLE_NAME"),
            clubs_file=env.get("CAPPI_CLUBS_FILE") or DEFAULT_CLUBS_FILE,
            required_scope=env.get("CAPPI_REQUIRED_SCOPE", api.SCOPE).strip() or api.SCOPE,
            club_claim=env.get("CAPPI_CLUB_CLAIM", api.CLUB_CLAIM).strip(),
            require_club_claim=_bool(env, "CAPPI_REQUIRE_CLUB_CLAIM", False),
            nested_single_result=_bool(env, "CAPPI_NESTED_SINGLE_RESULT", False),
            pointer_max_age_s=_float(env, "CAPPI_POINTER_MAX_AGE_S", 10.0),
            cache_max_age_s=int(_float(env, "CAPPI_CACHE_MAX_AGE_S", 30.0)),
            poll_interval_s=_float(env, "CAPPI_POLL_INTERVAL_S", 600.0),
            request_log_sample_rate=_fraction(env, "CAPPI_REQUEST_LOG_SAMPLE_RATE", 1.0),
        )


@dataclass(frozen=True, slots=True)
class ReleaseCheckSettings:
    """The release check's settings: the query version it asks, and what the query reads from a token (the same
    values as the query function's, so its synthetic request passes the query's own checks)."""

    table_name: str
    clubs_file: str
    query_version: str  # ARN of the query function's version being released (qualified with its number)
    required_scope: str
    club_claim: str
    require_club_claim: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ReleaseCheckSettings:
        return cls(
            table_name=_required(env, "CAPPI_TABLE_NAME"),
            clubs_file=env.get("CAPPI_CLUBS_FILE") or DEFAULT_CLUBS_FILE,
            query_version=_required(env, "CAPPI_QUERY_VERSION"),
            required_scope=env.get("CAPPI_REQUIRED_SCOPE", api.SCOPE).strip() or api.SCOPE,
            club_claim=env.get("CAPPI_CLUB_CLAIM", api.CLUB_CLAIM).strip(),
            require_club_claim=_bool(env, "CAPPI_REQUIRE_CLUB_CLAIM", False),
        )
