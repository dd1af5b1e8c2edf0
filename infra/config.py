"""Typed per-stage configuration, built from `cdk.json` context and overridable with `-c <stage>:<key>=<value>`.

`cdk.json` holds each stage's settings under `cappi:<stage>`; a `-c stage:throttle_rate=200` on the command line
wins over it. Every value is parsed and checked here, and every problem is reported at once, so a typo fails the
synth with the key's name instead of surfacing as a broken deploy.

`query_release` is how CodeDeploy moves API traffic to a new version of the query function (infra/release.py), one
of `QUERY_RELEASES`: `canary-10-5m` (the default: 10% for 5 minutes, then the rest), `canary-10-<n>m` for 10, 15
or 30 minutes, `linear-10-<n>m` (10% more every 1, 2, 3 or 10 minutes) or `all-at-once`. Every one of them first
runs the release check on the new version and rolls back on its failure or on a release alarm.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import aws_logs as logs
from constructs import Node

from cappi.contracts.stack import stack_name
from cappi.settings import MAX_BODY_BYTES_RANGE, IngestSettings, QuerySettings
from cappi.values import read_bool, read_number, read_whole_number

ROOT = Path(__file__).resolve().parent.parent

# The query Lambda's own defaults (cappi.settings) are the stage defaults, so the two never disagree.
_QUERY_DEFAULT = QuerySettings.default
# The ingest function's memory: a changed poll of a 1,000,000-call feed (56 MB) peaks at about 600 MB in a process
# that also holds boto3, moto and the club's copy of the body (bench/ingest.py --rows 1000000), so 1,024 MB leaves
# it 1.7 times what it needs; feeds near the body cap need more (docs/operations.md).
DEFAULT_INGEST_MEMORY_MB = 1024
INGEST_MEMORY_RANGE_MB = (512, 10_240)  # Lambda's own upper bound
# Retention periods CloudWatch Logs accepts, in days, and CDK's name for each.
LOG_RETENTION: Mapping[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
}
LOG_RETENTION_DAYS = tuple(LOG_RETENTION)
PRODUCTION = "prod"  # the stage whose alarms must notify someone: it refuses to synthesize without an address
_STAGE_NAME = re.compile(r"[a-z][a-z0-9]{0,15}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class QueryRelease:
    """One of CodeDeploy's predefined Lambda deployment configurations."""

    kind: str  # "canary", "linear" or "all-at-once"
    percent: int  # canary: share of the first step; linear: share added at each step
    interval_minutes: int  # between steps

    @property
    def codedeploy_name(self) -> str:
        """CodeDeploy's name for it, as the deployment group names it."""
        if self.kind == "canary":
            return f"CodeDeployDefault.LambdaCanary{self.percent}Percent{self.interval_minutes}Minutes"
        if self.kind == "linear":
            unit = "Minute" if self.interval_minutes == 1 else "Minutes"
            return f"CodeDeployDefault.LambdaLinear{self.percent}PercentEvery{self.interval_minutes}{unit}"
        return "CodeDeployDefault.LambdaAllAtOnce"

    @property
    def cdk_name(self) -> str:
        """The attribute of aws_codedeploy.LambdaDeploymentConfig."""
        if self.kind == "canary":
            return f"CANARY_{self.percent}_PERCENT_{self.interval_minutes}_MINUTES"
        if self.kind == "linear":
            unit = "MINUTE" if self.interval_minutes == 1 else "MINUTES"
            return f"LINEAR_{self.percent}_PERCENT_EVERY_{self.interval_minutes}_{unit}"
        return "ALL_AT_ONCE"

    @property
    def shifting_minutes(self) -> int:
        """From the first shifted request to all traffic on the new version (the release check runs before)."""
        if self.kind == "canary":
            return self.interval_minutes
        if self.kind == "linear":
            return (100 // self.percent - 1) * self.interval_minutes
        return 0


QUERY_RELEASES: Mapping[str, QueryRelease] = {
    "canary-10-5m": QueryRelease("canary", 10, 5),
    "canary-10-10m": QueryRelease("canary", 10, 10),
    "canary-10-15m": QueryRelease("canary", 10, 15),
    "canary-10-30m": QueryRelease("canary", 10, 30),
    "linear-10-1m": QueryRelease("linear", 10, 1),
    "linear-10-2m": QueryRelease("linear", 10, 2),
    "linear-10-3m": QueryRelease("linear", 10, 3),
    "linear-10-10m": QueryRelease("linear", 10, 10),
    "all-at-once": QueryRelease("all-at-once", 100, 0),
}
DEFAULT_QUERY_RELEASE = "canary-10-5m"


@dataclass(frozen=True, slots=True)
class StageConfig:
    stage: str
    issuer: str  # Auth0 tenant URL with its trailing slash: API Gateway compares `iss` byte for byte
    audience: str  # the stage's base URL, which Auth0 puts in `aud`
    clubs_file: Path
    retain_data: bool  # keep the table and logs when the stack is deleted (prod)
    alarm_email: str = ""  # "" = alarms go to the topic only (synth warns)
    schedule_minutes: int = round(_QUERY_DEFAULT("poll_interval_s") / 60)  # the query's poll interval, in minutes
    throttle_rate: float = 100.0  # steady requests per second for the whole API
    throttle_burst: int = 200
    log_retention_days: int = 30
    domain_name: str = ""  # optional custom domain for the API
    certificate_arn: str = ""  # ACM certificate for domain_name, in the stack's region
    static_egress: bool = False  # ingest calls clubs from fixed addresses (a VPC with NAT gateways and Elastic IPs)
    egress_addresses: int = 1  # how many (one NAT gateway and address per availability zone)
    # Query Lambda settings (see cappi.settings.QuerySettings).
    required_scope: str = _QUERY_DEFAULT("required_scope")
    club_claim: str = _QUERY_DEFAULT("club_claim")
    require_club_claim: bool = _QUERY_DEFAULT("require_club_claim")
    nested_single_result: bool = _QUERY_DEFAULT("nested_single_result")
    pointer_max_age_s: float = _QUERY_DEFAULT("pointer_max_age_s")
    cache_max_age_s: int = _QUERY_DEFAULT("cache_max_age_s")
    # Share of the query function's successful answers it logs a line for (every refusal and failure is logged;
    # API Gateway's access log records every request): cappi.settings.QuerySettings.request_log_sample_rate.
    request_log_sample_rate: float = 0.01
    # Concurrent executions reserved for the query function (a floor and a cap). Unset: what the steady throttle
    # needs, infra/api.py query_concurrency.
    query_reserved_concurrency: int | None = None
    # Concurrent executions reserved for the ingest function (a floor no burst of queries can take, and a cap),
    # whatever the number of sources: polls are spread over the interval, so at most a slot's share of the sources
    # (1,000 sources, 10 slots: 100) is started each minute. 50 runs them all within the minute while a poll takes
    # 30 s on average (100 x 30 s / 60 s); beyond that, throttled invokes wait in Lambda's queue and are retried
    # (docs/operations.md, Capacity).
    ingest_reserved_concurrency: int = 50
    # Concurrency of the account and region the stage deploys to (Lambda's default quota), against which the
    # stack's reservations are checked: AWS keeps at least 100 unreserved. `cappi preflight` checks the real one.
    account_concurrency: int = 1000
    # Ingest: the feed body cap, before and after decompression (cappi.settings.IngestSettings.max_body_bytes), and
    # the function's memory, which must hold a changed poll of a feed of that size.
    max_body_bytes: int = IngestSettings.default("max_body_bytes")
    ingest_memory_mb: int = DEFAULT_INGEST_MEMORY_MB
    # Alarm thresholds. A source is stale when the list its readers see was last confirmed longer ago than this
    # (three poll intervals at the default 10 minutes: two failed polls in a row are not yet an alarm).
    stale_after_s: int = 1800
    rejected_ratio_alarm_percent: float = 1.0  # below the 5% at which a whole poll is rejected: warns first
    api_5xx_alarm_percent: float = 5.0
    api_p99_alarm_ms: int = 2000  # also the query release's latency alarm (p99 of the live alias per minute)
    # How CodeDeploy shifts API traffic to a new query version: a key of QUERY_RELEASES (module docstring).
    query_release: str = DEFAULT_QUERY_RELEASE

    def resource_name(self, suffix: str) -> str:
        return f"cappi-{self.stage}-{suffix}"

    def function_name(self, role: str) -> str:
        return self.resource_name(role)

    def function_log_group_name(self, role: str) -> str:
        return f"/aws/lambda/{self.function_name(role)}"

    def alarm_name(self, subject: str, condition: str) -> str:
        return self.resource_name(f"{subject}-{condition}")

    @property
    def stack_name(self) -> str:
        return stack_name(self.stage)

    @property
    def schedule_expression(self) -> str:
        """The dispatch schedule ticks every minute; each tick starts one slot's sources (`poll_slots`)."""
        return "rate(1 minute)"

    @property
    def poll_slots(self) -> int:
        """Slots per poll interval, one per minute: each source is polled on its own slot, once per interval."""
        return self.schedule_minutes

    @property
    def query_release_plan(self) -> QueryRelease:
        return QUERY_RELEASES[self.query_release]  # one of them: the config checked it

    @property
    def custom_domain(self) -> bool:
        return bool(self.domain_name)

    @classmethod
    def from_context(cls, node: Node, stage: str) -> StageConfig:
        raw: dict[str, Any] = dict(node.try_get_context(f"cappi:{stage}") or {})
        prefix = f"{stage}:"
        # Every `-c <stage>:<key>` counts, known or not, so a mistyped key fails instead of being ignored.
        for name, value in node.get_all_context().items():
            if name.startswith(prefix) and value is not None:
                raw[name.removeprefix(prefix)] = value
        return cls.from_mapping(stage, raw)

    @classmethod
    def from_mapping(cls, stage: str, raw: Mapping[str, Any]) -> StageConfig:
        problems: list[str] = []
        if not _STAGE_NAME.fullmatch(stage):
            problems.append("the stage name must be 1-16 lowercase letters and digits, starting with a letter")
        unknown = sorted(set(raw) - set(_PARSERS))
        if unknown:
            problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_PARSERS))})")
        values: dict[str, Any] = {}
        for key, parse in _PARSERS.items():
            if key not in raw or raw[key] is None:
                continue
            try:
                values[key] = parse(raw[key])
            except (TypeError, ValueError) as exc:
                problems.append(f"{key}: {exc}")
        for key in ("issuer", "audience", "clubs_file"):
            if not values.get(key) and not any(p.startswith(f"{key}:") for p in problems):
                problems.append(f"{key}: missing")
        values.setdefault("retain_data", stage == "prod")
        problems.extend(_cross_checks(values))
        if (
            stage == PRODUCTION
            and not values.get("alarm_email")
            and not any(p.startswith("alarm_email:") for p in problems)
        ):
            problems.append(
                "alarm_email: missing; prod's alarms must reach someone. Set alarm_email in cdk.json or pass "
                "-c prod:alarm_email=ops@example.org (AWS mails a confirmation link to it on the first deploy)"
            )
        if problems:
            where = f"stage {stage!r} (cdk.json 'cappi:{stage}', or -c {stage}:<key>=<value>)"
            raise ConfigError(f"{where}:\n" + "\n".join(f"  - {p}" for p in problems))
        return cls(stage=stage, **values)


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"must be a string, got {value!r}")
    return str(value).strip()


