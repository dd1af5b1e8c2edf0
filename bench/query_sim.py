"""The query benchmarks' simulation: club sources publishing versions on a simulated clock, fleets of warm query
containers (the real reader, and the real handler for one of them) answering technicians' queries, every answer
checked against the version it names. bench/query.py (the reference load) and bench/query_internet.py (1,000
sources, 1,000 queries a second) run it; bench/cost.py runs it at its profiles' full size for read units.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CAPPI")

import ingest as ingest_bench  # noqa: E402  (the reference feed lives there)

TABLE = "cappi-bench-query"
EPOCH_MS = 1_760_000_000_000  # simulated time 0, as a fetch time
VARIANTS = 2  # contents a source alternates between, so every poll publishes a new version


@dataclass(frozen=True)
class Load:
    """The simulated traffic: technicians querying at a steady rate, polls publishing on a schedule."""

    sources: int = 50  # club sources, one club each
    technicians: int = 1_000  # each queries every `query_interval_s`, at its own phase
    query_interval_s: float = 30.0
    calls: int = 10_000  # per club
    club_techs: int = 2_500  # per club
    duration_s: float = 3_600.0  # simulated, counted after the warm-up
    warmup_s: float = 60.0  # simulated, not counted: every container has read every club by then
    poll_interval_s: float = 600.0
    # Commits of one schedule tick: "tick" lands each source's commit uniformly within `commit_spread_s` of the
    # tick (dispatch starts every source's poll at once; each takes its club's fetch and publish time);
    # "even" spreads the sources' commits evenly over the whole poll interval (every flip on its own).
    flips: str = "tick"
    commit_spread_s: float = 60.0
    first_club: int = 100
    seed: int = 1

    @property
    def rate(self) -> float:
        return self.technicians / self.query_interval_s

    def describe(self) -> str:
        spread = (
            f"within {self.commit_spread_s:.0f} s of each tick" if self.flips == "tick" else "evenly over the interval"
        )
        return (
            f"{self.rate:.1f} queries/s ({self.technicians:,} technicians every {self.query_interval_s:.0f} s) over "
            f"{self.sources} sources of one club each ({self.calls:,} calls, {self.club_techs:,} techs); "
            f"every source publishes a new version every {self.poll_interval_s:.0f} s, commits {spread}; "
            f"{self.duration_s:.0f} s simulated after a {self.warmup_s:.0f} s warm-up"
        )


ItemKey = tuple[str, str]


def _key_of(item: Mapping[str, Any]) -> ItemKey:
    return item["pk"]["S"], item["sk"]["S"]


class _Proxy:
    def __init__(self, inner: Any, items: dict[ItemKey, dict[str, Any]]) -> None:
        self.inner = inner
        self.items = items

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ReadThrough(_Proxy):
    """The readers' DynamoDB client: moto, with BatchGetItem answered from memory for keys moto returned before.

    Benchmark plumbing only: moto serializes each item of a response slowly (milliseconds for a head here), and an
    hour of traffic reads thousands of them. Items are forgotten when the publisher writes them (`Invalidating`),
    absent keys always go to moto, and the stores count their own calls to this client, so what the readers send
    and what they count is unchanged.
    """

    def batch_get_item(self, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        found, missing = [], []
        for key in request["Keys"]:
            item = self.items.get(_key_of(key))
            if item is None:
                missing.append(key)
            else:
                found.append(item)
        unprocessed: dict[str, Any] = {}
        if missing:
            response = self.inner.batch_get_item(RequestItems={table: {**request, "Keys": missing}}, **kwargs)
            for item in response.get("Responses", {}).get(table, []):
                self.items[_key_of(item)] = item
                found.append(item)
            unprocessed = response.get("UnprocessedKeys", {})
        return {"Responses": {table: found}, "UnprocessedKeys": unprocessed}


class ReadThroughQueries(ReadThrough):
    """ReadThrough, with a shard's Query (its parts, by key prefix) also answered from memory once moto answered it.

    For the internet profile, where thousands of containers' first reads of 1,000 clubs (and the baseline's misses)
    would otherwise each wait on moto. A version's parts never change once written, so the answer to a prefix
    never changes either; a response that came back empty or paged is not kept.
    """

    def __init__(self, inner: Any, items: dict[ItemKey, dict[str, Any]]) -> None:
        super().__init__(inner, items)
        self.queries: dict[tuple[str, str], dict[str, Any]] = {}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        values = kwargs.get("ExpressionAttributeValues", {})
        key = (values.get(":pk", {}).get("S", ""), values.get(":prefix", {}).get("S", ""))
        cached = self.queries.get(key) if "begins_with" in kwargs.get("KeyConditionExpression", "") else None
        if cached is not None and "ExclusiveStartKey" not in kwargs:
            return cached
        response = self.inner.query(**kwargs)
        if key[1] and response.get("Items") and not response.get("LastEvaluatedKey"):
            self.queries[key] = response
        return response


class Invalidating(_Proxy):
    """The publisher's client: every write forgets the item from the readers' memory before it reaches moto."""

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.items.pop(_key_of(kwargs["Item"]), None)
        return self.inner.put_item(**kwargs)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.items.pop(_key_of(kwargs["Key"]), None)
        return self.inner.update_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self.items.pop(_key_of(kwargs["Key"]), None)
        return self.inner.delete_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        for requests in kwargs["RequestItems"].values():
            for request in requests:
                written = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
                self.items.pop(_key_of(written), None)
        return self.inner.batch_write_item(**kwargs)


class SimClock:
    """The readers' monotonic clock: simulated seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Version:
    commit_s: float
    name: str
    techs: Mapping[str, tuple[str, ...]]


