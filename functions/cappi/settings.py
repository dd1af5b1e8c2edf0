"""Environment settings, parsed once at cold start into typed objects so a missing variable fails loudly.

Each settings class is the one home of the variables its function reads: every field is declared with its
`Variable` (the name, how the text reads and is written back) and its default, so both can be asked of the class
(`QuerySettings.variables()`, `QuerySettings.default("poll_interval_s")`). `from_env` reads an environment;
`to_env` writes one that reads back to the same object (`X.from_env(x.to_env()) == x`). Infra, local mode and the
CLI build these objects and call `to_env`: no other module spells a function setting's name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from cappi.contracts import api
from cappi.domain.query import DEFAULT_POLL_INTERVAL_S
from cappi.values import number_text, read_bool, read_number, read_whole_number

# The deploy bundles the stage's registry next to the package; local mode points elsewhere.
DEFAULT_CLUBS_FILE = str(Path(__file__).resolve().parent.parent / "clubs.json")
_VARIABLE = "cappi.settings.variable"  # where a field's metadata keeps its Variable
MIB = 1024 * 1024
# The ingest body cap: a 1,000,000-call feed (about 56 MB) with room to spare; a stage may set 1 to 256 MiB.
DEFAULT_MAX_BODY_BYTES = 96 * MIB
MAX_BODY_BYTES_RANGE = (1 * MIB, 256 * MIB)


class SettingsError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable a function reads: its name, its default (MISSING: the variable is required), how
    its text reads into the field's value (ValueError: what it must be) and how the value is written back."""

    name: str
    read: Callable[[str], Any]
    write: Callable[[Any], str]
    default: Any = MISSING
    strip: bool = True  # blanks around the text are dropped before reading
    blank_is_unset: bool = True  # empty text reads as the default; else as itself

    def field(self) -> Any:
        """The settings class's field that this variable sets."""
        return dataclasses.field(default=self.default, metadata={_VARIABLE: self})

    def value(self, env: Mapping[str, str]) -> Any:
        raw = env.get(self.name)
        text = raw.strip() if raw is not None and self.strip else raw
        if text is None or (text == "" and self.blank_is_unset):
            if self.default is MISSING:
                raise SettingsError(f"environment variable {self.name} is required")
            return self.default
        try:
            return self.read(text)
        except ValueError as exc:
            raise SettingsError(f"environment variable {self.name} {exc}") from None


def _text(name: str, default: Any = MISSING, *, strip: bool = True, blank_is_unset: bool = True) -> Variable:
    return Variable(name, str, str, default, strip=strip, blank_is_unset=blank_is_unset)


def _flag(name: str, default: bool) -> Variable:
    return Variable(name, read_bool, lambda value: "true" if value else "false", default)


def _seconds(name: str, default: float) -> Variable:
    return Variable(name, lambda text: read_number(text, positive=True), number_text, default)


def _count(name: str, default: int) -> Variable:
    return Variable(name, lambda text: read_whole_number(text, positive=True), number_text, default)


def _bounded_count(name: str, default: int, low: int, high: int) -> Variable:
    return Variable(name, lambda text: read_whole_number(text, low=low, high=high), number_text, default)


def _share(name: str, default: float) -> Variable:
    return Variable(name, lambda text: read_number(text, low=0, high=1), number_text, default)


# Read by more than one function, each time the same way.
_TABLE_NAME = _text("CAPPI_TABLE_NAME")
_CLUBS_FILE = _text("CAPPI_CLUBS_FILE", DEFAULT_CLUBS_FILE, strip=False)
_REQUIRED_SCOPE = _text("CAPPI_REQUIRED_SCOPE", api.SCOPE)
_CLUB_CLAIM = _text("CAPPI_CLUB_CLAIM", api.CLUB_CLAIM, blank_is_unset=False)  # "" turns club checks off
_REQUIRE_CLUB_CLAIM = _flag("CAPPI_REQUIRE_CLUB_CLAIM", False)


