"""Query benchmark: a simulated hour of realistic traffic through the real reader and the real query handler.

Printed figures are measured in this run, nothing else (these machines are noisy, so times are ratios):
- `ddb_requests_per_1000`: DynamoDB requests per 1,000 queries made by warm query containers (their stores'
  request counters) while technicians query at a steady rate over many club sources whose heads flip as polls
  publish; at 2 containers (through the handler), 1 and 4 (`_c1`, `_c4`), and for fewer and for evenly spread
  sources, to show the figure does not grow with them. The containers run the deployed reader (pointers from the
  readers' index, moved shards by delta); `_heads` is the baseline on the same timeline, 2 containers of the reader
  that reads every head it holds and each new version's shards. `rru_per_1000`: the read units those requests
  cost, from the items they brought back by DynamoDB's rules (`cappi.adapters.dynamo.cost.read_units`);
- `max_staleness_s`: the longest simulated time from a head flip (its commit) to a query still answered from the
  version it replaced: how long after a publish a technician can still get the old list. `max_first_seen_s`: from
  a flip to the first query of that club answered from it, in any container, and `max_first_seen_container_s` the
  same per container. Those two also wait for that club's next query to arrive (about one every 1.5 s per club
  at the default load, split over the containers): they measure traffic as well as the cache;
- `handler_us`: the warm handler's median time on an API Gateway payload 2.0 event (built by local.http_api), and
  `handler_ratio`: that over a bare Powertools `APIGatewayHttpResolver` with one route returning a constant,
  timed on the same events, interleaved;
- `cold_import_ratio`: importing and wiring the handler against importing boto3 and creating a client, in fresh
  interpreters of the Lambda runtime's Python when this machine has one; `verify_us`: one JWT check of a new token
  by local mode's authorizer, and `verify_seen_us` of a token it checked before.

The readers' clock is the simulation's, so an hour of traffic takes seconds; DynamoDB is moto, in process.

    python bench/query.py                      # last line: name=value pairs
    python bench/query.py --profile internet   # 1,000 sources, 1,000 queries/s (bench/query_internet.py)
    python bench/query.py --help      # the load's parameters
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
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
LAMBDA_PYTHON = "3.13"  # the query function's runtime (infra/functions.py)
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


def handler_times(handler: Callable[..., Any], events: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    """Median time of the warm handler and of a bare Powertools resolver on the same events, interleaved."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

    from cappi.contracts import api as api_contract
    from local.http_api import LambdaContext

    bare = APIGatewayHttpResolver()

    def constant(ClubId: str, TechId: str) -> Response:
        return Response(status_code=200, content_type="application/json", body='["8679"]')

    bare.get(api_contract.RESOLVER_ROUTE)(constant)
    context: Any = LambdaContext(function_name="cappi-bench-query", aws_request_id="bench")
    for event in events:  # every shard these events need is cached from here on
        assert handler(event, context)["statusCode"] == 200
        assert bare.resolve(event, context)["statusCode"] == 200
    ours: list[float] = []
    theirs: list[float] = []
    perf = time.perf_counter
    for n in range(rounds):
        for event in events:
            first, second = (ours, theirs) if n % 2 == 0 else (theirs, ours)
            for times in (first, second):
                started = perf()
                if times is ours:
                    handler(event, context)
                else:
                    bare.resolve(event, context)
                times.append(perf() - started)
    return statistics.median(ours) * 1e6, statistics.median(theirs) * 1e6


def lambda_python() -> tuple[str, str]:
    """(interpreter, how it was chosen): the Lambda runtime's Python if this machine has one, else this one."""
    candidates = [os.environ.get("CAPPI_LAMBDA_PYTHON", ""), f"python{LAMBDA_PYTHON}"]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += sorted(glob.glob(str(pyenv / f"{LAMBDA_PYTHON}*" / "bin" / f"python{LAMBDA_PYTHON}")), reverse=True)
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == LAMBDA_PYTHON:
            return candidate, f"Python {LAMBDA_PYTHON} ({candidate})"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return sys.executable, f"Python {version} ({sys.executable}): no Python {LAMBDA_PYTHON} on this machine"


