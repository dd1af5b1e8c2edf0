"""Cost model: what a deployed CAPPI stage costs a month, priced from measured inputs, at one of two loads.

Profiles (`--profile`; the flags below override their figures):
- reference: 50 sources of 10,000 calls polled every 10 minutes, 1,000 technicians every 30 s for 10 h a day
  (36 M queries a month);
- internet: 1,000 sources of 10,000 calls, 30,000 technicians every 30 s around the clock: 1,000 queries a second
  (2.6 billion a month). Prod's API throttle is raised to that rate with a fifth to spare (cdk.json's would refuse
  it), so its reservation is priced as it would deploy.

Measured, not typed in:
- from both stages' templates, synthesized for a generated registry of `--sources` sources (each with a
  credential): the stage's resources, alarms and the metrics each reads, dashboards, credentials, functions with
  their memory sizes and log formats, log retention and classes, the API's access log format, the schedule; both
  stages' reserved concurrency (`unreserved` is what they leave of a 1,000 quota in one account);
- the read side at the profile's full size (bench/query_internet.run): every source publishing a new version each
  poll with commits spread as dispatch's slots start them, every technician querying through the deployed reader
  in as many warm containers as Little's law gives for the measured handler time: read units per query;
- from the real handlers (ingest over loopback HTTP with the real club client, dispatch, query) against moto for
  a sample of sources: the distinct metric series the EMF lines define, the bytes of every line the handlers
  print, write and read units per poll (the stores' own accounting, with the readers' index filled to the
  profile's sources), the table's bytes, and handler durations.

Scaled, and said so in the output: `--sample-sources` sources are polled for `--sample-minutes` of simulated time
(feeds of `--calls` calls changing by `--churn` per poll; one source in ten sends a few invalid rows), and their
technicians query every `--query-interval` seconds; per-poll and per-query figures are then multiplied up to the
month. Estimated, and said so: the access log line (the template's format with typical values), Lambda's
START/END/REPORT lines (sample lines, for functions whose log format keeps them), 26 bytes of per-event overhead, a
club's response time, compressed log storage, cold starts (ignored).

The naive anchor (`naive_monthly_usd`) is the layout a careful engineer would build without snapshots: one item per
call, keyed by club and call, writing only the calls that changed (a put per opened or moved call, a delete per
closed one), everything else the same. `floor_usd` is what API Gateway's and Lambda's requests alone cost: what any
design on those two services pays for the load.

    python bench/cost.py                        # reference; last line: name=value pairs
    python bench/cost.py --profile internet     # about 7 minutes here
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This checkout's app, infra and functions, before any installed copy (so a copy of another revision prices itself).
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import ingest as ingest_bench  # noqa: E402  (the reference feed and the loopback feed server live there)

# -- prices ---------------------------------------------------------------------------------------------------
# us-east-1 list prices, without free tiers, as published on these pages (values as I know them, mid-2025, which
# includes DynamoDB's on-demand price cut of 1 November 2024; re-check before quoting a bill):
#   https://aws.amazon.com/cloudwatch/pricing/         https://aws.amazon.com/api-gateway/pricing/
#   https://aws.amazon.com/lambda/pricing/             https://aws.amazon.com/dynamodb/pricing/on-demand/
#   https://aws.amazon.com/secrets-manager/pricing/    https://aws.amazon.com/systems-manager/pricing/
#   https://aws.amazon.com/kms/pricing/
PRICES = {
    "metric_month": 0.30,  # CloudWatch custom metric, first 10,000 a month (prorated by the hour)
    "alarm_metric_month": 0.10,  # standard-resolution alarm, per metric it reads
    "dashboard_month": 3.00,  # beyond the account's first 3
    "log_ingest_gb": 0.50,  # CloudWatch Logs standard ingestion
    "log_ingest_gb_ia": 0.25,  # CloudWatch Logs Infrequent Access ingestion
    "log_storage_gb_month": 0.03,  # archived (compressed)
    "http_api_million": 1.00,  # API Gateway HTTP API, first 300 million a month
    "http_api_million_over_300m": 0.90,  # API Gateway HTTP API, beyond 300 million a month
    "lambda_gb_s": 0.0000133334,  # arm64
    "lambda_million": 0.20,
    "wru_million": 0.625,  # DynamoDB on-demand write request units
    "rru_million": 0.125,  # DynamoDB on-demand read request units
    "dynamodb_gb_month": 0.25,
    "pitr_gb_month": 0.20,  # continuous backups
    "secret_month": 0.40,
    "secret_10k_calls": 0.05,
    "ssm_standard_parameter_month": 0.0,  # standard parameters and standard throughput (GetParameter) are free
    "kms_10k_requests": 0.03,  # SecureString decryption with the AWS managed key aws/ssm (no key charge)
}
PRICE_DATE = "mid-2025 list prices"
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs counts per event beyond its message
LOG_COMPRESSION = 0.15  # archived logs are billed compressed; JSON lines compress to about this share
DAYS_PER_MONTH = 30
ACCOUNT_CONCURRENCY = 1000  # Lambda's default concurrency quota per account and region
THROTTLE_HEADROOM = 1.2  # prod's API throttle over the load's steady rate
HOURS_PER_MONTH = 24 * DAYS_PER_MONTH
VERSION_RETENTION_DAYS = 1.0  # superseded versions stay readable for 24 hours, then expire through TTL
# Lambda's text-format platform lines for one invocation (sizes only; values typical).
PLATFORM_LINES = (
    "START RequestId: 8f507cfc-1a2b-4697-b07a-ac58fc914c95 Version: $LATEST",
    "END RequestId: 8f507cfc-1a2b-4697-b07a-ac58fc914c95",
    "REPORT RequestId: 8f507cfc-1a2b-4697-b07a-ac58fc914c95\tDuration: 4.21 ms\tBilled Duration: 5 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 112 MB\t",
)
# Typical values of API Gateway's $context variables, for the access log line.
CONTEXT_VALUES = {
    "$context.requestId": "Jx3b2gXYoAMEbXw=",
    "$context.requestTime": "01/Dec/2026:10:20:30 +0000",
    "$context.identity.sourceIp": "203.0.113.42",
    "$context.identity.userAgent": "BatteryTester/4.2.1 (Android 14; Pixel 8) okhttp/4.12.0",
    "$context.httpMethod": "GET",
    "$context.routeKey": "GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids",
    "$context.path": "/api/CallData/OpenCalls/212/AB12/ids",
    "$context.status": "200",
    "$context.responseLength": "31",
    "$context.responseLatency": "14",
    "$context.integrationLatency": "11",
    "$context.integrationStatus": "200",
    "$context.integrationErrorMessage": "-",
    "$context.error.message": "-",
    "$context.authorizer.error": "-",
    "$context.authorizer.claims.azp": "k3JdTq8PzW0bXr1mNfVa6yLcE2hUsG9o",
    "$context.authorizer.claims.sub": "k3JdTq8PzW0bXr1mNfVa6yLcE2hUsG9o@clients",
}


@dataclass(frozen=True)
class Load:
    sources: int
    calls: int
    techs: int
    poll_minutes: int
    technicians: int
    query_interval_s: float
    day_hours: float

    @property
    def polls_month(self) -> float:
        return self.sources * HOURS_PER_MONTH * 60 / self.poll_minutes

    @property
    def queries_month(self) -> float:
        return self.technicians * self.day_hours * 3600 / self.query_interval_s * DAYS_PER_MONTH


# The loads: the reference (what one region's clubs send today) and the internet profile (ten times the clubs,
# thirty times the traffic: 30,000 technicians each asking every 30 s around the clock is 1,000 queries a second).
PROFILES: dict[str, dict[str, Any]] = {
    "reference": {"sources": 50, "technicians": 1_000, "day_hours": 10.0},
    "internet": {"sources": 1_000, "technicians": 30_000, "day_hours": 24.0},
}


# -- the template -----------------------------------------------------------------------------------------------


@dataclass
class Template:
    alarm_metrics: int  # metrics all alarms read (one per plain alarm, one per MetricStat of a math alarm)
    alarms: int
    dashboards: int
    secrets: int  # Secrets Manager secrets in the template
    credential_parameters: int  # SSM parameters the enabled sources read (written by ops: no resource)
    secrets_max_age_s: float  # how long ingest keeps a decrypted credential
    functions: dict[str, dict[str, Any]]  # role -> {memory_mb, platform_logs, env}
    retention_days: int
    access_log_format: str
    access_log_class: str  # the access log group's class: STANDARD or INFREQUENT_ACCESS
    tick_minutes: int  # the dispatch schedule's rate
    poll_slots: int  # the ticks of one poll interval, each starting its share of the sources (CAPPI_POLL_SLOTS)
    resources: int = 0  # the stage's CloudFormation resources
    reserved: dict[str, int] = field(default_factory=dict)  # stage -> reserved concurrent executions

    @property
    def ticks_month(self) -> float:
        return HOURS_PER_MONTH * 60 / self.tick_minutes


def synth_stage(load: Load) -> Template:
    """Synthesize both stages' stacks for a registry of `load.sources` sources, each with a bearer credential, and
    read the stage stack's billable parts; of prod, its resource count and reservations (the quota is the account's,
    and both stages may share one)."""
    import app as cdk_app
    from cappi.contracts.credentials import CREDENTIALS_METADATA
    from cappi.settings import IngestSettings

    registry = {
        "sources": [
            {
                "name": f"club-{n:04d}",
                "club_ids": [n % 1000],
                "base_url": f"https://club-{n:04d}.example.org",
                "auth": {"type": "bearer", "secret": f"cappi/stage/clubs/club-{n:04d}"},
            }
            for n in range(load.sources)
        ]
    }
    if load.sources > 1000:
        raise SystemExit("at most 1,000 sources: club IDs are 0..999")
    work = Path(tempfile.mkdtemp(prefix="cappi-cost-"))
    (work / "clubs.json").write_text(json.dumps(registry))
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context.update(
        {
            "cappi:stages": ["stage", "prod"],
            "stage:clubs_file": str(work / "clubs.json"),
            "prod:clubs_file": str(work / "clubs.json"),
            "prod:alarm_email": context.get("prod:alarm_email") or "ops@example.org",
        }
    )
    # Prod must let the load through: its API throttle (and so its query reservation) at least the load's rate with
    # a fifth to spare, when cdk.json's is lower (it is, for the internet profile).
    prod = context.get("cappi:prod", {})
    needed = math.ceil(load.technicians / load.query_interval_s * THROTTLE_HEADROOM)
    if prod.get("throttle_rate", 0) < needed:
        context.update({"prod:throttle_rate": needed, "prod:throttle_burst": 2 * needed})
        print(f"prod's API throttle raised to {needed} requests/s (burst {2 * needed}) for this load", file=sys.stderr)
    with contextlib.redirect_stderr(io.StringIO()):
        assembly = cdk_app.build_app(context, outdir=str(work / "cdk.out")).synth()
    stacks = {stack.stack_name.rsplit("-", 1)[-1]: stack.template["Resources"] for stack in assembly.stacks}
    (stage_stack,) = [stack for stack in assembly.stacks if stack.stack_name.endswith("-stage")]
    resources = stacks["stage"].values()
    reserved = {
        stage: sum(
            r.get("Properties", {}).get("ReservedConcurrentExecutions", 0)
            for r in stack.values()
            if r["Type"] == "AWS::Lambda::Function"
        )
        for stage, stack in stacks.items()
    }

    def of(type_: str) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in resources if r["Type"] == type_]

    alarm_metrics = 0
    for alarm in of("AWS::CloudWatch::Alarm"):
        alarm_metrics += 1 if "MetricName" in alarm else sum(1 for m in alarm.get("Metrics", []) if "MetricStat" in m)
    functions = {}
    for fn in of("AWS::Lambda::Function"):
        name = fn.get("FunctionName", "")
        if not isinstance(name, str) or not name.startswith("cappi-stage-"):
            continue
        logging_config = fn.get("LoggingConfig", {})
        quiet = logging_config.get("LogFormat") == "JSON" and logging_config.get("SystemLogLevel") == "WARN"
        functions[name.removeprefix("cappi-stage-")] = {
            "memory_mb": fn["MemorySize"],
            "platform_logs": not quiet,
            "env": fn["Environment"]["Variables"],
        }
    (api_stage,) = of("AWS::ApiGatewayV2::Stage")
    (schedule,) = of("AWS::Scheduler::Schedule")
    rate = re.fullmatch(r"rate\((\d+) minutes?\)", schedule["ScheduleExpression"])
    assert rate, schedule["ScheduleExpression"]
    return Template(
        alarm_metrics=alarm_metrics,
        alarms=len(of("AWS::CloudWatch::Alarm")),
        dashboards=len(of("AWS::CloudWatch::Dashboard")),
        secrets=len(of("AWS::SecretsManager::Secret")),
        credential_parameters=len(
            {
                p
                for names in stage_stack.template.get("Metadata", {}).get(CREDENTIALS_METADATA, {}).values()
                for p in names
            }
        ),
        secrets_max_age_s=float(
            functions["ingest"]["env"].get(
                IngestSettings.variables()["secrets_max_age_s"].name, IngestSettings.default("secrets_max_age_s")
            )
        ),
        functions=functions,
        retention_days=max(g.get("RetentionInDays", 0) for g in of("AWS::Logs::LogGroup")),
        access_log_format=api_stage["AccessLogSettings"]["Format"],
        access_log_class=access_log_class(stacks["stage"], api_stage["AccessLogSettings"]["DestinationArn"]),
        tick_minutes=int(rate.group(1)),
        poll_slots=int(functions["dispatch"]["env"].get("CAPPI_POLL_SLOTS", "1")),
        resources=len(stacks["stage"]),
        reserved=reserved,
    )


def access_log_class(resources: dict[str, dict[str, Any]], destination: Any) -> str:
    """The class of the log group the API's access log goes to (`Fn::GetAtt` of its logical ID in the template)."""
    (logical_id, _attribute) = destination["Fn::GetAtt"]
    return str(resources[logical_id]["Properties"].get("LogGroupClass", "STANDARD"))


