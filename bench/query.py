"""Query benchmark: warm handler latency against a bare GetItem, DynamoDB requests per 1,000 queries, staleness
after a pointer flip, cold import cost, and token verification time.

Runs the real query handler (behind the API Gateway emulator's event shape) against a moto-backed store that holds
the ingest benchmark's reference snapshot. Ratios are measured in this one run (these machines are noisy).

    python bench/query.py             # last line: name=value pairs
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CAPPI")

import ingest as ingest_bench  # noqa: E402  (the reference feed lives there)

TABLE = "cappi-bench-query"
QUERIES = 10_000
POINTER_MAX_AGE_S = 10.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cold_import_ratio(runs: int = 7) -> tuple[float, float, float]:
    """Fresh interpreters, interleaved: our cold path (import the handler, wire it: registry, boto3 client) against
    importing boto3 and creating a DynamoDB client. Best of `runs` each."""
    env = {
        **os.environ,
        "CAPPI_TABLE_NAME": TABLE,
        "CAPPI_CLUBS_FILE": str(ROOT / "clubs" / "stage.json"),
        # As in Lambda, where the asset's root (/var/task) is on sys.path: found by the path finder, not through
        # the development venv's editable-install hook, which is slower per module.
        "PYTHONPATH": str(ROOT / "functions"),
    }
    ours = (
        "import time; t = time.perf_counter(); import cappi.handlers.query as q; q.QueryDependencies.from_env(); "
        "print(time.perf_counter() - t)"
    )
    base = (
        "import time; t = time.perf_counter(); import boto3; boto3.client('dynamodb'); print(time.perf_counter() - t)"
    )

    def once(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    ours_times, base_times = [], []
    for _ in range(runs):
        base_times.append(once(base))
        ours_times.append(once(ours))
    return min(ours_times) / min(base_times), min(ours_times), min(base_times)


def verify_us(runs: int = 3_000) -> float:
    """Median time of one JWT authorizer check (RS256 signature, claims, scope) with a warm key cache."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer

    issuer, audience = "https://stage-clubassist.auth0.com/", "https://stagecappi.clubassist.com"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}
    jwks = JwksCache(issuer + ".well-known/jwks.json", fetch=lambda _uri: json.dumps({"keys": [jwk]}).encode())
    authorizer = JwtAuthorizer(AuthorizerConfig(issuer, audience, ("read:callids",)), jwks)
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": "b@clients", "scope": "read:callids", "iat": now, "exp": now + 600}
    header = "Bearer " + jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    assert authorizer.authorize(header).allowed
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        authorizer.authorize(header)
        times.append(time.perf_counter() - started)
    assert jwks.fetches == 1
    return statistics.median(times) * 1e6


