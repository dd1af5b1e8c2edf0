"""The simulated demo clubs behave like real club endpoints: the project's own feed client fetches them through the
registry and secrets they publish, their feeds parse cleanly, they refuse bad credentials, and they change over time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cappi.adapters.club_client import ClientLimits, ClubFeedClient, FeedFetchError
from cappi.adapters.secrets import StaticSecrets
from cappi.domain.feed import FeedRejected, parse_feed
from cappi.domain.registry import ClubRegistry, ClubSource, parse_registry
from local.demo_clubs import DOCUMENT_HEADERS, ClubFeedServer, ClubSimulator, DemoClubs

LIMITS = ClientLimits(max_attempts=1, deadline=20.0, read_timeout=10.0)


@pytest.fixture(scope="module")
def clubs() -> DemoClubs:
    return DemoClubs()


@pytest.fixture(scope="module")
def server(clubs: DemoClubs) -> Iterator[ClubFeedServer]:
    # Frozen in time, so what one request sees the next one sees too; real-time evolution has its own test.
    with ClubFeedServer(clubs, time_scale=0.0) as running:
        yield running


@pytest.fixture(scope="module")
def registry(clubs: DemoClubs, server: ClubFeedServer) -> ClubRegistry:
    return parse_registry(clubs.registry(server.base_url), "<demo registry>")


@pytest.fixture
def client(clubs: DemoClubs) -> ClubFeedClient:
    return ClubFeedClient(StaticSecrets(clubs.secrets()), LIMITS)


@pytest.fixture(autouse=True)
def _normal_clubs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        running: ClubFeedServer = request.getfixturevalue("server")
        for club in running.clubs:
            club.set_mode("normal")
            club.pin(None)


def control(server: ClubFeedServer, name: str, payload: Any = None) -> requests.Response:
    url = f"{server.base_url}/_control/{name}"
    if payload is None:
        return requests.get(url, timeout=10)
    return requests.post(url, data=json.dumps(payload), timeout=10)


def feed_url(server: ClubFeedServer, name: str) -> str:
    return f"{server.base_url}/{name}/service/calls/status"


# --- the registry and secrets they publish ---


def test_registry_is_a_valid_registry_with_one_source_per_club(registry: ClubRegistry, clubs: DemoClubs) -> None:
    assert [s.name for s in registry.sources] == ["demo-small", "demo-medium", "demo-large"]
    small, medium, large = registry.sources
    assert small.club_ids == {212}
    assert medium.club_ids == {213, 214}
    assert large.club_ids == {300}
    assert (small.auth.type, medium.auth.type, large.auth.type) == ("bearer", "api_key", "oauth2_client_credentials")
    assert medium.auth.header == "X-Api-Key"
    assert large.auth.token_url == large.base_url + "/oauth/token"
    assert dict(small.headers) == DOCUMENT_HEADERS
    assert set(registry.secret_names) == set(clubs.secrets())
    assert all(name.startswith("cappi/local/clubs/") for name in registry.secret_names)
    assert all(s.base_url.startswith("http://127.0.0.1:") for s in registry.sources)


def test_example_query_names_a_tech_with_open_calls(clubs: DemoClubs) -> None:
    club_id, tech_id = clubs.example_query()
    assert (club_id, tech_id) == (212, "DEMO1")
    assert clubs["demo-small"].demo_calls()[club_id]


# --- fetched through the project's real client ---


@pytest.mark.parametrize("name", ["demo-small", "demo-medium", "demo-large"])
def test_every_club_fetches_through_the_real_client_and_parses_cleanly(
    name: str, registry: ClubRegistry, client: ClubFeedClient, clubs: DemoClubs
) -> None:
    source = registry.source(name)
    result = client.fetch(source)
    assert result.status == 200
    parsed = parse_feed(result.body, source.club_ids)
    assert parsed.rejected_total == 0
    assert parsed.warnings == {}
    assert parsed.rows == parsed.accepted == clubs[name].summary()["calls"]
    demo = clubs[name].demo_calls()
    for club_id in source.club_ids:
        assert sorted(parsed.by_club[club_id]["DEMO1"]) == demo[club_id]
        assert len(demo[club_id]) >= 2


def test_sizes_are_tens_thousands_and_over_ten_thousand(clubs: DemoClubs) -> None:
    sizes = {club.name: len(club.open_calls()) for club in clubs}
    assert 10 <= sizes["demo-small"] < 100
    assert 1000 <= sizes["demo-medium"] < 10_000
    assert sizes["demo-large"] > 10_000
    rows = clubs["demo-large"].open_calls()
    assert all(1_000_000 <= call <= 9_999_999 for call, _, _ in rows)
    assert all(tech.isascii() and tech.isalnum() and any(c.isdigit() for c in tech) for _, _, tech in rows)
    assert len({call for call, _, _ in rows}) == len(rows)


def test_large_feed_travels_gzipped(registry: ClubRegistry, client: ClubFeedClient) -> None:
    result = client.fetch(registry.source("demo-large"))
    assert result.bytes_on_wire < len(result.body) / 3


def test_oauth2_token_is_renewed_after_the_club_revokes_it(registry: ClubRegistry, server: ClubFeedServer) -> None:
    source = registry.source("demo-large")
    client = ClubFeedClient(StaticSecrets(server.clubs.secrets()), LIMITS)
    client.fetch(source)
    control(server, "demo-large", {"revoke_tokens": True})
    # The client's cached token now gets a 401; it must fetch a new one and succeed.
    assert client.fetch(source).status == 200


@pytest.mark.parametrize(
    ("name", "code"),
    [("demo-small", "auth_failed"), ("demo-medium", "auth_failed"), ("demo-large", "token_endpoint")],
)
def test_the_real_client_is_refused_with_wrong_secrets(name: str, code: str, registry: ClubRegistry) -> None:
    source = registry.source(name)
    client = ClubFeedClient(StaticSecrets({source.auth.secret: "not-the-secret"}), LIMITS)
    with pytest.raises(FeedFetchError) as caught:
        client.fetch(source)
    assert caught.value.code == code
    assert caught.value.status == 401


# --- credentials checked on the wire ---


def small_headers(clubs: DemoClubs, **changes: str | None) -> dict[str, str]:
    headers = {**DOCUMENT_HEADERS, "Authorization": f"Bearer {clubs.secrets()['cappi/local/clubs/demo-small']}"}
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def test_small_club_wants_the_bearer_token_and_the_documents_headers(server: ClubFeedServer, clubs: DemoClubs) -> None:
    url = feed_url(server, "demo-small")
    ok = requests.get(url, headers=small_headers(clubs), timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json"
    calls = ok.json()["Result"]["Calls"]
    assert set(calls[0]) == {"CallId", "ClubId", "TechId"}
    for headers in (
        small_headers(clubs, Authorization="Bearer wrong"),
        small_headers(clubs, Authorization=None),
        small_headers(clubs, Ident=None),
        small_headers(clubs, Ident="SomeoneElse"),
        small_headers(clubs, User_Agent="curl/8.0"),
    ):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "unauthorized"
        assert "local-demo-small-bearer-token" not in refused.text


def test_medium_club_wants_its_api_key(server: ClubFeedServer, clubs: DemoClubs) -> None:
    url = feed_url(server, "demo-medium")
    key = clubs.secrets()["cappi/local/clubs/demo-medium"]
    assert requests.get(url, headers={"X-Api-Key": key}, timeout=10).status_code == 200
    for headers in ({}, {"X-Api-Key": "wrong"}, {"Authorization": f"Bearer {key}"}):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["message"] == "bad X-Api-Key"


def test_large_club_issues_and_checks_its_own_tokens(server: ClubFeedServer, clubs: DemoClubs) -> None:
    token_url = f"{server.base_url}/demo-large/oauth/token"
    secret = clubs.secrets()["cappi/local/clubs/demo-large"]
    form = {"grant_type": "client_credentials", "client_id": "cappi-local", "client_secret": secret}
    assert requests.post(token_url, data={**form, "client_secret": "x"}, timeout=10).status_code == 401
    assert requests.post(token_url, data={**form, "client_id": "x"}, timeout=10).status_code == 401
    assert requests.post(token_url, data={**form, "grant_type": "password"}, timeout=10).status_code == 400
    issued = requests.post(token_url, data=form, timeout=10)
    assert issued.status_code == 200
    assert issued.headers["Cache-Control"] == "no-store"
    token = issued.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600

    url = feed_url(server, "demo-large")
    assert requests.get(url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).ok
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": f"Bearer {secret}"}):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"


def test_tokens_expire() -> None:
    now = [1000.0]
    club = ClubSimulator(
        "solo", [5], size=10, auth="oauth2_client_credentials", secret="pw", token_lifetime_s=60, clock=lambda: now[0]
    )
    status, token = club.issue_token(b"grant_type=client_credentials&client_id=cappi-local&client_secret=pw", {})
    assert status == 200
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert club.refusal(bearer) is None
    now[0] += 61
    assert club.refusal(bearer) == "unknown or expired access token"


def test_unknown_paths_are_404(server: ClubFeedServer) -> None:
    for path in ("/nope/service/calls/status", "/demo-small/service/calls", "/demo-small/oauth/token", "/"):
        assert requests.get(server.base_url + path, timeout=10).status_code == 404
    assert requests.post(f"{server.base_url}/demo-small/oauth/token", timeout=10).status_code == 404


# --- change over time ---


def snapshot(club: ClubSimulator) -> dict[int, tuple[int, str]]:
    return {call: (club_id, tech) for call, club_id, tech in club.open_calls()}


@pytest.mark.parametrize(("name", "size"), [("demo-small", 40), ("demo-medium", 3000), ("demo-large", 12_000)])
def test_calls_close_open_and_move_while_the_size_and_demo_tech_hold(name: str, size: int) -> None:
    club = DemoClubs(seed=11)[name]
    before = snapshot(club)
    closed = opened = moved = 0
    for _ in range(36):  # six simulated hours, polled every ten minutes
        assert club.advance(600) == 10
        after = snapshot(club)
        closed += len(before.keys() - after.keys())
        opened += len(after.keys() - before.keys())
        moved += sum(1 for call in before.keys() & after.keys() if before[call][1] != after[call][1])
        assert 0.85 * size <= len(after) <= 1.15 * size
        assert all(len(calls) >= 2 for calls in club.demo_calls().values())
        before = after
    # About 2% close, 2% open and 1% move per simulated minute.
    minutes = 36 * 10
    assert 0.015 * size * minutes < closed < 0.025 * size * minutes
    assert 0.015 * size * minutes < opened < 0.025 * size * minutes
    assert 0.006 * size * minutes < moved < 0.014 * size * minutes


def test_the_demo_tech_sees_change_too() -> None:
    club = DemoClubs(seed=3)["demo-small"]
    seen = {tuple(club.demo_calls()[212])}
    for _ in range(12):
        club.advance(600)
        seen.add(tuple(club.demo_calls()[212]))
    assert len(seen) > 3


def test_evolution_is_deterministic_for_a_seed() -> None:
    first, second, other = DemoClubs(seed=5), DemoClubs(seed=5), DemoClubs(seed=6)
    first.advance(1800)
    second.advance(900)
    second.advance(450)
    second.advance(450)
    other.advance(1800)
    for a, b, c in zip(first, second, other, strict=True):
        assert a.feed_body() == b.feed_body()
        assert a.feed_body() != c.feed_body()


def test_less_than_a_step_changes_nothing() -> None:
    club = ClubSimulator("solo", [5], size=30)
    body = club.feed_body()
    assert club.advance(59.9) == 0
    assert club.feed_body() == body
    assert club.advance(0.2) == 1
    assert club.feed_body() != body


def test_server_advances_the_clubs_with_scaled_real_time() -> None:
    now = [500.0]
    clubs = DemoClubs(clubs=[ClubSimulator("solo", [5], size=30)])
    with ClubFeedServer(clubs, time_scale=6.0, clock=lambda: now[0]) as running:
        assert control(running, "solo").json()["simulated_s"] == 0
        now[0] += 25  # 150 simulated seconds: two steps
        state = control(running, "solo").json()
        assert state["simulated_s"] == 150
        assert state["version"] == 1


# --- control endpoints ---


def test_control_summary(server: ClubFeedServer, clubs: DemoClubs) -> None:
    state = control(server, "demo-medium").json()
    assert state["name"] == "demo-medium"
    assert state["mode"] == "normal"
    assert state["pinned"] is False
    assert state["calls"] == len(clubs["demo-medium"].open_calls())
    assert state["demo_tech"] == "DEMO1"
    assert set(state["demo_calls"]) == {"213", "214"}
    assert all(state["demo_calls"].values())
    everything = requests.get(f"{server.base_url}/_control", timeout=10).json()
    assert [c["name"] for c in everything["clubs"]] == ["demo-small", "demo-medium", "demo-large"]
    assert control(server, "nope").status_code == 404


def test_down_mode_is_a_503(server: ClubFeedServer, registry: ClubRegistry, client: ClubFeedClient) -> None:
    assert control(server, "demo-small", {"mode": "down"}).json()["mode"] == "down"
    with pytest.raises(FeedFetchError) as caught:
        client.fetch(registry.source("demo-small"))
    assert (caught.value.code, caught.value.status) == ("http_status", 503)


@pytest.mark.parametrize("mode", ["garbage", "html"])
def test_garbage_and_html_are_200s_that_do_not_parse(
    mode: str, server: ClubFeedServer, registry: ClubRegistry, client: ClubFeedClient
) -> None:
    control(server, "demo-medium", {"mode": mode})
    source = registry.source("demo-medium")
    result = client.fetch(source)
    assert result.status == 200
    assert result.content_type.startswith("text/html" if mode == "html" else "application/json")
    with pytest.raises(FeedRejected):
        parse_feed(result.body, source.club_ids)


def test_slow_mode_delays_a_good_answer(server: ClubFeedServer, registry: ClubRegistry, client: ClubFeedClient) -> None:
    control(server, "demo-small", {"mode": "slow", "delay": 0.5})
    started = time.monotonic()
    result = client.fetch(registry.source("demo-small"))
    assert time.monotonic() - started >= 0.5
    assert parse_feed(result.body, {212}).accepted > 0


def test_pinned_calls_are_served_exactly_until_released(
    server: ClubFeedServer, registry: ClubRegistry, client: ClubFeedClient
) -> None:
    source = registry.source("demo-medium")
    simulated = client.fetch(source).body
    rows = [[1234567, 213, "DEMO1"], [7654321, 214, "AB1234"], [8655, 214, "demo1"]]
    state = control(server, "demo-medium", {"calls": rows}).json()
    assert state["pinned"] is True
    assert state["calls"] == 3
    assert state["demo_calls"] == {"213": [1234567], "214": [8655]}
    body = client.fetch(source).body
    assert json.loads(body) == {
        "Result": {"Calls": [{"CallId": c, "ClubId": k, "TechId": t} for c, k, t in rows]},
    }
    assert parse_feed(body, source.club_ids).by_club == {
        213: {"DEMO1": {1234567}},
        214: {"AB1234": {7654321}, "DEMO1": {8655}},
    }
    assert control(server, "demo-medium", {"calls": []}).json()["calls"] == 0
    assert control(server, "demo-medium", {"calls": None}).json()["pinned"] is False
    assert client.fetch(source).body == simulated


def test_control_advance_moves_simulated_time(server: ClubFeedServer) -> None:
    before = control(server, "demo-small").json()
    after = control(server, "demo-small", {"advance": 600}).json()
    assert after["simulated_s"] >= before["simulated_s"] + 600
    assert after["version"] > before["version"]


@pytest.mark.parametrize(
    "payload",
    [
        {"mode": "sideways"},
        {"mode": "slow", "delay": -1},
        {"mode": "slow", "delay": "1"},
        {"calls": [[1, 213]]},
        {"calls": [[1, "213", "AB1"]]},
        {"calls": "all"},
        {"advance": True},
        {"revoke_tokens": "yes"},
        {"colour": "red"},
        [1],
    ],
)
def test_bad_control_requests_are_400_and_change_nothing(server: ClubFeedServer, payload: Any) -> None:
    before = control(server, "demo-medium").json()
    answer = control(server, "demo-medium", payload)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    after = control(server, "demo-medium").json()
    assert (after["mode"], after["pinned"], after["version"]) == (before["mode"], before["pinned"], before["version"])
    assert requests.post(f"{server.base_url}/_control/demo-medium", data=b"{", timeout=10).status_code == 400


# --- the server itself ---


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ClubFeedServer(DemoClubs(clubs=[ClubSimulator("solo", [5], size=3)]), host="0.0.0.0")


def test_stop_stops_even_a_slow_response() -> None:
    clubs = DemoClubs(clubs=[ClubSimulator("solo", [5], size=3)])
    running = ClubFeedServer(clubs).start()
    clubs["solo"].set_mode("slow", 60)
    url = f"{running.base_url}/solo/service/calls/status"
    session = requests.Session()
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(session.get(url, timeout=30).status_code))
    waiting.start()
    time.sleep(0.2)  # the request is now held by the slow mode
    started = time.monotonic()
    running.stop()
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert time.monotonic() - started < 5
    assert answers == [200]  # woken early, it still answers the request it held
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=5)  # whether over the kept-alive connection or a new one


def test_registry_sources_parse_for_every_auth_type() -> None:
    clubs = DemoClubs(
        clubs=[
            ClubSimulator("a-none", [1], size=3),
            ClubSimulator("b-basic", [2], size=3, auth="basic", secret="user:pw"),
        ]
    )
    sources = parse_registry(clubs.registry("http://127.0.0.1:9")).sources
    assert [s.auth.type for s in sources] == ["none", "basic"]
    assert clubs.secrets() == {"cappi/local/clubs/b-basic": "user:pw"}
    assert isinstance(sources[0], ClubSource)
    basic = clubs["b-basic"]
    assert basic.refusal({"Authorization": "Basic dXNlcjpwdw=="}) is None
    assert basic.refusal({"Authorization": "Basic dXNlcjp4"}) == "bad credentials"


def test_a_demo_club_answers_304_to_its_etag_until_its_list_changes(
    registry: ClubRegistry, client: ClubFeedClient, server: ClubFeedServer
) -> None:
    source = registry.source("demo-large")
    first = client.fetch(source)
    assert first.status == 200 and first.etag
    again = client.fetch(source, validators=first)
    assert (again.status, again.not_modified, again.body, again.etag) == (304, True, b"", first.etag)
    plain = client.fetch(source)  # nothing sent back: the whole list again
    assert plain.status == 200 and plain.body == first.body

    pinned = [[1234567, sorted(source.club_ids)[0], "DEMO1"]]
    assert control(server, "demo-large", {"calls": pinned}).status_code == 200
    changed = client.fetch(source, validators=first)
    assert changed.status == 200 and changed.body != first.body and changed.etag != first.etag
