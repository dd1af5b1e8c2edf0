"""An unchanged poll skips the parse, and decides exactly what parsing would have decided.

Two worlds poll the same club, step by step, through the real club client over loopback HTTP into DynamoDB on
moto: one parses every body (`shortcut=False`), the other takes the head's body record (same body hash, or a 304 to
the validators it sends). After every step their heads, outcomes, counts and last-poll records must be equal, and
the shortcut must have been taken exactly where it is safe.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from support.club_servers import Handler, LoopbackServer, respond, serve
from support.stores import Stores, stores

from cappi.adapters.club_client import ClientLimits, ClubFeedClient
from cappi.adapters.dynamo.schema import create_table
from cappi.adapters.secrets import StaticSecrets
from cappi.domain.last_poll import last_poll_of
from cappi.domain.poll import PollResult, poll_source
from cappi.domain.registry import ClubSource

FEED = "/service/calls/status"
HOUR_MS = 3600 * 1000
T0_MS = 1_790_000_000_000


def feed(rows: list[tuple[Any, Any, Any]]) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": c, "ClubId": k, "TechId": t} for c, k, t in rows]}}).encode()


# 212 has 120 calls (the drop guard watches it), 213 a few; 214 is not registered at first (club_not_owned); one row
# has a bad TechId; one CallId is quoted (a warning). 4 of 132 rows rejected: under the 5% tolerated.
BIG = (
    [(1_000_000 + n, 212, f"T{n % 30}") for n in range(120)]
    + [(2_000_000 + n, 213, "U1") for n in range(6)]
    + [("3000001", 213, "U2")]
    + [(4_000_000 + n, 214, "V1") for n in range(3)]
    + [(5_000_000, 212, "bad/tech"), (5_000_001, 213, "U1")]
)
# 212 drops to 5 calls (held back, then confirmed); 3 of 74 rows (214's) are not owned while 214 is not registered.
DROPPED_OK = (
    [(1_000_000 + n, 212, "T1") for n in range(5)]
    + [(2_000_000 + n, 213, "U1") for n in range(6)]
    + [(4_000_000 + n, 214, "V1") for n in range(3)]
    + [(6_000_000 + n, 213, f"W{n}") for n in range(60)]
)
TOO_BROKEN = [(n, 212, "bad/tech") for n in range(20)] + [(1, 212, "ok")]


class Club:
    """A club on loopback serving `body`, with an ETag and a Last-Modified; `honours` answers 304 to them."""

    def __init__(self, server: LoopbackServer, *, honours: bool) -> None:
        self.honours = honours
        self.body = b""
        self.modified = ""
        self.lock = threading.Lock()
        server.route(FEED, self.respond)
        self.server = server

    def serve(self, body: bytes, at_ms: int) -> None:
        with self.lock:
            if body != self.body:
                self.body = body
                self.modified = email.utils.formatdate(at_ms / 1000, usegmt=True)

    def respond(self, h: Handler) -> None:
        with self.lock:
            body, modified = self.body, self.modified
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        headers = {"ETag": etag, "Last-Modified": modified}
        asked = {k.lower(): v for k, v in h.headers.items()}
        if self.honours and (asked.get("if-none-match") == etag or asked.get("if-modified-since") == modified):
            respond(304, b"", headers, content_type=None)(h)
        else:
            respond(200, body, headers)(h)


class World:
    """One table and one club client polling the club, with or without the shortcut."""

    def __init__(self, client: Any, table: str, *, shortcut: bool, clock: list[int]) -> None:
        create_table(client, table)
        self.stores: Stores = stores(client, table)
        self.shortcut = shortcut
        self.clock = clock
        self.fetcher = ClubFeedClient(
            StaticSecrets({}), ClientLimits(deadline=10), wall_clock=lambda: self.clock[0] / 1000
        )

    def poll(self, source: ClubSource) -> PollResult:
        return poll_source(
            source, self.fetcher, self.stores.writer, clock=lambda: self.clock[0] / 1000, shortcut=self.shortcut
        )


def decided(result: PollResult) -> dict[str, Any]:
    """Everything a poll decides and reports, but timings, the bytes received and how it got there."""
    fields = result.log_fields()
    for name in ("fetch_ms", "body_bytes", "unchanged_by"):
        fields.pop(name)
    record = dataclasses.replace(last_poll_of(result), duration_s=0.0)
    return {
        "fields": fields,
        "clubs": result.clubs,
        "counts": (result.rows, result.accepted, result.duplicates, result.error_code),
        "record": record,
        "first_examples": {r: kept[:1] for r, kept in result.examples.items()},
    }


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve() as loopback:
        yield loopback


@pytest.mark.parametrize("honours", [True, False], ids=["club-honours-validators", "club-ignores-validators"])
def test_both_paths_decide_alike(server: LoopbackServer, dynamodb: Any, honours: bool) -> None:
    club = Club(server, honours=honours)
    clock = [T0_MS]
    parsing = World(dynamodb, "parse-every-body", shortcut=False, clock=clock)
    skipping = World(dynamodb, "skip-unchanged", shortcut=True, clock=clock)
    two_clubs = ClubSource(name="aaa", club_ids=frozenset({212, 213}), base_url=server.base_url)
    three_clubs = dataclasses.replace(two_clubs, club_ids=frozenset({212, 213, 214}))
    unchanged = "304" if honours else "same_body"
    steps: list[tuple[str, bytes, ClubSource, int, str | None]] = [
        # (what, body, registry entry, minutes since the last step, how the skipping world gets its answer)
        ("first poll", feed(BIG), two_clubs, 0, None),
        ("unchanged", feed(BIG), two_clubs, 10, unchanged),
        ("unchanged again, rejected rows kept", feed(BIG), two_clubs, 10, unchanged),
        ("too many rejected", feed(TOO_BROKEN), two_clubs, 10, None),
        ("back to the published body", feed(BIG), two_clubs, 10, unchanged),
        ("a sudden drop is held", feed(DROPPED_OK), two_clubs, 10, None),
        ("the held drop is confirmed by a parse", feed(DROPPED_OK), two_clubs, 10, None),
        ("confirmed, then unchanged", feed(DROPPED_OK), two_clubs, 10, unchanged),
        ("club 214 registered: parse", feed(DROPPED_OK), three_clubs, 10, None),
        ("unchanged with three clubs", feed(DROPPED_OK), three_clubs, 10, unchanged),
        ("40 hours on: versions renewed", feed(DROPPED_OK), three_clubs, 40 * 60, unchanged),
        ("club 214 removed again: parse", feed(DROPPED_OK), two_clubs, 10, None),
    ]
    for what, body, source, minutes, expected in steps:
        clock[0] += minutes * 60 * 1000
        club.serve(body, clock[0])
        full = parsing.poll(source)
        short = skipping.poll(source)
        assert full.unchanged_by is None, what
        assert short.unchanged_by == expected, what
        assert decided(short) == decided(full), what
        assert skipping.stores.writer.head("aaa") == parsing.stores.writer.head("aaa"), what

    assert [c.outcome.value for c in short.clubs] == ["unchanged", "unchanged"]
    assert short.rejected == {"club_not_owned": 3}  # 214's rows are owned no more: rejected again, counted alike
    sent = [r.headers.get("if-none-match") for r in club.server.requests_to(FEED)]
    assert any(sent)  # the skipping world asked conditionally


def test_a_head_with_a_held_drop_is_never_skipped(server: LoopbackServer, dynamodb: Any) -> None:
    club = Club(server, honours=True)
    clock = [T0_MS]
    world = World(dynamodb, "held", shortcut=True, clock=clock)
    source = ClubSource(name="aaa", club_ids=frozenset({212, 213}), base_url=server.base_url)
    club.serve(feed(BIG), clock[0])
    world.poll(source)
    clock[0] += 600_000
    club.serve(feed(DROPPED_OK), clock[0])
    held = world.poll(source)
    assert [c.outcome.value for c in held.clubs] == ["held", "published"]
    head = world.stores.writer.head("aaa")
    assert head is not None and head.body is None  # nothing to compare the next body with: it is parsed

    before = len(club.server.requests_to(FEED))
    clock[0] += 600_000
    confirmed = world.poll(source)
    (asked,) = club.server.requests_to(FEED)[before:]
    assert "if-none-match" not in asked.headers and "if-modified-since" not in asked.headers
    assert confirmed.unchanged_by is None
    assert [c.outcome.value for c in confirmed.clubs] == ["published", "unchanged"]


def test_an_unchanged_poll_writes_only_the_head(server: LoopbackServer, dynamodb: Any) -> None:
    club = Club(server, honours=False)
    clock = [T0_MS]
    world = World(dynamodb, "units", shortcut=True, clock=clock)
    source = ClubSource(name="aaa", club_ids=frozenset({212, 213}), base_url=server.base_url)
    club.serve(feed(BIG), clock[0])
    world.poll(source)
    clock[0] += 600_000
    again = world.poll(source)
    assert again.unchanged_by == "same_body"
    assert again.write_units == 1
    assert [c.outcome.value for c in again.clubs] == ["unchanged", "unchanged"]


def test_a_304_nobody_asked_for_is_a_failed_poll(server: LoopbackServer, dynamodb: Any) -> None:
    server.route(FEED, respond(304, b"", content_type=None))
    world = World(dynamodb, "unasked", shortcut=True, clock=[T0_MS])
    source = ClubSource(name="aaa", club_ids=frozenset({212}), base_url=server.base_url)
    result = world.poll(source)
    assert (result.status, result.error_code, result.http_status) == ("failed", "unexpected_not_modified", 304)
    assert "sent no If-None-Match" in (result.error or "")
    assert world.stores.writer.head("aaa") is None


def test_validators_are_sent_back_as_the_club_gave_them(server: LoopbackServer, dynamodb: Any) -> None:
    etag, modified = 'W/"v1-abc"', "Wed, 02 Dec 2026 10:00:00 GMT"
    server.route(FEED, respond(200, feed(BIG), {"ETag": etag, "Last-Modified": modified}))
    clock = [T0_MS]
    world = World(dynamodb, "validators", shortcut=True, clock=clock)
    source = ClubSource(name="aaa", club_ids=frozenset({212, 213}), base_url=server.base_url)
    world.poll(source)
    clock[0] += 600_000
    world.poll(source)
    first, second = server.requests_to(FEED)
    assert "if-none-match" not in first.headers and "if-modified-since" not in first.headers
    assert (second.headers["if-none-match"], second.headers["if-modified-since"]) == (etag, modified)