class FunctionSettings:
    """What every settings class can say of itself and do; its fields are dataclass fields made by
    `Variable.field()`."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def variables(cls) -> dict[str, Variable]:
        """Field name -> its variable, in field order."""
        return {f.name: f.metadata[_VARIABLE] for f in dataclasses.fields(cls)}

    @classmethod
    def default(cls, field: str) -> Any:
        """The value of `field` when its variable is unset (KeyError when it is required)."""
        default = cls.variables()[field].default
        if default is MISSING:
            raise KeyError(f"{cls.__name__}.{field} is required: it has no default")
        return default

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **given: Any) -> Self:
        """The settings `env` holds, except the fields in `given`, which are taken as they are."""
        variables = cls.variables()
        unknown = sorted(set(given) - set(variables))
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {', '.join(unknown)}")
        values = {name: given[name] if name in given else v.value(env) for name, v in variables.items()}
        return cls(**values)

    def to_env(self, *, defaults: bool = True) -> dict[str, str]:
        """The environment that reads back to these settings; with `defaults` off, without the variables whose
        value is their default (the function falls back to it when they are unset)."""
        env = {}
        for name, variable in self.variables().items():
            value = getattr(self, name)
            if defaults or variable.default is MISSING or value != variable.default:
                env[variable.name] = variable.write(value)
        return env


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings(FunctionSettings):
    clubs_file: str = _CLUBS_FILE.field()
    table_name: str = _TABLE_NAME.field()
    fetch_deadline_s: float = _seconds("CAPPI_FETCH_DEADLINE_S", 120.0).field()
    # The feed body cap, before and after decompression: a 1,000,000-call feed is about 56 MB.
    max_body_bytes: int = _bounded_count("CAPPI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, *MAX_BODY_BYTES_RANGE).field()
    secrets_max_age_s: float = _seconds("CAPPI_SECRETS_MAX_AGE_S", 300.0).field()


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSettings(FunctionSettings):
    clubs_file: str = _CLUBS_FILE.field()
    ingest_function: str = _text("CAPPI_INGEST_FUNCTION").field()
    # Where the heads are: dispatch counts the stale sources on every tick (cappi.domain.staleness).
    table_name: str = _TABLE_NAME.field()
    # The stage's staleness bound, the one `cappi status` uses (stack output StaleAfterSeconds).
    stale_after_s: float = _seconds("CAPPI_STALE_AFTER_S", 1800.0).field()
    # Ticks per poll interval: each source is started on one of them (cappi.domain.dispatch). The stage's schedule
    # ticks every minute with as many slots as the interval has minutes; local mode ticks once per interval.
    poll_slots: int = _count("CAPPI_POLL_SLOTS", 1).field()


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySettings(FunctionSettings):
    """The query Lambda's stage settings (CDK sets them from the stage config; local mode from its own)."""

    clubs_file: str = _CLUBS_FILE.field()
    table_name: str = _TABLE_NAME.field()
    # Checked again in the handler, whatever the route's authorizer says.
    required_scope: str = _REQUIRED_SCOPE.field()
    # The claim listing the clubs a client may read ("" disables club-level authorization).
    club_claim: str = _CLUB_CLAIM.field()
    # Refuse tokens that lack the club claim.
    require_club_claim: bool = _REQUIRE_CLUB_CLAIM.field()
    # Answer one call as [["8679"]], as the integration document's example shows.
    nested_single_result: bool = _flag("CAPPI_NESTED_SINGLE_RESULT", False).field()
    # How long a warm Lambda trusts its cached snapshot pointer (staleness bound).
    pointer_max_age_s: float = _seconds("CAPPI_POINTER_MAX_AGE_S", 10.0).field()
    # Cache-Control max-age for clients.
    cache_max_age_s: int = _count("CAPPI_CACHE_MAX_AGE_S", 30).field()
    # The ingest schedule's period: a 503's Retry-After counts down to the next poll.
    poll_interval_s: float = _seconds("CAPPI_POLL_INTERVAL_S", DEFAULT_POLL_INTERVAL_S).field()
    # Share of successful answers (200, 304) that get the `request` log line; every refusal and failure gets one.
    # API Gateway's access log records every request, so a line per answer would pay CloudWatch Logs twice; infra
    # sets a small share, local mode and tests keep every line.
    request_log_sample_rate: float = _share("CAPPI_REQUEST_LOG_SAMPLE_RATE", 1.0).field()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseCheckSettings(FunctionSettings):
    """The release check's settings: what the query reads from a token (the same values as the query function's,
    so its synthetic request passes the query's own checks: `for_query`), and the query version it asks."""

    clubs_file: str = _CLUBS_FILE.field()
    table_name: str = _TABLE_NAME.field()
    required_scope: str = _REQUIRED_SCOPE.field()
    club_claim: str = _CLUB_CLAIM.field()
    require_club_claim: bool = _REQUIRE_CLUB_CLAIM.field()
    # ARN of the query function's version being released (qualified with its number).
    query_version: str = _text("CAPPI_QUERY_VERSION").field()

    @classmethod
    def for_query(cls, query: QuerySettings, *, query_version: str) -> ReleaseCheckSettings:
        """The check of `query_version`, a version of the query function with settings `query`: every setting the
        two share has the query's value."""
        shared = set(cls.variables()) & set(QuerySettings.variables())
        return cls(query_version=query_version, **{name: getattr(query, name) for name in shared})


# Every function's settings, for whoever needs their variables (tests/unit/test_settings.py).
FUNCTION_SETTINGS: tuple[type[FunctionSettings], ...] = (
    IngestSettings,
    DispatchSettings,
    QuerySettings,
    ReleaseCheckSettings,
)