def main() -> None:
    import boto3
    from moto import mock_aws

    from cappi.adapters.dynamo.schema import create_table
    from cappi.adapters.dynamo.store import DynamoSnapshotStore
    from cappi.adapters.snapshot_reader import CachedSnapshotReader
    from cappi.contracts import api as api_contract
    from cappi.domain.feed import parse_feed
    from cappi.domain.publish import publish_source
    from cappi.domain.registry import parse_registry
    from cappi.domain.snapshot import build_club_snapshot
    from cappi.handlers import query
    from cappi.settings import QuerySettings
    from local.http_api import HttpApi, HttpRequest, LambdaContext, Route

    rows = ingest_bench.reference_rows(10_000, 2_500, seed=1)
    parsed = parse_feed(ingest_bench.feed_bytes(rows), ingest_bench.CLUB_IDS)
    registry = parse_registry(
        {"sources": [{"name": "bench-club", "club_ids": list(ingest_bench.CLUB_IDS), "base_url": "https://x.org"}]}
    )
    settings = QuerySettings(
        table_name=TABLE,
        clubs_file="<bench>",
        required_scope=api_contract.SCOPE,
        club_claim=api_contract.CLUB_CLAIM,
        require_club_claim=False,
        nested_single_result=False,
        pointer_max_age_s=POINTER_MAX_AGE_S,
        cache_max_age_s=30,
    )
    claims = {"sub": "bench@clients", "azp": "bench", "scope": "read:callids"}

    class Allow:
        def authorize(self, _header: str | None) -> object:
            return type("D", (), {"allowed": True, "claims": claims, "scopes": ["read:callids"]})()

    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        store = DynamoSnapshotStore(client, TABLE)
        fetched_at = int(time.time() * 1000)
        snapshots = [build_club_snapshot(c, parsed.by_club[c]) for c in ingest_bench.CLUB_IDS]
        publish_source(store, "bench-club", snapshots, fetched_at)
        reader = CachedSnapshotReader(store, registry.sources_by_club, pointer_max_age=POINTER_MAX_AGE_S)
        handler = query.make_handler(lambda: query.QueryDependencies(settings, reader, registry.club_ids))
        api = HttpApi([Route("GET", api_contract.ROUTE, handler, Allow())])

        targets = [(s.club_id, tech) for s in snapshots for tech in s.techs]
        # Events are built up front: the figure is the handler's time, not the emulator's.
        events = []
        for index in range(QUERIES):
            club_id, tech = targets[(index * 7919) % len(targets)]
            request = HttpRequest("GET", api_contract.path_for(club_id, tech), [("Authorization", "x")])
            route = api.routes[0]
            params = route.match("GET", request.target)
            events.append(
                api.event(
                    route,
                    params,
                    request,
                    raw_path=request.target,
                    query="",
                    request_id=f"bench-{index}",
                    authorizer={"jwt": {"claims": claims, "scopes": ["read:callids"]}},
                )
            )
        context = LambdaContext(function_name="cappi-bench-query", aws_request_id="bench")
        sink = io.StringIO()
        handler_stream = query.logger.registered_handler.setStream(sink)
        handler_times: list[float] = []
        expected = {(s.club_id, t): list(c) for s in snapshots for t, c in s.techs.items()}
        with contextlib.redirect_stdout(sink):
            handler(events[0], context)  # warm the container: first pointer and shard reads
            before = store.requests
            for index, event in enumerate(events):
                started = time.perf_counter()
                response = handler(event, context)
                handler_times.append(time.perf_counter() - started)
                if index % 997 == 0:
                    club_id, tech = targets[(index * 7919) % len(targets)]
                    assert json.loads(response["body"]) == expected[(club_id, tech)], response
                sink.seek(0)
                sink.truncate()
            ddb_requests = store.requests - before
        item_key = {"pk": {"S": "SOURCE#bench-club"}, "sk": {"S": "HEAD"}}
        getitem_times = []
        for _ in range(2_000):
            started = time.perf_counter()
            client.get_item(TableName=TABLE, Key=item_key)
            getitem_times.append(time.perf_counter() - started)

        # Staleness: publish a version in which the probed tech has other calls; time until the handler serves it.
        probe = events[0]
        probe_club, probe_tech = int(probe["pathParameters"]["ClubId"]), probe["pathParameters"]["TechId"].upper()
        new_snapshots = [
            build_club_snapshot(s.club_id, {**s.techs, probe_tech: ("1",)}) if s.club_id == probe_club else s
            for s in snapshots
        ]
        staleness = None
        with contextlib.redirect_stdout(sink):
            # Worst case: flip right after the warm container has (re)loaded the head, so the new version waits
            # out the whole cache age. Wait for that reload by watching the reader's own count of head reads.
            reads = reader.stats.pointer_reads
            while reader.stats.pointer_reads == reads:
                handler(probe, context)
                time.sleep(0.01)
            flipped_at = time.monotonic()
            publish_source(store, "bench-club", new_snapshots, int(time.time() * 1000) + 1)
            while time.monotonic() - flipped_at < POINTER_MAX_AGE_S * 3:
                if json.loads(handler(probe, context)["body"]) == ["1"]:
                    staleness = time.monotonic() - flipped_at
                    break
                time.sleep(0.05)
        query.logger.registered_handler.setStream(handler_stream)

    p50, p99 = percentile(handler_times, 0.5), percentile(handler_times, 0.99)
    getitem_p50 = statistics.median(getitem_times)
    per_1000 = ddb_requests / (QUERIES / 1000)
    cold_ratio, cold_ours, cold_base = cold_import_ratio()
    verify = verify_us()
    print(f"reference snapshot: {sum(s.call_count for s in snapshots):,} calls, {len(targets):,} techs, 3 clubs")
    print(f"warm handler p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us; GetItem (moto) {getitem_p50 * 1e6:.0f} us")
    print(f"  p50 ratio {p50 / getitem_p50:.2f} (target <= 1.5), p99 ratio {p99 / getitem_p50:.2f}")
    print(f"DynamoDB requests: {ddb_requests} over {QUERIES:,} warm queries = {per_1000:.2f} per 1,000 (target < 50)")
    measured = "not seen" if staleness is None else f"{staleness:.1f} s"
    staleness_text = "not_seen" if staleness is None else f"{staleness:.1f}"
    print(
        f"new version served {measured} after a flip just after a head reload (the worst case); "
        f"cache age {POINTER_MAX_AGE_S:.0f} s, target <= 30 s"
    )
    print(f"cold (import+wire) {cold_ours * 1000:.0f} ms vs boto3+client {cold_base * 1000:.0f} ms: {cold_ratio:.2f}")
    print(f"token verification with a warm key cache: {verify:.0f} us per request")
    print(
        f"p50_ratio={p50 / getitem_p50:.2f} p99_ratio={p99 / getitem_p50:.2f} ddb_requests_per_1000={per_1000:.2f} "
        f"max_staleness_s={staleness_text} cold_import_ratio={cold_ratio:.2f} verify_us={verify:.0f}"
    )


if __name__ == "__main__":
    main()
