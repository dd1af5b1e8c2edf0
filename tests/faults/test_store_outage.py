"""The snapshot store disappearing and coming back, with DynamoDB served by moto's server on a loopback port.

Ingest: a poll while the store is unreachable fails fast with a storage error (Lambda's retries take over), keeps
what was published, and the next poll after the store returns publishes by itself in the same container. Query:
meanwhile readers get 503 `{"error": "unavailable"}` with a Retry-After, never a 500; afterwards 200 again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from support.aws import REGION, SNAPSHOT_TABLE
from support.clock import Clock
from support.club_servers import LoopbackServer, closed_port, respond, serve
from support.query_support import ALPHA_212, FETCHED_AT_MS, REGISTRY, ROUTE, SETTINGS, Allow
from support.stores import Stores, stores

from cappi.adapters.club_client import ClubFeedClient
from cappi.adapters.dynamo.client import retry_config
from cappi.adapters.dynamo.schema import create_table
from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.adapters.secrets import StaticSecrets
from cappi.adapters.snapshot_reader import CachedSnapshotReader, SnapshotReader
from cappi.domain.publish import publish_source
from cappi.domain.registry import parse_registry
from cappi.domain.snapshot import build_club_snapshot
from cappi.handlers import ingest, query
from local.http_api import HttpApi, HttpRequest, HttpResponse, Route

FEED = "/service/calls/status"
SOURCE = "outage-club"
# Botocore's defaults (3 attempts, 60 s timeouts) would make each failed call take long; a test needs seconds.
FAST_FAIL = Config(retries=retry_config(2), connect_timeout=0.5, read_timeout=2.0)


def feed(*calls: int) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubId": 212, "TechId": "AB12"} for c in calls]}}).encode()


class Dynamo:
    """moto's DynamoDB on a fixed loopback port that can go away (socket closed: connections are refused) and
    come back on the same port with its tables, as a store outage looks to a client."""

    def __init__(self) -> None:
        self.port = closed_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.stop()
        if self._server._server is not None:  # stop() leaves the socket listening: close it, or clients hang
            self._server._server.server_close()
        self._server = None

    def client(self) -> Any:
        return boto3.client("dynamodb", endpoint_url=self.endpoint, region_name=REGION, config=FAST_FAIL)


@pytest.fixture
def dynamo() -> Iterator[Dynamo]:
    server = Dynamo()
    server.start()
    create_table(server.client(), SNAPSHOT_TABLE)
    yield server
    if server._server is not None:
        server.client().delete_table(TableName=SNAPSHOT_TABLE)
        server.stop()


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        server.route(FEED, respond(body=feed(8679, 9999)))
        yield server


@dataclass
class Ingest:
    run: Callable[[], dict[str, Any]]
    store: Stores

    def served(self) -> tuple[str, ...]:
        return SnapshotReader(self.store.snapshots, {212: SOURCE}).open_calls(212, "AB12").call_ids


@pytest.fixture
def ingest_lambda(dynamo: Dynamo, club: LoopbackServer, lambda_context: Any) -> Ingest:
    registry = parse_registry({"sources": [{"name": SOURCE, "club_ids": [212], "base_url": club.base_url}]})
    store = stores(dynamo.client(), SNAPSHOT_TABLE, sleep=lambda _s: None, max_attempts=2)
    deps = ingest.IngestDependencies(registry, ClubFeedClient(StaticSecrets({})), store.writer, poll_log=store.polls)
    handler = ingest.make_handler(lambda: deps)  # one container: its dependencies are built once and kept

    def run() -> dict[str, Any]:
        return handler({"source": SOURCE, "scheduled_time": "2026-11-27T21:00:00Z"}, lambda_context)

    return Ingest(run, store)


def test_a_poll_during_a_store_outage_fails_fast_and_the_next_one_after_it_publishes_by_itself(
    dynamo: Dynamo, club: LoopbackServer, ingest_lambda: Ingest
) -> None:
    assert ingest_lambda.run()["status"] == "ok"
    assert ingest_lambda.served() == ("8679", "9999")

    dynamo.stop()
    club.route(FEED, respond(body=feed(8679, 1234)))  # the club moves on meanwhile
    started = time.monotonic()
    with pytest.raises(SnapshotStoreError) as caught:
        ingest_lambda.run()  # our fault, not the club's: raised, so Lambda's retries and on-failure destination apply
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert SNAPSHOT_TABLE in message and "failed" in message  # says which store, and that it failed
    assert "AB12" not in message and "1234" not in message  # names no feed content

    dynamo.start()
    result = ingest_lambda.run()  # the same container: no restart, no operator
    assert result["status"] == "ok"
    assert [c["outcome"] for c in result["clubs"]] == ["published"]
    assert ingest_lambda.served() == ("1234", "8679")
    recorded = ingest_lambda.store.polls.last_poll(SOURCE)
    assert recorded is not None
    assert recorded.status == "ok"


def test_what_was_published_before_the_outage_survives_it(
    dynamo: Dynamo, club: LoopbackServer, ingest_lambda: Ingest
) -> None:
    ingest_lambda.run()
    dynamo.stop()
    for _ in range(3):  # every tick of the outage
        with pytest.raises(SnapshotStoreError):
            ingest_lambda.run()
    dynamo.start()
    assert ingest_lambda.served() == ("8679", "9999")  # read before any new poll: nothing was lost or half-written


def test_a_rejected_feed_during_the_outage_still_fails_as_the_stores_fault(
    dynamo: Dynamo, club: LoopbackServer, ingest_lambda: Ingest
) -> None:
    ingest_lambda.run()
    dynamo.stop()
    club.route(FEED, respond(body=b'{"Result": {"Calls": [NaN]}}'))
    with pytest.raises(SnapshotStoreError):
        ingest_lambda.run()  # recording the rejection needs the store too
    dynamo.start()
    assert ingest_lambda.run()["error_code"] == "not_json"
    assert ingest_lambda.served() == ("8679", "9999")


# --- the query Lambda ---


@dataclass
class QueryApi:
    api: HttpApi
    clock: Clock

    def get(self, path: str = "/api/CallData/OpenCalls/212/AB12/ids") -> HttpResponse:
        return self.api.handle(HttpRequest("GET", path, [("Authorization", "Bearer test")]))


def query_container(dynamo: Dynamo) -> QueryApi:
    """A fresh query Lambda container (cold: nothing cached) reading the store through a fast-failing client."""
    clock = Clock()
    store = stores(dynamo.client(), SNAPSHOT_TABLE)
    reader = CachedSnapshotReader(
        store.snapshots,
        REGISTRY.sources_by_club,
        polls=store.polls,
        pointer_max_age=SETTINGS.pointer_max_age_s,
        clock=clock,
    )
    handler = query.make_handler(lambda: query.QueryDependencies(SETTINGS, reader, REGISTRY.club_ids))
    return QueryApi(HttpApi([Route("GET", ROUTE, handler, Allow())]), clock)


@pytest.fixture
def published(dynamo: Dynamo) -> None:
    store = stores(dynamo.client(), SNAPSHOT_TABLE)
    publish_source(
        store.writer, "alpha", [build_club_snapshot(212, ALPHA_212), build_club_snapshot(4, {})], FETCHED_AT_MS
    )


def assert_unavailable(response: HttpResponse) -> None:
    assert response.status == 503
    assert response.json()["error"] == "unavailable"
    assert response.json()["message"]
    assert response.header("Retry-After") == "5"
    assert (response.header("content-type") or "").startswith("application/json")


def test_a_cold_query_container_answers_503_with_retry_after_during_the_outage_and_200_after(
    dynamo: Dynamo, published: None
) -> None:
    dynamo.stop()
    container = query_container(dynamo)
    started = time.monotonic()
    assert_unavailable(container.get())
    assert time.monotonic() - started < 10

    dynamo.start()
    response = container.get()  # the same container recovers by itself
    assert response.status == 200
    assert response.json() == ["8655R", "8679", "9999"]


def test_a_warm_query_container_never_answers_500_while_the_store_is_away(dynamo: Dynamo, published: None) -> None:
    container = query_container(dynamo)
    assert container.get().status == 200
    dynamo.stop()
    container.clock.advance(SETTINGS.pointer_max_age_s + 1)  # its cached heads are due for a refresh
    during = [container.get(), container.get("/api/CallData/OpenCalls/4/XY99/ids")]
    for response in during:
        if response.status != 200:  # a list it holds may still be served; anything else is the 503
            assert_unavailable(response)
    dynamo.start()
    container.clock.advance(SETTINGS.pointer_max_age_s + 1)
    assert container.get().status == 200