def cold_import_ratio(runs: int = 15) -> tuple[float, float, float, str]:
    """Fresh interpreters, interleaved: our cold path (import the handler, wire it: registry, boto3 client) against
    importing boto3 and creating a DynamoDB client. Best of `runs` each, after one priming run of each.

    As in Lambda, where the asset's root is on sys.path and its modules are compiled ahead: `functions/` and this
    venv's packages (boto3 and Powertools are pure Python) go on PYTHONPATH, found by the path finder rather than
    the venv's editable-install hook, and bytecode is cached in a directory of this benchmark's own."""
    interpreter, which = lambda_python()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {
        "CAPPI_TABLE_NAME": TABLE,
        "CAPPI_CLUBS_FILE": str(ROOT / "clubs" / "stage.json"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), sysconfig.get_paths()["purelib"]]),
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "cappi-bench-pycache"),
    }
    ours = (
        "import time; t = time.perf_counter(); import cappi.handlers.query as q; q.QueryDependencies.from_env(); "
        "print(time.perf_counter() - t)"
    )
    base = (
        "import time; t = time.perf_counter(); import boto3; boto3.client('dynamodb'); print(time.perf_counter() - t)"
    )

    def once(code: str) -> float:
        out = subprocess.run([interpreter, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    once(base), once(ours)
    ours_times, base_times = [], []
    for _ in range(runs):
        base_times.append(once(base))
        ours_times.append(once(ours))
    return min(ours_times) / min(base_times), min(ours_times), min(base_times), which


def verify_us(runs: int = 3_000) -> tuple[float, float]:
    """Median time of one JWT authorizer check (RS256 signature, claims, scope) with a warm key cache: a token seen
    for the first time (two tokens alternating through a verified-token cache of one), and a token seen before
    (its signature checked once, its time claims, issuer, audience and scopes again)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer

    issuer, audience = "https://stage-clubassist.auth0.com/", "https://stagecappi.clubassist.com"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}
    jwks = JwksCache(issuer + ".well-known/jwks.json", fetch=lambda _uri: json.dumps({"keys": [jwk]}).encode())
    config = AuthorizerConfig(issuer, audience, ("read:callids",))
    now = int(time.time())
    headers = []
    for sub in ("a@clients", "b@clients"):
        claims = {"iss": issuer, "aud": audience, "sub": sub, "scope": "read:callids", "iat": now, "exp": now + 600}
        headers.append("Bearer " + jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}))

    def median_us(authorizer: JwtAuthorizer, alternate: bool) -> float:
        assert all(authorizer.authorize(header).allowed for header in headers)
        times = []
        for n in range(runs):
            header = headers[n % 2] if alternate else headers[0]
            started = time.perf_counter()
            authorizer.authorize(header)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6

    first = median_us(JwtAuthorizer(config, jwks, verified_tokens=1), alternate=True)
    seen = median_us(JwtAuthorizer(config, jwks), alternate=False)
    assert jwks.fetches == 1
    return first, seen


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


def parse_args(argv: Sequence[str] | None) -> tuple[Load, argparse.Namespace]:
    default = Load()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=default.sources)
    parser.add_argument("--technicians", type=int, default=default.technicians)
    parser.add_argument("--query-interval", type=float, default=default.query_interval_s)
    parser.add_argument("--calls", type=int, default=default.calls, help="per club")
    parser.add_argument("--club-techs", type=int, default=default.club_techs, help="per club")
    parser.add_argument("--duration", type=float, default=default.duration_s, help="simulated seconds")
    parser.add_argument("--commit-spread", type=float, default=default.commit_spread_s)
    parser.add_argument("--few-sources", type=int, default=10, help="the comparison run's number of sources")
    parser.add_argument("--even-flips", action="store_true", help="also run with every flip on its own (slower)")
    parser.add_argument("--handler-rounds", type=int, default=4, help="passes over the technicians' events")
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument(
        "--internet-duration",
        type=float,
        default=240.0,
        help="internet profile: simulated seconds after the warm-up (240: about 8 minutes on a shared 2-core machine)",
    )
    parser.add_argument(
        "--baseline-duration", type=float, default=30.0, help="internet profile: simulated seconds of the baseline"
    )
    parser.add_argument(
        "--profile",
        choices=("reference", "internet"),
        default="reference",
        help="internet: 1,000 sources, 1,000 queries/s (bench/query_internet.py); the load options above are ignored",
    )
    args = parser.parse_args(argv)
    load = replace(
        default,
        sources=args.sources,
        technicians=args.technicians,
        query_interval_s=args.query_interval,
        calls=args.calls,
        club_techs=args.club_techs,
        duration_s=args.duration,
        commit_spread_s=args.commit_spread,
        seed=args.seed,
    )
    return load, args


def main(argv: Sequence[str] | None = None, reader_class: type | None = None) -> None:
    """`reader_class` swaps the reader (to measure another implementation under the same load)."""
    import boto3
    from moto import mock_aws

    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.indexed_reader import IndexedSnapshotReader
    from cappi.adapters.snapshot_reader import CachedSnapshotReader
    from cappi.handlers import query

    load, args = parse_args(argv)
    if args.profile == "internet":
        import query_internet

        query_internet.main(args, reader_class)
        return
    reader_class = reader_class or IndexedSnapshotReader
    settings = deployed_settings()
    started = time.perf_counter()
    sink = io.StringIO()
    log_handler: Any = query.logger.registered_handler  # a StreamHandler: the benchmark keeps its lines
    log_stream = log_handler.setStream(sink)
    with mock_aws(), contextlib.redirect_stdout(sink):
        moto_client = boto3.client("dynamodb")
        create_table(moto_client, TABLE)
        items: dict[ItemKey, dict[str, Any]] = {}
        client, publisher = ReadThrough(moto_client, items), Invalidating(moto_client, items)
        clock = SimClock()

        def fleets_for(world: World, *specs: tuple[str, int, bool], reader: type | None = None) -> list[Fleet]:
            return [
                make_fleet(
                    name,
                    n,
                    client=client,
                    world=world,
                    clock=clock,
                    settings=settings,
                    reader_class=reader or reader_class,
                    via_handler=h,
                    seed=load.seed + n,
                )
                for name, n, h in specs
            ]

        main_world = World(publisher, load)
        set_up_in = time.perf_counter() - started
        main_fleets = fleets_for(main_world, ("c2", 2, True), ("c1", 1, False), ("c4", 4, False))
        # The baseline, interleaved on the same timeline: the head-reading reader the index replaced.
        (heads,) = fleets_for(main_world, ("heads", 2, False), reader=CachedSnapshotReader)
        simulate(main_world, [*main_fleets, heads], clock, sink)
        few_load = replace(load, sources=args.few_sources, first_club=load.first_club + load.sources)
        few_world = World(publisher, few_load)
        (few,) = fleets_for(few_world, ("c2", 2, False))
        simulate(few_world, [few], clock, sink)
        even: Fleet | None = None
        if args.even_flips:
            even_load = replace(load, flips="even", first_club=few_load.first_club + few_load.sources)
            even_world = World(publisher, even_load)
            (even,) = fleets_for(even_world, ("c2", 2, False))
            simulate(even_world, [even], clock, sink)
        simulated_in = time.perf_counter() - started

        by_name = {f.name: f for f in main_fleets}
        c2 = by_name["c2"]
        assert c2.containers[0].handler is not None
        timing_events = [api_event(club, tech, f"t{n}") for n, (club, tech) in enumerate(_sample_targets(main_world))]
        handler_us, bare_us = handler_times(c2.containers[0].handler, timing_events, args.handler_rounds)
    log_handler.setStream(log_stream)

    cold_ratio, cold_ours, cold_base, interpreter = cold_import_ratio()
    verify, verify_seen = verify_us()
    per_1000 = {name: fleet.per_1000() for name, fleet in by_name.items()}
    flips = sum(len(v) - 1 for v in main_world.versions.values())
    first_seen = c2.first_seen_lags
    print(f"load: {load.describe()}")
    print(
        f"  queries counted per fleet: {c2.queries:,}; head flips: {flips} ({main_world.load.flips} pattern); "
        f"pointer_max_age {settings.pointer_max_age_s:g} s (the deployed setting); wall time: set-up "
        f"{set_up_in:.0f} s, all simulations {simulated_in - set_up_in:.0f} s"
    )
    for name in ("c1", "c2", "c4"):
        fleet = by_name[name]
        stats = [c.reader.stats for c in fleet.containers]
        how = "through the handler" if name == "c2" else "through the reader"
        print(
            f"  {len(fleet.containers)} container(s), {how}: {per_1000[name]:.2f} DynamoDB requests per 1,000 queries "
            f"({fleet.requests - fleet.requests_before} requests; head rounds {sum(s.pointer_reads for s in stats)}, "
            f"since the start: index rounds {sum(getattr(s, 'index_reads', 0) for s in stats)}, shards moved by delta "
            f"{sum(getattr(s, 'deltas_applied', 0) for s in stats)}, "
            f"shards prefetched {sum(getattr(s, 'shards_prefetched', 0) for s in stats)}, read by queries "
            f"{sum(s.shard_reads for s in stats)})"
        )
    print(
        f"  baseline, 2 containers reading every head they hold (CachedSnapshotReader, same timeline): "
        f"{heads.per_1000():.2f} requests and {heads.rru_per_1000():.2f} read units per 1,000 queries, against "
        f"{by_name['c2'].rru_per_1000():.2f} read units for the indexed reader's 2 containers"
    )
    print(f"  {few_load.sources} sources, 2 containers: {few.per_1000():.2f} per 1,000")
    even_pair = ""
    if even is not None:
        print(
            f"  {load.sources} sources, 2 containers, every flip on its own (commits evenly spread over the poll "
            f"interval, a worst case): {even.per_1000():.2f} per 1,000"
        )
        even_pair = f" ddb_requests_per_1000_even_flips={even.per_1000():.2f}"
    fleet_first = c2.fleet_first_seen_lags
    print(
        f"staleness over {len(fleet_first)} flips: longest from a flip to a query still answered from the version it "
        f"replaced {c2.max_stale_s:.1f} s ({c2.stale_answers} such answers); from a flip to the first query of its "
        f"club that saw it, in any container: p50 {statistics.median(fleet_first):.1f} s, max {max(fleet_first):.1f} "
        f"s; per (flip, container), {len(first_seen)} pairs: p50 {statistics.median(first_seen):.1f} s, max "
        f"{max(first_seen):.1f} s"
    )
    print(
        f"warm handler {handler_us:.0f} us vs bare Powertools resolver {bare_us:.0f} us (median of "
        f"{args.handler_rounds * len(timing_events):,} each, interleaved): {handler_us / bare_us:.2f}"
    )
    print(f"cold (import+wire) {cold_ours * 1000:.0f} ms vs boto3+client {cold_base * 1000:.0f} ms: {cold_ratio:.2f}")
    print(f"  interpreter: {interpreter}")
    print(
        f"token verification with a warm key cache (local mode's authorizer): {verify:.0f} us for a token seen the "
        f"first time, {verify_seen:.0f} us for one seen before"
    )
    print(
        f"ddb_requests_per_1000={per_1000['c2']:.2f} ddb_requests_per_1000_c1={per_1000['c1']:.2f} "
        f"rru_per_1000={by_name['c2'].rru_per_1000():.2f} ddb_requests_per_1000_heads={heads.per_1000():.2f} "
        f"rru_per_1000_heads={heads.rru_per_1000():.2f} "
        f"ddb_requests_per_1000_c4={per_1000['c4']:.2f} ddb_requests_per_1000_{few_load.sources}_sources="
        f"{few.per_1000():.2f}{even_pair} max_staleness_s={c2.max_stale_s:.1f} "
        f"max_first_seen_s={max(fleet_first):.1f} max_first_seen_container_s={max(first_seen):.1f} "
        f"handler_us={handler_us:.0f} "
        f"handler_ratio={handler_us / bare_us:.2f} cold_import_ratio={cold_ratio:.2f} verify_us={verify:.0f} "
        f"verify_seen_us={verify_seen:.0f}"
    )


def _sample_targets(world: World, count: int = 500) -> list[tuple[int, str]]:
    """(club, tech) pairs across every club, for the handler timing."""
    rng = random.Random(world.load.seed + 99)
    current = {club: world.versions[club][-1].techs for club in world.clubs}
    return [(club, rng.choice(sorted(current[club]))) for club in (world.clubs * count)[:count]]


if __name__ == "__main__":
    main()
