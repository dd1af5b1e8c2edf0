"""Shared set-up for query API tests: a moto-backed store with published snapshots, and the emulated HTTP API."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from moto import mock_aws

from cappi.adapters.snapshot_reader import CachedSnapshotReader
from cappi.contracts import api
from cappi.domain.publish import publish_source
from cappi.domain.registry import parse_registry
from cappi.domain.snapshot import build_club_snapshot
from cappi.handlers import query
from cappi.settings import QuerySettings
from local.http_api import AuthorizerDecision, HttpApi, HttpRequest, HttpResponse, Route
from support.aws import SNAPSHOT_TABLE, snapshot_table
from support.clock import Clock
from support.stores import Stores, stores

TABLE = SNAPSHOT_TABLE
ROUTE = api.ROUTE
REGISTRY = parse_registry(
    {
        "sources": [
            {"name": "alpha", "club_ids": [212, 4], "base_url": "https://alpha.example"},
            {"name": "beta", "club_ids": [300], "base_url": "https://beta.example"},
        ]
    }
)
# What club "alpha" published: TechId (canonical) -> call IDs.
ALPHA_212 = {"AB12": [8679, 9999, "8655R"], "CD34": [1234567], "EF56": [42]}
ALPHA_4 = {"XY99": [7, 8]}
FETCHED_AT_MS = 1_795_000_000_000
SETTINGS = QuerySettings(
    table_name=TABLE,
    clubs_file="<test>",
    required_scope="read:callids",
    club_claim="https://cappi.clubassist.com/clubs",
    require_club_claim=False,
    nested_single_result=False,
    pointer_max_age_s=10.0,
    cache_max_age_s=30,
)
DEFAULT_CLAIMS = {
    "iss": "https://stage-clubassist.auth0.com/",
    "sub": "demo-client@clients",
    "azp": "demo-client",
    "aud": "https://stagecappi.clubassist.com",
    "scope": "read:callids",
    "iat": "1795000000",
    "exp": "1795086400",
}


@dataclass
class Allow:
    """An authorizer that lets every request through with fixed claims (Lambda-level tests)."""

    claims: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLAIMS))

    def authorize(self, _header: str | None) -> AuthorizerDecision:
        return AuthorizerDecision(True, 200, "ok", claims=dict(self.claims))


@dataclass
class QueryApi:
    api: HttpApi
    store: Stores
    reader: CachedSnapshotReader
    clock: Clock

    def get(self, path: str, headers: list[tuple[str, str]] | None = None, method: str = "GET") -> HttpResponse:
        return self.api.handle(HttpRequest(method, path, headers or [("Authorization", "Bearer test")]))


@contextmanager
def query_api(authorizer: Any = None, **settings: Any) -> Iterator[QueryApi]:
    with mock_aws():
        client = snapshot_table()
        store = stores(client, TABLE)
        snapshots = [build_club_snapshot(212, ALPHA_212), build_club_snapshot(4, ALPHA_4)]
        publish_source(store.writer, "alpha", snapshots, FETCHED_AT_MS)
        clock = Clock()
        stage = replace(SETTINGS, **settings)
        reader = CachedSnapshotReader(
            store.snapshots,
            REGISTRY.sources_by_club,
            polls=store.polls,
            pointer_max_age=stage.pointer_max_age_s,
            clock=clock,
        )
        handler = query.make_handler(lambda: query.QueryDependencies(stage, reader, REGISTRY.club_ids))
        route = Route("GET", ROUTE, handler, authorizer if authorizer is not None else Allow())
        yield QueryApi(HttpApi([route]), store, reader, clock)
