"""Ingest benchmark: parse cost, write units per snapshot, unchanged-poll cost and peak memory.

Runs the real code (feed client over loopback HTTP, parser, snapshot builder, ingest handler, DynamoDB store on
moto) and prints figures measured in this one run, each with its load. Ratios, not absolute times, because these
machines are shared and noisy: each against `json.loads` of the same bytes, timed in the same run, interleaved.

    python bench/ingest.py                  # today's load: a 10,000-call and a 100,000-call feed
    python bench/ingest.py --rows 1000000   # a feed of that many calls (about 56 MB at 1,000,000)

The last line holds name=value pairs: `parse_ratio` (parse_feed over json.loads), `unchanged_cpu_ratio` (the CPU
time of an unchanged poll through the ingest handler: the real club client over loopback HTTP from a club that
ignores the validators sent and answers 200 with the same body, the hash compare, the head's check write and the
last-poll record on moto; over json.loads of the same bytes), `unchanged_304_cpu_ratio` (the same from a club that
answers 304), `peak_mb` (peak RSS of a fresh process whose poll publishes a changed feed of that size), and, for
today's load, the write units.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CAPPI")

CLUB_IDS = (212, 213, 214)
TABLE = "cappi-bench"


def reference_rows(calls: int, techs: int, seed: int) -> list[dict]:
    """Deterministic feed rows: `calls` distinct 7-digit call IDs over `techs` techs and three club IDs."""
    rnd = random.Random(seed)
    tech_ids = [f"{'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23]}{n // 23:05d}" for n in rnd.sample(range(23 * 10**5), techs)]
    call_ids = rnd.sample(range(1_000_000, 10_000_000), calls)
    rows = []
    for index, call_id in enumerate(call_ids):
        tech_index = index % techs  # every tech gets calls; ~calls/techs each
        rows.append({"CallId": call_id, "ClubId": CLUB_IDS[tech_index % 3], "TechId": tech_ids[tech_index]})
    rnd.shuffle(rows)
    return rows


def feed_bytes(rows: list[dict]) -> bytes:
    return json.dumps({"Result": {"Calls": rows}}).encode()


def changed(rows: list[dict], seed: int, share: float = 0.05) -> list[dict]:
    """The next poll of a busy club: `share` of calls closed and as many new ones opened."""
    rnd = random.Random(seed)
    kept = [r for r in rows if rnd.random() >= share]
    used = {r["CallId"] for r in rows}
    for index in range(len(rows) - len(kept)):
        template = rows[index]
        call_id = rnd.randrange(1_000_000, 10_000_000)
        while call_id in used:
            call_id = rnd.randrange(1_000_000, 10_000_000)
        used.add(call_id)
        kept.append({**template, "CallId": call_id})
    return kept


def best_of(fn, repeats: int) -> float:
    """The least CPU time of this thread over `repeats` calls: parsing is single-threaded CPU work, and CPU time
    leaves out the moments another tenant of a shared machine holds the core (wall time swung by a third here)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.thread_time()
        fn()
        times.append(time.thread_time() - started)
    return min(times)


class FeedServer:
    """A club feed on loopback whose body can be swapped between polls. It sends an ETag; with `honour` set it
    answers 304 to a request that sends it back, else 200 with the body whatever the request says."""

    def __init__(self) -> None:
        self._body = b""
        self.etag = '""'
        self.honour = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as clubs' servers do

            def do_GET(self) -> None:
                body, etag = outer._body, outer.etag
                if outer.honour and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self.etag = f'"{hashlib.sha256(value).hexdigest()[:20]}"'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_ratio(body: bytes, repeats: int = 15, *, reference: bool = True) -> tuple[float, float, float, float]:
    """parse_feed over json.loads, their times, and the reference parser's time (what parse_feed falls back to;
    nan when not timed)."""
    from cappi.domain.feed import Parser, parse_feed

    # Interleaved, so all sides see the same moments of a shared, noisy machine; least CPU time of each.
    loads, parse, fallback = [], [], []
    for _ in range(repeats):
        loads.append(best_of(lambda: json.loads(body), 1))
        parse.append(best_of(lambda: parse_feed(body, CLUB_IDS), 1))
        if reference:
            fallback.append(best_of(lambda: parse_feed(body, CLUB_IDS, parser=Parser.REFERENCE), 1))
    return min(parse) / min(loads), min(loads), min(parse), min(fallback) if fallback else float("nan")


