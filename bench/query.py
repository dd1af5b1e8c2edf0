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
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from query_sim import (
    ROOT,
    TABLE,
    Fleet,
    Invalidating,
    ItemKey,
    Load,
    ReadThrough,
    SimClock,
    World,
    api_event,
    deployed_settings,
    make_fleet,
    simulate,
)

LAMBDA_PYTHON = "3.13"  # the query function's runtime (infra/functions.py)


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