class World:
    """The ingest side: sources with one club each, their content variants, and every version published so far."""

    def __init__(self, client: Any, load: Load) -> None:
        from cappi.adapters.dynamo.shards import PackedShard
        from cappi.adapters.dynamo.table import SnapshotTable
        from cappi.domain.snapshot import build_club_snapshot

        self.load = load
        self.writer = ingest_bench.metered_writer(SnapshotTable(client, TABLE))  # the publisher's own request counter
        self.clubs = [load.first_club + n for n in range(load.sources)]
        self.source_of = {club: f"bench-{club:03d}" for club in self.clubs}
        # Each variant is kept packed (about 100 KB, not 875 KB as a dict): 1,000 clubs fit in memory.
        self.variants: dict[int, list[PackedShard]] = {}
        for club in self.clubs:
            rows = ingest_bench.reference_rows(load.calls, load.club_techs, seed=club)
            contents = [rows] + [ingest_bench.changed(rows, seed=club * 10 + n) for n in range(1, VARIANTS)]
            self.variants[club] = [PackedShard.of(build_club_snapshot(club, _grouped(c)).techs) for c in contents]
        self.versions: dict[int, list[Version]] = {club: [] for club in self.clubs}
        self.by_name: dict[int, dict[str, int]] = {club: {} for club in self.clubs}
        self.by_last_modified: dict[int, dict[str, int]] = {club: {} for club in self.clubs}

    def publish(self, club: int, at_s: float) -> None:
        """One poll of the club's source, fetched and committed at simulated time `at_s`."""
        from cappi.domain.publish import Outcome, publish_source
        from cappi.domain.snapshot import build_club_snapshot

        index = len(self.versions[club])
        fetched_at_ms = EPOCH_MS + round(at_s * 1000)
        techs = self.variants[club][index % VARIANTS]
        snapshot = build_club_snapshot(club, techs.unpacked())
        (result,) = publish_source(self.writer, self.source_of[club], [snapshot], fetched_at_ms)
        assert result.outcome is Outcome.PUBLISHED and result.version, result
        self.versions[club].append(Version(at_s, result.version, techs))
        self.by_name[club][result.version] = index
        self.by_last_modified[club][formatdate(fetched_at_ms / 1000, usegmt=True)] = index

    def commit_times(self) -> list[tuple[float, int]]:
        """(simulated time, club) of every poll after the first, in the load's flip pattern."""
        load = self.load
        rng = random.Random(load.seed * 7 + load.sources)
        times = []
        tick = load.warmup_s + load.poll_interval_s / 20
        while tick < load.warmup_s + load.duration_s:
            for n, club in enumerate(self.clubs):
                if load.flips == "tick":
                    offset = rng.uniform(1.0, load.commit_spread_s)
                else:
                    offset = n * load.poll_interval_s / len(self.clubs)
                times.append((tick + offset, club))
            tick += load.poll_interval_s
        return sorted(t for t in times if t[0] < load.warmup_s + load.duration_s)