def snapshot_seconds(body: bytes, repeats: int) -> tuple[float, float]:
    """Least CPU time of building and hashing every club's snapshot from the parsed feed, and of the body's hash."""
    from cappi.domain.body_record import body_digest
    from cappi.domain.feed import parse_feed
    from cappi.domain.snapshot import build_club_snapshot

    parsed = parse_feed(body, CLUB_IDS)
    build = best_of(lambda: [build_club_snapshot(club, parsed.by_club[club]) for club in CLUB_IDS], repeats)
    return build, best_of(lambda: body_digest(body), repeats)


def unchanged_cpu(body: bytes, repeats: int) -> dict[str, float]:
    """CPU time of an unchanged poll through the ingest handler, from a club that ignores the validators (200, the
    same body: the hash decides) and from one that honours them (304), against json.loads of the same bytes;
    interleaved, least of each."""
    import boto3
    from moto import mock_aws

    from cappi.adapters.club_client import ClientLimits, ClubFeedClient
    from cappi.adapters.dynamo.poll_log import DynamoPollLog
    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.adapters.dynamo.writer import SnapshotWriter
    from cappi.adapters.secrets import StaticSecrets
    from cappi.domain.registry import ClubRegistry, ClubSource
    from cappi.handlers import ingest

    server = FeedServer()
    server.body = body
    event = {"source": "bench-club", "scheduled_time": "2026-12-01T00:00:00Z"}
    # The handler's log lines are written (and timed) as deployed, into a buffer instead of the terminal; the club
    # client's lines reach the same handler (its logger is a child of the handler's), here and in later polls.
    ingest.route_library_logs_through(ingest.logger, "cappi.club_client")
    ingest.logger.registered_handler.setStream(io.StringIO())
    try:
        with mock_aws():
            client = boto3.client("dynamodb")
            create_table(client, TABLE)
            table = SnapshotTable(client, TABLE)
            source = ClubSource(name="bench-club", club_ids=frozenset(CLUB_IDS), base_url=server.base_url)
            deps = ingest.IngestDependencies(
                registry=ClubRegistry((source,)),
                fetcher=ClubFeedClient(StaticSecrets({}), ClientLimits(max_body_bytes=max(len(body) * 2, 1 << 20))),
                store=SnapshotWriter(table),
                poll_log=DynamoPollLog(table),
            )

            def poll(expected: str | None) -> None:
                with contextlib.redirect_stdout(io.StringIO()):  # the handler's metrics line
                    result = ingest._poll(event, None, deps)
                assert result["status"] == "ok" and result["unchanged_by"] == expected, result

            poll(None)  # publishes
            loads, same_body, not_modified = [], [], []
            for _ in range(repeats):
                loads.append(best_of(lambda: json.loads(body), 1))
                server.honour = False
                same_body.append(best_of(lambda: poll("same_body"), 1))
                server.honour = True
                not_modified.append(best_of(lambda: poll("304"), 1))
    finally:
        server.close()
    return {"loads": min(loads), "same_body": min(same_body), "not_modified": min(not_modified)}