def api_requests_usd(requests: float) -> float:
    """HTTP API requests a month at the tiered price: the first 300 million, then the rest."""
    first = min(requests, 300e6)
    return first / 1e6 * PRICES["http_api_million"] + (requests - first) / 1e6 * PRICES["http_api_million_over_300m"]


def access_log_bytes(log_format: str) -> int:
    line = log_format
    for variable in sorted(CONTEXT_VALUES, key=len, reverse=True):
        line = line.replace(variable, CONTEXT_VALUES[variable])
    return len(line.encode()) + LOG_EVENT_OVERHEAD


def platform_bytes(enabled: bool) -> int:
    return sum(len(line) + LOG_EVENT_OVERHEAD for line in PLATFORM_LINES) if enabled else 0


# -- the simulation ---------------------------------------------------------------------------------------------


class Sink(io.StringIO):
    """Everything the handlers print: EMF lines on stdout and the logger's lines."""

    def lines(self) -> list[str]:
        return [line for line in self.getvalue().splitlines() if line.strip()]


class CountingClient:
    """A boto3 DynamoDB client that adds up the read units of what it returns, by DynamoDB's rules: an item read
    costs its size rounded up to 4 KB, a Query the total of its items rounded up; eventually consistent half."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.read_units = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _units(self, size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        from cappi.adapters.dynamo.cost import item_size

        response = self._client.get_item(**kwargs)
        self.read_units += self._units(item_size(response.get("Item", {})), bool(kwargs.get("ConsistentRead")))
        return response

    def query(self, **kwargs: Any) -> dict[str, Any]:
        from cappi.adapters.dynamo.cost import item_size

        response = self._client.query(**kwargs)
        size = sum(item_size(i) for i in response.get("Items", []))
        self.read_units += self._units(size, bool(kwargs.get("ConsistentRead")))
        return response

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        from cappi.adapters.dynamo.cost import item_size

        response = self._client.batch_get_item(**kwargs)
        for table, items in response.get("Responses", {}).items():
            consistent = bool(kwargs["RequestItems"][table].get("ConsistentRead"))
            self.read_units += sum(self._units(item_size(i), consistent) for i in items)
        return response


@dataclass
class Measured:
    polls: int = 0
    poll_write_units: list[int] = field(default_factory=list)
    poll_read_units: list[float] = field(default_factory=list)  # the replaced version read back for its delta, ...
    poll_log_bytes: int = 0
    poll_seconds: list[float] = field(default_factory=list)
    table_bytes_per_poll: float = 0.0
    current_bytes_per_source: float = 0.0
    queries: int = 0
    query_log_bytes: int = 0
    query_log_sample_rate: float = 1.0  # the share of answers with a request line, as the stack sets it
    query_read_units: float = 0.0
    query_seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    tick_log_bytes: int = 0
    tick_seconds: float = 0.0
    tick_read_units: float = 0.0  # dispatch's heads reads (staleness) in one tick over every source
    series: dict[str, set[tuple[str, str, tuple[tuple[str, str], ...]]]] = field(default_factory=dict)
    naive_wru: list[int] = field(default_factory=list)  # per measured poll

    @property
    def naive_wru_per_poll(self) -> float:
        return statistics.fmean(self.naive_wru)


def series_in(lines: list[str]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Distinct (namespace, metric, dimension values) the EMF lines define: what CloudWatch bills as metrics."""
    found = set()
    for line in lines:
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            for names in directive["Dimensions"]:
                dims = tuple((n, str(record[n])) for n in names)
                found |= {(directive["Namespace"], m["Name"], dims) for m in directive["Metrics"]}
    return found