def _grouped(rows: list[dict]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for row in rows:
        grouped.setdefault(row["TechId"], []).append(row["CallId"])
    return grouped


@dataclass
class Container:
    """One warm query Lambda: its own table (request counter) and reader; a handler when the fleet uses one."""

    table: Any
    reader: Any
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None
    first_seen: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class Fleet:
    """N containers behind one function; queries go to a random one, as Lambda spreads them over idle ones."""

    name: str
    containers: list[Container]
    rng: random.Random
    queries: int = 0
    requests_before: int = 0
    read_units_before: float = 0.0
    from_s: float = 0.0  # serves queries only from this simulated time ...
    until_s: float | None = None  # ... until this one (a baseline on a shorter window)
    busy_s: float = 0.0  # wall time spent serving the counted queries (the handler's duration, for Little's law)
    stale_answers: int = 0
    max_stale_s: float = 0.0
    first_seen_lags: list[float] = field(default_factory=list)  # per (flip, container)
    first_seen: set[tuple[int, int]] = field(default_factory=set)
    fleet_first_seen_lags: list[float] = field(default_factory=list)  # per flip, its first query in any container

    @property
    def requests(self) -> int:
        return sum(c.table.requests for c in self.containers)

    @property
    def read_units(self) -> float:
        return sum(c.table.read_meter.units for c in self.containers)

    def per_1000(self) -> float:
        return (self.requests - self.requests_before) / (self.queries / 1000)

    def rru_per_1000(self) -> float:
        return (self.read_units - self.read_units_before) / (self.queries / 1000)


def make_fleet(
    name: str,
    count: int,
    *,
    client: Any,
    world: World,
    clock: SimClock,
    settings: Any,
    reader_class: type,
    via_handler: bool,
    seed: int,
) -> Fleet:
    from cappi.adapters.dynamo.poll_log import DynamoPollLog
    from cappi.adapters.dynamo.shard_source import DynamoShardSource
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.handlers import query

    containers = []
    for _ in range(count):
        table = SnapshotTable(client, TABLE)
        shards, polls = DynamoShardSource(table), DynamoPollLog(table)
        reader = reader_class(
            shards, world.source_of, polls=polls, pointer_max_age=settings.pointer_max_age_s, clock=clock
        )
        handler = None
        if via_handler:
            deps = query.QueryDependencies(settings, reader, frozenset(world.clubs))
            handler = query.make_handler(lambda deps=deps: deps)
        containers.append(Container(table, reader, handler))
    return Fleet(name, containers, random.Random(seed))


def api_event(club: int, tech: str, request_id: str) -> dict[str, Any]:
    """A payload 2.0 event as local mode's API Gateway stand-in builds it, with the authorizer's claims."""
    from cappi.contracts import api as api_contract
    from local.http_api import HttpApi, HttpRequest, Route

    route = Route("GET", api_contract.ROUTE, lambda _e, _c: {})
    request = HttpRequest("GET", api_contract.path_for(club, tech), [("Authorization", "Bearer x")])
    params = route.match("GET", request.target)
    assert params is not None
    claims = {"sub": "bench@clients", "azp": "bench", "scope": "read:callids"}
    return HttpApi([route]).event(
        route,
        params,
        request,
        raw_path=request.target,
        query="",
        request_id=request_id,
        authorizer={"jwt": {"claims": claims, "scopes": ["read:callids"]}},
    )


def simulate(
    world: World,
    fleets: Sequence[Fleet],
    clock: SimClock,
    sink: io.StringIO,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Run the load's timeline: the initial versions, then queries and commits in simulated-time order;
    `progress(t)` hears each simulated minute."""
    from local.http_api import LambdaContext

    load = world.load
    for club in world.clubs:
        world.publish(club, -1.0)
    rng = random.Random(load.seed)
    technicians = []
    for n in range(load.technicians):
        club = world.clubs[n % len(world.clubs)]
        technicians.append((club, n))
    per_club: dict[int, list[str]] = {}
    for club in world.clubs:
        count = sum(1 for c, _ in technicians if c == club)
        per_club[club] = rng.sample(sorted(world.variants[club][0]), count)
    techs = [(club, per_club[club].pop()) for club, _ in technicians]
    events = [api_event(club, tech, f"bench-{n}") for n, (club, tech) in enumerate(techs)]
    timeline: list[tuple[float, int, int]] = []  # (time, kind 0 = commit / 1 = query, club or technician)
    end = load.warmup_s + load.duration_s
    for n in range(load.technicians):
        t = rng.uniform(0, load.query_interval_s)
        while t < end:
            timeline.append((t, 1, n))
            t += load.query_interval_s
    timeline += [(t, 0, club) for t, club in world.commit_times()]
    timeline.sort()
    context = LambdaContext(function_name="cappi-bench-query", aws_request_id="bench")
    counting, minute = False, -1.0
    for done, (t, kind, who) in enumerate(timeline):
        clock.now = t
        if not counting and t >= load.warmup_s:
            counting = True
            for fleet in fleets:
                fleet.requests_before = fleet.requests
                fleet.read_units_before = fleet.read_units
        if kind == 0:
            world.publish(who, t)
            continue
        club, tech = techs[who]
        for fleet in fleets:
            if t < fleet.from_s or (fleet.until_s is not None and t >= fleet.until_s):
                continue
            container = fleet.containers[fleet.rng.randrange(len(fleet.containers))]
            started = time.perf_counter()
            served = serve(world, container, events[who], context=context, club=club, tech=tech)
            if counting:
                fleet.busy_s += time.perf_counter() - started
                fleet.queries += 1
                record(world, fleet, container, club=club, t=t, served=served)
        if done % 2_000 == 0:
            sink.seek(0)
            sink.truncate()
            if progress is not None and t // 60 != minute:
                minute = t // 60
                progress(t)


def serve(world: World, container: Container, event: dict[str, Any], *, context: Any, club: int, tech: str) -> int:
    """One query; returns the index of the version it was answered from, after checking the answer is exact."""
    if container.handler is None:
        found = container.reader.open_calls(club, tech)
        index = world.by_name[club][found.version]
        answer = list(found.call_ids)
    else:
        response = container.handler(event, context)
        assert response["statusCode"] == 200, response
        index = world.by_last_modified[club][response["headers"]["Last-Modified"]]
        answer = json.loads(response["body"])
    assert answer == list(world.versions[club][index].techs.get(tech, ())), (club, tech, index)
    return index


def record(world: World, fleet: Fleet, container: Container, *, club: int, t: float, served: int) -> None:
    versions = world.versions[club]
    current = len(versions) - 1
    assert served <= current
    if served < current:  # answered from a version a later commit replaced: stale by the time since that commit
        fleet.stale_answers += 1
        fleet.max_stale_s = max(fleet.max_stale_s, t - versions[served + 1].commit_s)
    counted = versions[served].commit_s >= world.load.warmup_s
    if (club, served) not in container.first_seen:
        container.first_seen.add((club, served))
        if counted:
            fleet.first_seen_lags.append(t - versions[served].commit_s)
    if (club, served) not in fleet.first_seen:
        fleet.first_seen.add((club, served))
        if counted:
            fleet.fleet_first_seen_lags.append(t - versions[served].commit_s)


def deployed_settings() -> Any:
    """The query function's settings as a stage deploys them (infra's stage defaults: cache ages, the request
    line's sample rate, the poll schedule), pointed at the benchmark's table."""
    from dataclasses import fields

    from cappi.settings import QuerySettings
    from infra.config import StageConfig

    stage = {f.name: f.default for f in fields(StageConfig)}
    return replace(
        QuerySettings.from_env({"CAPPI_TABLE_NAME": TABLE}),
        clubs_file="<bench>",
        pointer_max_age_s=stage["pointer_max_age_s"],
        cache_max_age_s=stage["cache_max_age_s"],
        request_log_sample_rate=stage["request_log_sample_rate"],
        poll_interval_s=stage["schedule_minutes"] * 60,
    )