def metered_writer(table: Any) -> Any:
    """Ingest's writer, counting apart what its writes for readers cost (index entries, deltas, and reading a
    delta's base back) from the rest of each publish (the version and the head): `readers_wru`, `readers_rru` over
    `recorded` publishes that replaced a version."""
    from cappi.adapters.dynamo.writer import SnapshotWriter

    class MeteredWriter(SnapshotWriter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.readers_wru = 0
            self.readers_rru = 0.0
            self.recorded = 0

        def record_for_readers(self, source: str, fetched_at_ms: int, previous: Any, *args: Any) -> None:
            meters = self._table.meter, self._table.read_meter
            wru, rru = meters[0].units, meters[1].units
            super().record_for_readers(source, fetched_at_ms, previous, *args)
            if previous is not None:  # a source's first publish has no delta: counted with the version's writes
                self.readers_wru += meters[0].units - wru
                self.readers_rru += meters[1].units - rru
                self.recorded += 1

    return MeteredWriter(table)


def write_units() -> dict[str, float]:
    import boto3
    from moto import mock_aws

    from cappi.adapters.club_client import ClubFeedClient
    from cappi.adapters.dynamo.cost import item_size, write_units
    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.adapters.secrets import StaticSecrets
    from cappi.domain.poll import poll_source
    from cappi.domain.registry import ClubSource

    rows = reference_rows(10_000, 2_500, seed=1)
    server = FeedServer()
    try:
        with mock_aws():
            client = boto3.client("dynamodb")
            create_table(client, TABLE)
            store = metered_writer(SnapshotTable(client, TABLE))
            source = ClubSource(name="bench-club", club_ids=frozenset(CLUB_IDS), base_url=server.base_url)
            fetcher = ClubFeedClient(StaticSecrets({}))

            server.body = feed_bytes(rows)
            first = poll_source(source, fetcher, store)
            server.body = feed_bytes(changed(rows, seed=2))
            readers_before = store.readers_wru
            second = poll_source(source, fetcher, store)
            readers_wru = store.readers_wru - readers_before
            items_before = client.scan(TableName=TABLE, Select="COUNT")["Count"]
            unchanged = poll_source(source, fetcher, store)
            items_written = client.scan(TableName=TABLE, Select="COUNT")["Count"] - items_before
            assert [c.outcome.value for c in second.clubs] == ["published"] * 3, second.summary()
            assert [c.outcome.value for c in unchanged.clubs] == ["unchanged"] * 3, unchanged.summary()
    finally:
        server.close()

    per_call = 0
    for row in rows:  # the naive layout: one item per open call
        item = {
            "pk": {"S": f"CLUB#{row['ClubId']:03d}"},
            "sk": {"S": f"CALL#{row['CallId']}"},
            "tech": {"S": row["TechId"]},
            "expires_at": {"N": str(2_000_000_000)},
        }
        per_call += write_units(item_size(item))
    return {
        "first_wru": first.write_units,
        "snapshot_wru": second.write_units - readers_wru,  # the version and the head, as before readers' writes
        "readers_wru": readers_wru,
        "per_call_wru": per_call,
        "unchanged_wru": unchanged.write_units,
        "unchanged_items": items_written,
    }


def peak_memory_mb(rows: int) -> float:
    """Peak RSS of a fresh process whose poll publishes a changed feed of `rows` calls end to end (fetch, parse,
    publish): it first publishes the feed, then polls the next one (5% of calls closed and as many opened). The feeds
    are written by this process, so the child's peak holds only the interpreter, boto3, moto (with the items it
    stores), the loopback club's copy of the body and the polls."""
    import tempfile

    techs = max(1, rows // 4)
    with tempfile.TemporaryDirectory() as folder:
        first, second = Path(folder) / "first.json", Path(folder) / "second.json"
        current = reference_rows(rows, techs, seed=3)
        first.write_bytes(feed_bytes(current))
        second.write_bytes(feed_bytes(changed(current, seed=4)))
        del current
        out = subprocess.run(
            [sys.executable, __file__, "--changed-poll", str(first), str(second), str(rows)],
            check=True,
            capture_output=True,
            text=True,
            timeout=1200,
        ).stdout
    return float(out.strip().splitlines()[-1])


def _changed_poll(first: Path, second: Path, rows: int) -> None:
    import boto3
    from moto import mock_aws

    from cappi.adapters.club_client import ClientLimits, ClubFeedClient
    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.dynamo.table import SnapshotTable
    from cappi.adapters.dynamo.writer import SnapshotWriter
    from cappi.adapters.secrets import StaticSecrets
    from cappi.domain.poll import poll_source
    from cappi.domain.registry import ClubSource
    from cappi.settings import IngestSettings

    server = FeedServer()
    limits = ClientLimits(max_body_bytes=IngestSettings.default("max_body_bytes"))
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        source = ClubSource(name="bench-club", club_ids=frozenset(CLUB_IDS), base_url=server.base_url)
        store = SnapshotWriter(SnapshotTable(client, TABLE))
        fetcher = ClubFeedClient(StaticSecrets({}), limits)
        for path, outcome in ((first, "published"), (second, "published")):
            server.body = path.read_bytes()
            result = poll_source(source, fetcher, store)
            assert result.ok and result.accepted == rows, result.summary()
            assert [c.outcome.value for c in result.clubs] == [outcome] * len(CLUB_IDS), result.summary()
    server.close()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def unchanged_line(rows: int, body: bytes, repeats: int) -> tuple[float, float]:
    times = unchanged_cpu(body, repeats)
    ratio, ratio_304 = times["same_body"] / times["loads"], times["not_modified"] / times["loads"]
    print(f"unchanged poll of the {rows:,}-call feed through the ingest handler (client over loopback, moto):")
    print(
        f"  club ignores the validators (200, same body): {times['same_body'] * 1000:.1f} ms CPU, "
        f"{ratio:.3f}x json.loads ({times['loads'] * 1000:.1f} ms)"
    )
    print(f"  club answers 304: {times['not_modified'] * 1000:.1f} ms CPU, {ratio_304:.3f}x json.loads")
    return ratio, ratio_304


def main() -> None:
    ref = feed_bytes(reference_rows(10_000, 2_500, seed=1))
    big = feed_bytes(reference_rows(100_000, 25_000, seed=3))
    ratio_ref, loads_ref, parse_ref, _fallback_ref = parse_ratio(ref)
    ratio, loads, parse, fallback = parse_ratio(big)
    print(f"reference feed: {len(ref):,} bytes, 10,000 calls / 2,500 techs / 3 clubs")
    print(f"  parse+validate+group {parse_ref * 1000:.1f} ms vs json.loads {loads_ref * 1000:.1f} ms: {ratio_ref:.2f}x")
    print(f"100,000-call feed: {len(big):,} bytes")
    print(f"  parse+validate+group {parse * 1000:.1f} ms vs json.loads {loads * 1000:.1f} ms: {ratio:.2f}x (<= 1.5)")
    print(
        f"  the reference parser alone (what documents the fast path declines get) {fallback * 1000:.1f} ms: "
        f"{fallback / loads:.2f}x"
    )
    unchanged, unchanged_304 = unchanged_line(100_000, big, 5)

    units = write_units()
    print(f"write units, first publish of the reference feed: {units['first_wru']}")
    print(
        f"write units, one changed reference snapshot: {units['snapshot_wru']} for the versions and the head (target "
        f"<= 100), {units['readers_wru']} more for readers (the index entry and a delta per club)"
    )
    print(f"write units, one item per call for the same feed: {units['per_call_wru']}")
    print(
        f"write units, unchanged poll: {units['unchanged_wru']} for the check mark, "
        f"{units['unchanged_items']} snapshot items written (target: none, <= 1 unit)"
    )

    peak = peak_memory_mb(100_000)
    print(f"peak RSS of a changed 100,000-call poll (fresh process, incl. interpreter, boto3 and moto): {peak:.0f} MB")
    print(
        f"parse_ratio={ratio:.2f} snapshot_wru={units['snapshot_wru']} readers_wru={units['readers_wru']} "
        f"per_call_wru={units['per_call_wru']} "
        f"unchanged_wru={units['unchanged_wru']} peak_mb={peak:.0f} fallback_parse_ratio={fallback / loads:.2f} "
        f"unchanged_cpu_ratio={unchanged:.3f} unchanged_304_cpu_ratio={unchanged_304:.3f}"
    )


def main_rows(rows: int) -> None:
    """The figures at one feed size: parse, snapshot, unchanged poll, peak memory."""
    started = time.monotonic()
    body = feed_bytes(reference_rows(rows, max(1, rows // 4), seed=3))
    print(f"{rows:,}-call feed: {len(body):,} bytes, {max(1, rows // 4):,} techs / {len(CLUB_IDS)} clubs")
    repeats = 15 if rows <= 100_000 else 9
    ratio, loads, parse, _ = parse_ratio(body, repeats, reference=False)
    print(f"  parse+validate+group {parse * 1000:.0f} ms vs json.loads {loads * 1000:.0f} ms: {ratio:.2f}x")
    build, digest = snapshot_seconds(body, 3 if rows > 100_000 else 10)
    print(f"  building and hashing the snapshots {build * 1000:.0f} ms; the body's SHA-256 {digest * 1000:.1f} ms")
    unchanged, unchanged_304 = unchanged_line(rows, body, repeats)
    del body
    peak = peak_memory_mb(rows)
    print(f"peak RSS of a changed {rows:,}-call poll (fresh process, incl. interpreter, boto3 and moto): {peak:.0f} MB")
    print(f"(run time {time.monotonic() - started:.0f} s)")
    print(
        f"rows={rows} parse_ratio={ratio:.2f} unchanged_cpu_ratio={unchanged:.3f} "
        f"unchanged_304_cpu_ratio={unchanged_304:.3f} peak_mb={peak:.0f}"
    )


if __name__ == "__main__":
    if "--changed-poll" in sys.argv:
        at = sys.argv.index("--changed-poll")
        _changed_poll(Path(sys.argv[at + 1]), Path(sys.argv[at + 2]), int(sys.argv[at + 3]))
    elif "--rows" in sys.argv:
        main_rows(int(sys.argv[sys.argv.index("--rows") + 1]))
    else:
        main()