def _number(kind: type, low: float, high: float) -> Callable[[Any], Any]:
    read = read_whole_number if kind is int else read_number
    return lambda value: read(value, low=low, high=high)


def _url(value: Any) -> str:
    text = _text(value)
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", text):
        raise ValueError(f"must be an https:// URL, got {value!r}")
    return text


def _issuer(value: Any) -> str:
    text = _url(value)
    if not text.endswith("/"):
        raise ValueError(f"must end with '/' (Auth0 issuers do, and API Gateway compares exactly): {value!r}")
    return text


def _clubs_file(value: Any) -> Path:
    text = _text(value)
    if not text:
        raise ValueError("must name the stage's club registry file")
    return ROOT / text  # an absolute path stays absolute


def _retention(value: Any) -> int:
    days = _number(int, 1, 3653)(value)
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} days, got {value!r}")
    return days


def _pattern(pattern: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value)
        if text and not pattern.fullmatch(text):
            raise ValueError(f"must be {what} (or empty), got {value!r}")
        return text

    return parse


def _choice(choices: Mapping[str, Any]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _scope(value: Any) -> str:
    text = _text(value)
    if not re.fullmatch(r"[!#-\[\]-~]+", text):
        raise ValueError(f"must be one OAuth scope without spaces, got {value!r}")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "issuer": _issuer,
    "audience": _url,
    "clubs_file": _clubs_file,
    "retain_data": read_bool,
    "alarm_email": _pattern(_EMAIL, "an e-mail address"),
    "schedule_minutes": _number(int, 1, 60),
    "throttle_rate": _number(float, 1, 10_000),
    "throttle_burst": _number(int, 1, 5_000),
    "log_retention_days": _retention,
    "domain_name": _pattern(_DOMAIN, "a lowercase domain name"),
    "certificate_arn": _pattern(_CERTIFICATE_ARN, "an ACM certificate ARN"),
    "static_egress": read_bool,
    "egress_addresses": _number(int, 1, 3),
    "required_scope": _scope,
    "club_claim": _text,
    "require_club_claim": read_bool,
    "nested_single_result": read_bool,
    "pointer_max_age_s": _number(float, 0.1, 300),
    "cache_max_age_s": _number(int, 1, 3600),
    "request_log_sample_rate": _number(float, 0, 1),
    "query_reserved_concurrency": _number(int, 1, 5_000),
    "ingest_reserved_concurrency": _number(int, 1, 5_000),
    "account_concurrency": _number(int, 100, 1_000_000),
    "max_body_bytes": _number(int, *MAX_BODY_BYTES_RANGE),
    "ingest_memory_mb": _number(int, *INGEST_MEMORY_RANGE_MB),
    "stale_after_s": _number(int, 600, 86_400),
    "rejected_ratio_alarm_percent": _number(float, 0.01, 100),
    "api_5xx_alarm_percent": _number(float, 0.1, 100),
    "api_p99_alarm_ms": _number(int, 50, 30_000),
    "query_release": _choice(QUERY_RELEASES),
}


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    problems = []
    if bool(values.get("domain_name")) != bool(values.get("certificate_arn")):
        problems.append("domain_name and certificate_arn: set both for a custom domain, or neither")
    if values.get("throttle_burst", 200) < values.get("throttle_rate", 100.0):
        problems.append("throttle_burst: must be at least throttle_rate")
    if values.get("club_claim") == "" and values.get("require_club_claim"):
        problems.append("require_club_claim: needs a club_claim to look for")
    interval_s = 60 * values.get("schedule_minutes", _default("schedule_minutes"))
    if values.get("stale_after_s", _default("stale_after_s")) < 2 * interval_s:
        problems.append(
            f"stale_after_s: must be at least two poll intervals ({2 * interval_s} s with schedule_minutes="
            f"{interval_s // 60}): a healthy source's list is up to one interval old before its next poll confirms it"
        )
    return problems


def _default(key: str) -> Any:
    return next(f.default for f in dataclasses.fields(StageConfig) if f.name == key)


def stages_from_context(node: Node) -> list[str]:
    stages = node.try_get_context("cappi:stages") or ["stage", "prod"]
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    return list(stages)
