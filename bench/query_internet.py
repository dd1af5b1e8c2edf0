"""Query benchmark, internet profile (`python bench/query.py --profile internet`): the read path at 1,000 clubs.

The load: 1,000 sources of one club each (10,000 calls over 2,500 technicians, bench/ingest.py's reference feed and
its 5%-churn `changed` variant), every source publishing a new version every 600 s with commits evenly spread over
the interval (1.67 club versions a second: polls spread out, as ingest's bounded dispatch does at this scale), and
30,000 technicians each querying every 30 s (1,000 queries a second), through the same simulation as the reference
profile (`bench/query.py`: simulated clock, moto in process, every answer checked against the version it names).

Printed figures, all measured in this run:
- per fleet of warm containers of the indexed reader (1 through the handler, 2, 4 and 8 through the reader):
  DynamoDB requests and read units per 1,000 queries (read units from the items each request brought back, by
  DynamoDB's rules: `cappi.adapters.dynamo.cost.read_units`), and the longest staleness (a flip to the last query
  answered from the version it replaced);
- `containers`: Little's law, L = arrival rate x time in the system, with the time per query measured here: the
  1-container fleet's mean wall time through the handler, plus `ASSUMED_DDB_LATENCY_S` per DynamoDB request it made
  (moto answers in process; a real request takes milliseconds). The headline figures are those of the smallest
  fleet measured that is at least that large; 4 and 8 containers are printed beside them as sensitivity;
- the baseline, interleaved on the same timeline for its first `--baseline-duration` simulated seconds: one
  container of the head-reading reader (`CachedSnapshotReader`, its 256-shard LRU) under the same queries;
- what ingest's writes for readers cost per publish (index entry and delta write units, the base version read
  back to build the delta), beside the rest of the publish (the version's items and the head).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from query_sim import (
    TABLE,
    Fleet,
    Invalidating,
    ItemKey,
    Load,
    ReadThroughQueries,
    SimClock,
    World,
    deployed_settings,
    make_fleet,
    simulate,
)

INTERNET = Load(
    sources=1_000,
    technicians=30_000,
    query_interval_s=30.0,
    calls=10_000,
    club_techs=2_500,
    duration_s=240.0,
    warmup_s=60.0,
    flips="even",
    first_club=0,  # club IDs are 0-999: every one of them
)
ASSUMED_DDB_LATENCY_S = 0.010  # per request, added to the measured handler time for Little's law
FLEETS = (1, 2, 4, 8)


@dataclass
class Run:
    """One simulation of a load over fleets of indexed containers (and, optionally, the head-reading baseline)."""

    load: Load
    settings: Any
    world: World
    by_count: dict[int, Fleet]
    baseline: Fleet | None
    set_up_s: float
    simulated_s: float

    @property
    def measured_s(self) -> float:
        """Mean wall time of a query through the handler (the 1-container fleet)."""
        one = self.by_count[1]
        return one.busy_s / one.queries

    @property
    def little(self) -> float:
        """Little's law: queries in the system = arrival rate x time in the system (the measured handler time, plus
        the assumed latency of each DynamoDB request it made)."""
        requests_per_query = self.by_count[1].per_1000() / 1000
        return self.load.rate * (self.measured_s + requests_per_query * ASSUMED_DDB_LATENCY_S)

    @property
    def chosen(self) -> int:
        """The smallest fleet measured that is at least as large as Little's law says (the largest if none is)."""
        needed = max(1, math.ceil(self.little))
        return next((n for n in sorted(self.by_count) if n >= needed), max(self.by_count))