def naive_write_units(before: list[dict], after: list[dict]) -> int:
    """What the anchor a careful engineer would build spends on one poll: one item per call, keyed by club and
    call, holding its tech; only the calls that changed are written (a PutItem per opened or moved call, a
    DeleteItem per closed one, each costing its item's size in 1 KB units)."""
    from cappi.adapters.dynamo.cost import item_size, write_units

    def items(rows: list[dict]) -> dict[tuple[int, int], dict[str, Any]]:
        return {
            (row["ClubId"], row["CallId"]): {
                "pk": {"S": f"CLUB#{row['ClubId']:03d}"},
                "sk": {"S": f"CALL#{row['CallId']}"},
                "tech": {"S": row["TechId"]},
                "expires_at": {"N": str(2_000_000_000)},
            }
            for row in rows
        }

    old, new = items(before), items(after)
    written = [item for key, item in new.items() if old.get(key) != item]
    deleted = [item for key, item in old.items() if key not in new]
    return sum(write_units(item_size(item)) for item in written + deleted)


def event_bytes(lines: list[str]) -> int:
    return sum(len(line.encode()) + LOG_EVENT_OVERHEAD for line in lines)


def query_event(club_id: int, tech: str, request_id: str, etag: str | None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for the route, as the JWT authorizer passes it on."""
    from cappi.contracts import api

    path = api.path_for(club_id, tech)
    claims = {"sub": "bench@clients", "azp": "bench", "scope": api.SCOPE, "iss": "https://x/", "aud": "https://y"}
    headers = {"authorization": "Bearer x", "host": "cappi.example.org"}
    if etag:
        headers["if-none-match"] = etag
    return {
        "version": "2.0",
        "routeKey": f"{api.METHOD} {api.ROUTE}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"ClubId": str(club_id), "TechId": tech},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "cappi.example.org",
            "http": {"method": api.METHOD, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1"},
            "requestId": request_id,
            "routeKey": f"{api.METHOD} {api.ROUTE}",
            "stage": "$default",
            "time": "01/Dec/2026:10:20:30 +0000",
            "timeEpoch": int(time.time() * 1000),
            "authorizer": {"jwt": {"claims": claims, "scopes": [api.SCOPE]}},
        },
        "isBase64Encoded": False,
    }


class Context:
    function_name = "cappi-stage-bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cappi-stage-bench"
    aws_request_id = "bench"


@contextlib.contextmanager
def captured(sink: Sink) -> Iterator[None]:
    from cappi.observability import logger

    previous = logger.registered_handler.setStream(sink)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        logger.registered_handler.setStream(previous)


@dataclass(frozen=True)
class Reads:
    """The read side at the load's full size, from bench/query.py's simulation (query_internet.run): every source
    publishing a new version each poll (commits spread over the interval, as dispatch's slots start them), every
    technician querying through warm containers of the deployed reader, as many as Little's law gives."""

    rru_per_query: float
    requests_per_query: float
    containers: int
    little: float
    handler_us: float
    queries: int
    max_staleness_s: float


def read_side(load: Load, args: argparse.Namespace) -> Reads:
    import query_internet
    import query_sim

    simulated = query_sim.Load(
        sources=load.sources,
        technicians=load.technicians,
        query_interval_s=load.query_interval_s,
        calls=load.calls,
        club_techs=load.techs,
        duration_s=args.read_seconds,
        warmup_s=60.0,
        poll_interval_s=load.poll_minutes * 60.0,
        flips="even",
        first_club=0 if load.sources > 900 else 100,
    )
    run = query_internet.run(simulated, fleets=(1, 2, 4, 8))
    fleet = run.by_count[run.chosen]
    return Reads(
        rru_per_query=fleet.rru_per_1000() / 1000,
        requests_per_query=fleet.per_1000() / 1000,
        containers=run.chosen,
        little=run.little,
        handler_us=run.measured_s * 1e6,
        queries=fleet.queries,
        max_staleness_s=fleet.max_stale_s,
    )


def simulate(load: Load, template: Template, args: argparse.Namespace, reads: Reads) -> Measured:
    import inspect

    import boto3
    from moto import mock_aws

    os.environ["POWERTOOLS_METRICS_NAMESPACE"] = template.functions["query"]["env"]["POWERTOOLS_METRICS_NAMESPACE"]
    for name, value in template.functions["query"]["env"].items():
        if name.startswith("CAPPI_") and name not in ("CAPPI_TABLE_NAME", "CAPPI_CLUBS_FILE"):
            os.environ[name] = str(value)  # the query function's settings as the stack gives them

    from cappi.adapters.club_client import ClubFeedClient
    from cappi.adapters.dynamo.cost import item_size
    from cappi.adapters.dynamo.poll_log import DynamoPollLog
    from cappi.adapters.dynamo.reader_index import ReaderIndexWriter
    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.dynamo.shard_source import DynamoShardSource
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.adapters.dynamo.writer import SnapshotWriter
    from cappi.adapters.indexed_reader import IndexedSnapshotReader
    from cappi.adapters.secrets import StaticSecrets
    from cappi.domain.registry import parse_registry
    from cappi.handlers import dispatch, ingest, query
    from cappi.observability import logger, route_library_logs_through
    from cappi.settings import QuerySettings

    rnd = random.Random(7)
    count = args.sample_sources
    servers = [ingest_bench.FeedServer() for _ in range(count)]
    registry = parse_registry(
        {
            "sources": [
                {"name": f"club-{n:03d}", "club_ids": [3 * n + 1, 3 * n + 2, 3 * n + 3], "base_url": s.base_url}
                for n, s in enumerate(servers)
            ]
        }
    )
    feeds = []
    for n, source in enumerate(registry.sources):
        club_ids = sorted(source.club_ids)
        rows = ingest_bench.reference_rows(load.calls, load.techs, seed=100 + n)
        feeds.append([{**r, "ClubId": club_ids[ingest_bench.CLUB_IDS.index(r["ClubId"])]} for r in rows])
    measured = Measured()
    sink = Sink()
    route_library_logs_through(logger, "cappi.club_client")
    table = "cappi-cost"
    try:
        with mock_aws():
            client = CountingClient(boto3.client("dynamodb"))
            create_table(client._client, table)
            snapshot_table = SnapshotTable(client, table)
            shards, polls = DynamoShardSource(snapshot_table), DynamoPollLog(snapshot_table)
            fetcher = ClubFeedClient(StaticSecrets({}))
            deps = ingest.IngestDependencies(registry, fetcher, SnapshotWriter(snapshot_table), poll_log=polls)
            poll = ingest.make_handler(lambda: deps)

            def table_bytes() -> int:
                pages = client._client.get_paginator("scan").paginate(TableName=table)
                return sum(item_size(i) for page in pages for i in page["Items"])

            def poll_round(measure: bool) -> None:
                for n, source in enumerate(registry.sources):
                    previous = feeds[n]
                    rows = feeds[n] = ingest_bench.changed(feeds[n], seed=rnd.randrange(10**9), share=args.churn)
                    if measure:
                        measured.naive_wru.append(naive_write_units(previous, rows))
                    bad = [{**rows[0], "TechId": "bad tech"}] * (max(1, load.calls // 1000) if n % 10 == 0 else 0)
                    servers[n].body = ingest_bench.feed_bytes(rows + bad)
                    before = len(sink.lines())
                    units_before = client.read_units
                    started = time.perf_counter()
                    with captured(sink):
                        result = poll({"source": source.name, "scheduled_time": "2026-12-01T10:00:00Z"}, Context())
                    if measure:
                        measured.poll_seconds.append(time.perf_counter() - started)
                        measured.poll_read_units.append(client.read_units - units_before)
                        measured.polls += 1
                        measured.poll_write_units.append(result["write_units"] + result.get("status_write_units", 0))
                        measured.poll_log_bytes += event_bytes(sink.lines()[before:])

            poll_round(measure=False)  # the first publish is a one-off; steady state is a changed feed every poll
            # The readers' index holds every source of the load, not only the sample: its items' sizes (what an
            # entry's conditional update costs) are those of `load.sources` entries of the sample's shape.
            sample_head = shards.head(registry.sources[0].name)
            assert sample_head is not None
            index_writer = ReaderIndexWriter(SnapshotTable(client._client, table))
            for n in range(load.sources - count):
                club = 999 - n
                pointers = {club: replace(next(iter(sample_head.clubs.values())), club_id=club, source=f"fill-{n:04d}")}
                index_writer.record(f"fill-{n:04d}", sample_head.fetched_at_ms, None, pointers, {})
            assert not index_writer.failures
            after_first = table_bytes()
            measured.current_bytes_per_source = after_first / count

            # Technicians: as many per source as the load spreads over all sources, each asking every interval.
            per_source = max(1, round(load.technicians / load.sources))
            head = shards.head(registry.sources[0].name)
            assert head is not None
            techs = []
            for source in registry.sources:
                for club_id in sorted(source.club_ids):
                    club_rows = [r for r in feeds[registry.sources.index(source)] if r["ClubId"] == club_id]
                    techs += [(club_id, r["TechId"]) for r in rnd.sample(club_rows, per_source // 3 + 1)]
            now = [0.0]
            # The query function's settings as the stack gives them (put in the environment above: the request
            # line's sample rate among them), on the benchmark's table.
            settings = QuerySettings.from_env({**os.environ, "CAPPI_TABLE_NAME": table})
            measured.query_log_sample_rate = settings.request_log_sample_rate
            clock_kw = (
                {"clock": lambda: now[0]} if "clock" in inspect.signature(IndexedSnapshotReader).parameters else {}
            )

            def container() -> Any:
                """One warm query container: a handler with a reader (and so a cache) of its own."""
                reader = IndexedSnapshotReader(
                    shards,
                    registry.sources_by_club,
                    polls=polls,
                    pointer_max_age=settings.pointer_max_age_s,
                    **clock_kw,
                )
                return query.make_handler(lambda: query.QueryDependencies(settings, reader, registry.club_ids))

            containers = [container() for _ in range(reads.containers)]
            etags: dict[tuple[int, str], str] = {}
            rounds = max(1, int(args.sample_minutes // load.poll_minutes))
            queries_per_round = int(len(techs) * load.poll_minutes * 60 / load.query_interval_s)
            start_units = client.read_units
            for round_index in range(rounds):
                if round_index:
                    poll_round(measure=True)
                for index in range(queries_per_round):
                    now[0] = round_index * load.poll_minutes * 60 + index * load.poll_minutes * 60 / queries_per_round
                    club_id, tech = techs[rnd.randrange(len(techs))]
                    if rnd.random() < 0.01:
                        club_id = 999  # a club nobody serves: 404
                    etag = etags.get((club_id, tech)) if rnd.random() < args.revalidate_share else None
                    event = query_event(club_id, tech, f"q-{round_index}-{index}", etag)
                    handler = containers[rnd.randrange(len(containers))]
                    before = len(sink.lines())
                    started = time.perf_counter()
                    with captured(sink):
                        response = handler(event, Context())
                    measured.query_seconds.append(time.perf_counter() - started)
                    measured.queries += 1
                    status = int(response["statusCode"])
                    measured.statuses[status] = measured.statuses.get(status, 0) + 1
                    if "ETag" in response.get("headers", {}):
                        etags[(club_id, tech)] = response["headers"]["ETag"]
                    measured.query_log_bytes += event_bytes(sink.lines()[before:])
            measured.query_read_units = client.read_units - start_units
            measured.table_bytes_per_poll = max(0, table_bytes() - after_first) / max(1, measured.polls)

            class Invoker:
                def invoke_async(self, payload: dict[str, Any]) -> None:
                    pass

            big = parse_registry(
                {
                    "sources": [
                        {"name": f"club-{n:03d}", "club_ids": [n], "base_url": "https://x.example.org"}
                        for n in range(load.sources)
                    ]
                }
            )
            # Dispatch reads every source's head on each tick: the sample's real heads, by BatchGetItem (their read
            # units counted), stand in for the sources beyond the sample, each as fresh as the sample's.
            sample = [s.name for s in registry.sources]

            def heads(names: Any) -> dict[str, Any]:
                real = shards.heads(sample)
                found: dict[str, Any] = {}
                for n, name in enumerate(names):
                    head = real[sample[n % len(sample)]]
                    pointer = next(iter(head.clubs.values()))
                    found[name] = replace(head, source=name, clubs={n: replace(pointer, club_id=n, source=name)})
                return found

            tick = dispatch.make_handler(
                lambda: dispatch.DispatchDependencies(
                    big,
                    Invoker(),
                    heads,
                    poll_slots=template.poll_slots,
                )
            )
            before, units = len(sink.lines()), client.read_units
            started = time.perf_counter()
            with captured(sink):
                tick({"scheduled_time": "2026-12-01T10:00:00Z"}, Context())
            measured.tick_seconds = time.perf_counter() - started
            measured.tick_log_bytes = event_bytes(sink.lines()[before:])
            measured.tick_read_units = (client.read_units - units) * load.sources / len(sample)
    finally:
        for server in servers:
            server.close()
    measured.series = {"all": series_in(sink.lines())}
    return measured


# -- pricing ----------------------------------------------------------------------------------------------------


def price(load: Load, template: Template, m: Measured, reads: Reads, args: argparse.Namespace) -> dict[str, float]:
    p = PRICES
    scale = load.sources / args.sample_sources
    query_hours_share = load.day_hours / 24  # metric series written only while technicians query: prorated
    series = m.series["all"]
    per_source = [s for s in series if any(name == "Source" for name, _ in s[2])]
    query_ns = {s for s in series if s[1] in ("Requests", "SnapshotAgeServed")}
    other = [s for s in series if s not in per_source and s not in query_ns]
    metric_months = len(per_source) * scale + len(other) + len(query_ns) * query_hours_share
    metric_series = round(len(per_source) * scale + len(other) + len(query_ns))

    polls, queries, ticks = load.polls_month, load.queries_month, template.ticks_month
    log_per_poll = m.poll_log_bytes / m.polls + platform_bytes(template.functions["ingest"]["platform_logs"])
    access_per_query = access_log_bytes(template.access_log_format)
    log_per_query = (
        m.query_log_bytes / m.queries + platform_bytes(template.functions["query"]["platform_logs"]) + access_per_query
    )
    log_per_tick = m.tick_log_bytes + platform_bytes(template.functions["dispatch"]["platform_logs"])
    log_gb = (log_per_poll * polls + log_per_query * queries + log_per_tick * ticks) / 1e9
    access_gb = access_per_query * queries / 1e9
    access_price = p["log_ingest_gb_ia"] if template.access_log_class == "INFREQUENT_ACCESS" else p["log_ingest_gb"]
    stored_gb = log_gb * LOG_COMPRESSION * template.retention_days / DAYS_PER_MONTH

    items = {
        "cloudwatch metrics": metric_months * p["metric_month"],
        "cloudwatch alarms": template.alarm_metrics * p["alarm_metric_month"],
        "cloudwatch dashboards": template.dashboards * p["dashboard_month"],
        "cloudwatch logs ingestion": (log_gb - access_gb) * p["log_ingest_gb"] + access_gb * access_price,
        "cloudwatch logs storage": stored_gb * p["log_storage_gb_month"],
        "api gateway requests": api_requests_usd(queries),
    }
    query_s = statistics.fmean(math.ceil(s * 1000) / 1000 for s in m.query_seconds)
    poll_s = statistics.fmean(m.poll_seconds) + args.club_latency_s
    tick_s = m.tick_seconds + load.sources / template.poll_slots * args.invoke_latency_s
    gb = {role: fn["memory_mb"] / 1024 for role, fn in template.functions.items()}
    items["lambda requests"] = (queries + polls + ticks) / 1e6 * p["lambda_million"]
    items["lambda duration"] = (
        queries * query_s * gb["query"] + polls * poll_s * gb["ingest"] + ticks * tick_s * gb["dispatch"]
    ) * p["lambda_gb_s"]
    wru_per_poll = statistics.fmean(m.poll_write_units)
    table_gb = (m.current_bytes_per_source * load.sources + m.table_bytes_per_poll * polls / DAYS_PER_MONTH) / 1e9
    items["dynamodb writes"] = wru_per_poll * polls / 1e6 * p["wru_million"]
    items["dynamodb reads"] = (
        (reads.rru_per_query * queries + statistics.fmean(m.poll_read_units) * polls + m.tick_read_units * ticks)
        / 1e6
        * p["rru_million"]
    )
    items["dynamodb storage + pitr"] = table_gb * VERSION_RETENTION_DAYS * (p["dynamodb_gb_month"] + p["pitr_gb_month"])
    items["secrets manager"] = template.secrets * p["secret_month"] + (
        polls / 1e4 * p["secret_10k_calls"] if template.secrets else 0.0
    )
    # Each poll decrypts its source's credential unless ingest's cache (the template's age) still holds it.
    decrypts_per_poll = (
        template.credential_parameters / load.sources * min(1.0, load.poll_minutes * 60 / template.secrets_max_age_s)
    )
    items["ssm credentials + kms"] = template.credential_parameters * p["ssm_standard_parameter_month"] + (
        polls * decrypts_per_poll / 1e4 * p["kms_10k_requests"]
    )
    naive_writes = m.naive_wru_per_poll * polls / 1e6 * p["wru_million"]
    total = sum(items.values())
    cloudwatch = sum(v for k, v in items.items() if k.startswith("cloudwatch"))
    print(f"load: {load.sources} sources x {load.calls:,} calls every {load.poll_minutes} min ({polls:,.0f} polls)")
    print(
        f"      {load.technicians:,} technicians every {load.query_interval_s:g} s for {load.day_hours:g} h a day "
        f"({queries / 1e6:.1f} M queries), {DAYS_PER_MONTH} days; prices: {PRICE_DATE}, us-east-1, no free tier"
    )
    print(
        f"sample: {args.sample_sources} sources, {m.polls} measured polls, {m.queries:,} queries "
        f"({dict(sorted(m.statuses.items()))}) over {reads.containers} containers; scaled x{scale:g} for "
        "per-source figures"
    )
    memory = {r: f["memory_mb"] for r, f in template.functions.items()}
    platform = {r: f["platform_logs"] for r, f in template.functions.items()}
    print(
        f"template: {template.alarms} alarms reading {template.alarm_metrics} metrics, {template.dashboards} "
        f"dashboard(s), {template.secrets} secrets, {template.credential_parameters} credential parameters (SSM, "
        f"{decrypts_per_poll:.2f} decrypts per poll at a {template.secrets_max_age_s:g} s cache), log retention "
        f"{template.retention_days} d, memory {memory}, platform lines {platform}"
    )
    print(
        f"metric series: {metric_series} ({len(per_source) / args.sample_sources:g} per source, "
        f"{len(other)} stage-wide, {len(query_ns)} query-side at {query_hours_share:.0%} of the hours) = "
        f"{metric_months:.1f} metric-months"
    )
    print(
        f"log bytes: per poll {log_per_poll:,.0f}, per query {log_per_query:,.0f} (handler "
        f"{m.query_log_bytes / m.queries:,.0f} with a request line for every refusal and {m.query_log_sample_rate:.0%} "
        f"of answers, access log {access_per_query} ({template.access_log_class}), platform "
        f"{platform_bytes(template.functions['query']['platform_logs'])}; {LOG_EVENT_OVERHEAD} B/event overhead "
        f"included), per tick {log_per_tick:,.0f}: {log_gb:.1f} GB/month"
    )
    print(
        f"reads at full size: {reads.queries:,} queries over {load.sources} sources through {reads.containers} "
        f"warm container(s) (Little's law {reads.little:.2f}, handler {reads.handler_us:.0f} us), "
        f"{reads.requests_per_query * 1000:.2f} requests and {reads.rru_per_query * 1000:.2f} RRU per 1,000 queries, "
        f"staleness at most {reads.max_staleness_s:.1f} s"
    )
    print(
        f"dynamodb: {wru_per_poll:.1f} WRU and {statistics.fmean(m.poll_read_units):.1f} RRU per poll, "
        f"{m.current_bytes_per_source / 1e3:,.0f} KB current per source, {m.table_bytes_per_poll / 1e3:,.0f} KB "
        f"per changed poll kept {VERSION_RETENTION_DAYS:g} d; naive {m.naive_wru_per_poll:,.0f} WRU per poll "
        "(one item per call, changed calls only)"
    )
    print(
        f"lambda: query {query_s * 1000:.2f} ms billed mean, ingest {poll_s:.2f} s (measured + {args.club_latency_s:g} "
        f"s assumed club latency), dispatch {tick_s:.2f} s every {template.tick_minutes} min ({template.poll_slots} "
        f"slots; heads {m.tick_read_units:.1f} RRU per tick)"
    )
    for name, value in sorted(items.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} ${value:9.2f}")
    print(f"  {'total':28s} ${total:9.2f}   (cloudwatch {cloudwatch / total:.0%})")
    floor = items["api gateway requests"] + items["lambda requests"]
    unreserved = ACCOUNT_CONCURRENCY - sum(template.reserved.values())
    print(
        f"floor (API Gateway and Lambda requests alone): ${floor:,.2f}; resources in the stage stack: "
        f"{template.resources}; reserved concurrency {template.reserved}, {unreserved} of {ACCOUNT_CONCURRENCY:,} "
        "unreserved with both stages in one account"
    )
    return {
        "monthly_usd": total,
        "floor_usd": floor,
        "resources": template.resources,
        "unreserved": unreserved,
        "cloudwatch_usd": cloudwatch,
        "dynamodb_usd": sum(v for k, v in items.items() if k.startswith("dynamodb")),
        "api_usd": items["api gateway requests"],
        "lambda_usd": items["lambda requests"] + items["lambda duration"],
        "secrets_usd": items["secrets manager"] + items["ssm credentials + kms"],
        "metric_series": metric_series,
        "log_bytes_per_query": log_per_query,
        "naive_monthly_usd": total - items["dynamodb writes"] + naive_writes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="reference",
        help="the load: reference (50 sources, 1,000 technicians 10 h a day) or internet (1,000 sources, "
        "1,000 queries a second around the clock); the flags below override its figures",
    )
    parser.add_argument("--sources", type=int)
    parser.add_argument("--calls", type=int, default=10_000, help="calls per source")
    parser.add_argument("--techs", type=int, default=0, help="technicians with calls per source (default calls/4)")
    parser.add_argument("--poll-minutes", type=int, default=10)
    parser.add_argument("--technicians", type=int, help="technicians querying")
    parser.add_argument("--query-interval", type=float, default=30.0, help="seconds between a technician's queries")
    parser.add_argument("--day-hours", type=float, help="hours a day technicians query")
    parser.add_argument("--churn", type=float, default=0.05, help="share of calls that change between polls")
    parser.add_argument("--sample-sources", type=int, default=4)
    parser.add_argument("--sample-minutes", type=float, default=30.0)
    parser.add_argument(
        "--read-seconds",
        type=float,
        default=240.0,
        help="simulated seconds (after a 60 s warm-up) of the full-size read side (bench/query_internet.py's run)",
    )
    parser.add_argument("--revalidate-share", type=float, default=0.2, help="queries sent with If-None-Match")
    parser.add_argument("--club-latency-s", type=float, default=1.0, help="a club's response time (assumed)")
    parser.add_argument("--invoke-latency-s", type=float, default=0.02, help="one async Invoke call (assumed)")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    for name, value in profile.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    load = Load(
        sources=args.sources,
        calls=args.calls,
        techs=args.techs or max(1, args.calls // 4),
        poll_minutes=args.poll_minutes,
        technicians=args.technicians,
        query_interval_s=args.query_interval,
        day_hours=args.day_hours,
    )
    args.sample_sources = max(1, min(args.sample_sources, args.sources))
    started = time.perf_counter()
    template = synth_stage(load)
    reads = read_side(load, args)
    measured = simulate(load, template, args, reads)
    figures = price(load, template, measured, reads, args)
    print(f"(ran in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