def run(
    load: Load,
    *,
    fleets: tuple[int, ...] = FLEETS,
    baseline_duration: float = 0.0,
    reader_class: type | None = None,
) -> Run:
    """Simulate `load` over fleets of `fleets` indexed containers (1 of them through the handler) and, for
    `baseline_duration` simulated seconds after the warm-up, one head-reading container on the same timeline."""
    import boto3
    from moto import mock_aws

    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.indexed_reader import IndexedSnapshotReader
    from cappi.adapters.snapshot_reader import CachedSnapshotReader
    from cappi.handlers import query

    assert 1 in fleets, "the 1-container fleet runs through the handler: Little's law needs its time"
    settings = deployed_settings()
    started = time.perf_counter()
    sink = io.StringIO()
    log_handler: Any = query.logger.registered_handler
    log_stream = log_handler.setStream(sink)
    try:
        with mock_aws(), contextlib.redirect_stdout(sink):
            moto_client = boto3.client("dynamodb")
            create_table(moto_client, TABLE)
            items: dict[ItemKey, dict[str, Any]] = {}
            client, publisher = ReadThroughQueries(moto_client, items), Invalidating(moto_client, items)
            clock = SimClock()
            world = World(publisher, load)
            set_up_in = time.perf_counter() - started

            def fleet(name: str, count: int, reader: type, via_handler: bool) -> Fleet:
                return make_fleet(
                    name,
                    count,
                    client=client,
                    world=world,
                    clock=clock,
                    settings=settings,
                    reader_class=reader,
                    via_handler=via_handler,
                    seed=load.seed + count,
                )

            indexed = reader_class or IndexedSnapshotReader
            measured = [fleet(f"c{n}", n, indexed, n == 1) for n in fleets]
            baseline = None
            if baseline_duration > 0:
                baseline = fleet("heads", 1, CachedSnapshotReader, False)
                baseline.from_s = load.warmup_s - 10.0  # its 256 shards are full within seconds
                baseline.until_s = load.warmup_s + baseline_duration
            began = time.perf_counter()

            def progress(t: float) -> None:
                print(f"  simulated {t:.0f} s in {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)

            simulate(world, [*measured, *([baseline] if baseline else [])], clock, sink, progress)
            simulated_in = time.perf_counter() - started - set_up_in
    finally:
        log_handler.setStream(log_stream)
    return Run(load, settings, world, {len(f.containers): f for f in measured}, baseline, set_up_in, simulated_in)


def main(args: argparse.Namespace, reader_class: type | None = None) -> None:
    from cappi.adapters.dynamo.schema import INDEX_SLOTS

    load = replace(INTERNET, duration_s=args.internet_duration, seed=args.seed)
    result = run(load, baseline_duration=args.baseline_duration, reader_class=reader_class)
    settings, world, baseline = result.settings, result.world, result.baseline
    assert baseline is not None
    set_up_in, simulated_in = result.set_up_s, result.simulated_s
    by_count = result.by_count
    fleets = list(by_count.values())
    one = by_count[1]
    requests_per_query = one.per_1000() / 1000
    measured_s = result.measured_s
    little = result.little
    needed = max(1, math.ceil(little))
    chosen = result.chosen
    head = by_count[chosen]
    writer = world.writer
    flips = sum(len(v) - 1 for v in world.versions.values())
    publishes = sum(len(v) for v in world.versions.values())
    total_wru = writer.meter.units
    snapshot_wru = (total_wru - writer.readers_wru) / publishes  # a first publish's index entry counts here
    moved = max(1, writer.recorded)  # publishes after each source's first

    print(f"load: {load.describe()}")
    print(
        f"  queries counted per fleet: {one.queries:,}; flips: {flips} (even pattern); pointer_max_age "
        f"{settings.pointer_max_age_s:g} s; index of {INDEX_SLOTS} items; wall time: set-up {set_up_in:.0f} s, "
        f"simulation {simulated_in:.0f} s"
    )
    print(
        f"containers by Little's law: {load.rate:.0f} queries/s x ({measured_s * 1e6:.0f} us measured per query "
        f"through the handler + {requests_per_query:.4f} requests/query x {ASSUMED_DDB_LATENCY_S * 1000:.0f} ms "
        f"assumed per DynamoDB request) = {little:.2f} -> {needed}; figures of the {chosen}-container fleet"
    )
    for n, f in by_count.items():
        stats = [c.reader.stats for c in f.containers]
        print(
            f"  {n} container(s){' through the handler' if n == 1 else ''}: {f.per_1000():.2f} requests and "
            f"{f.rru_per_1000():.2f} read units per 1,000 queries (since the start: index rounds "
            f"{sum(s.index_reads for s in stats)}, "
            f"shards moved by delta {sum(s.deltas_applied for s in stats)}, prefetched "
            f"{sum(s.shards_prefetched for s in stats)}, read by queries {sum(s.shard_reads for s in stats)}); "
            f"max staleness {f.max_stale_s:.1f} s"
        )
    print(
        f"  baseline, 1 container reading every head it holds (CachedSnapshotReader, 256 shards), first "
        f"{args.baseline_duration:.0f} s after the warm-up ({baseline.queries:,} queries): {baseline.per_1000():.2f} "
        f"requests and {baseline.rru_per_1000():.2f} read units per 1,000 queries; indexed 1 container: "
        f"{one.per_1000() / baseline.per_1000():.4f} x the requests, "
        f"{one.rru_per_1000() / baseline.rru_per_1000():.4f} x the read units"
    )
    print(
        f"ingest per publish ({publishes:,} publishes): version and head {snapshot_wru:.1f} write units; for readers "
        f"{writer.readers_wru / moved:.1f} write units (index entry + delta) and {writer.readers_rru / moved:.1f} read "
        f"units (the replaced version read back for its delta), per moved club; index write failures "
        f"{writer.readers_index.failures}"
    )
    fleet_first = head.fleet_first_seen_lags
    print(
        f"staleness: longest from a flip to a query answered from the version it replaced {head.max_stale_s:.1f} s "
        f"({head.stale_answers} such answers); flip to its first query in any container: p50 "
        f"{statistics.median(fleet_first):.1f} s, max {max(fleet_first):.1f} s"
    )
    sensitivity = " ".join(
        f"ddb_requests_per_1000_c{n}={by_count[n].per_1000():.2f} rru_per_1000_c{n}={by_count[n].rru_per_1000():.2f}"
        for n in (4, 8)
    )
    print(
        f"ddb_requests_per_1000={head.per_1000():.2f} rru_per_1000={head.rru_per_1000():.2f} "
        f"max_staleness_s={max(f.max_stale_s for f in fleets):.1f} containers={chosen} little_l={little:.2f} "
        f"{sensitivity} ddb_requests_per_1000_heads={baseline.per_1000():.2f} "
        f"rru_per_1000_heads={baseline.rru_per_1000():.2f} snapshot_wru={snapshot_wru:.1f} "
        f"readers_wru={writer.readers_wru / moved:.1f} readers_rru={writer.readers_rru / moved:.1f}"
    )
