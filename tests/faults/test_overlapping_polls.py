"""Overlapping polls of one source never make readers go back to an older list (DESIGN.md section 3).

A loopback club answers the poll that asked first slowly (a delay, a 503 and a retry, a redirect to a slow path)
and the poll that asked later at once. A reader samples what it is served throughout; mapped to the moment the
club first heard from the poll that produced it (as the club server saw it, not as the code under test stamped it),
the served lists must come in non-decreasing order, ending with the later-asked poll's list.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.aws import SNAPSHOT_TABLE
from support.club_servers import Handler, LoopbackServer, Responder, in_turn, redirect, respond, serve
from support.stores import Stores, stores

from cappi.adapters.club_client import ClientLimits, ClubFeedClient
from cappi.adapters.secrets import StaticSecrets
from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain.last_poll import last_poll_of
from cappi.domain.poll import PollResult, poll_source
from cappi.domain.registry import ClubAuth, ClubSource

FEED = "/service/calls/status"
SOURCE = "overlap-club"
LIMITS = ClientLimits(connect_timeout=1.0, read_timeout=3.0, deadline=8.0, max_attempts=3, backoff_base=0.01)


def feed(call_id: int) -> bytes:
    return json.dumps({"Result": {"Calls": [{"CallId": call_id, "ClubId": 212, "TechId": "AB12"}]}}).encode()


START, OLDER_X, NEWER_Y = 1000, 1111, 2222


def slowly(seconds: float, responder: Responder) -> Responder:
    def run(h: Handler) -> None:
        if h.wait(seconds):
            responder(h)

    return run


@dataclass
class Sampler:
    """Reads what readers are served, as fast as it can, until stopped."""

    read: Callable[[], tuple[str, ...] | None]
    seen: list[tuple[str, ...] | None] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.append(self.read())
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.seen.append(self.read())

    def distinct(self) -> list[tuple[str, ...] | None]:
        runs: list[tuple[str, ...] | None] = []
        for value in self.seen:
            if not runs or runs[-1] != value:
                runs.append(value)
        return runs


@pytest.fixture
def club() -> Iterator[LoopbackServer]:
    with serve() as server:
        yield server


@pytest.fixture
def setup(club: LoopbackServer, dynamodb: Any) -> tuple[ClubSource, ClubFeedClient, Stores]:
    source = ClubSource(
        name=SOURCE,
        club_ids=frozenset({212}),
        base_url=club.base_url,
        auth=ClubAuth(type="bearer", secret="clubs/overlap"),
    )
    client = ClubFeedClient(StaticSecrets({"clubs/overlap": "overlap-bearer"}), LIMITS)
    return source, client, stores(dynamodb, SNAPSHOT_TABLE)


def overlapping(
    club: LoopbackServer,
    setup: tuple[ClubSource, ClubFeedClient, Stores],
    feed_responder: Responder,
) -> tuple[Sampler, PollResult, PollResult, dict[str, float]]:
    """A first poll publishes START; then poll 1 starts, and poll 2 once the club has heard poll 1's first request.

    Returns the sampler, both results and, per served call ID, when the club first heard from the poll behind it.
    """
    source, client, store = setup
    club.route(FEED, respond(body=feed(START)))
    poll_source(source, client, store.writer)
    club.route(FEED, feed_responder)
    reader = SnapshotReader(store.snapshots, {212: SOURCE})

    def served() -> tuple[str, ...] | None:
        found = reader.open_calls(212, "AB12")
        return found.call_ids if found is not None else None

    before = len(club.requests_to(FEED))
    results: dict[str, PollResult] = {}
    with Sampler(served) as sampler:
        one = threading.Thread(target=lambda: results.__setitem__("one", poll_source(source, client, store.writer)))
        one.start()
        while len(club.requests_to(FEED)) <= before:
            time.sleep(0.002)
        time.sleep(0.05)  # poll 2 asks clearly later
        results["two"] = poll_source(source, client, store.writer)
        one.join(15)
    seen = club.requests_to(FEED)
    first_heard = {str(START): 0.0, str(OLDER_X): seen[before].at, str(NEWER_Y): seen[before + 1].at}
    return sampler, results["one"], results["two"], first_heard


def assert_never_back(sampler: Sampler, first_heard: dict[str, float]) -> None:
    order = [first_heard[ids[0]] for ids in sampler.distinct() if ids]
    assert order == sorted(order), f"readers went back: {sampler.distinct()}"
    assert sampler.seen[-1] == (str(NEWER_Y),)


# Factories: in_turn counts the requests it has answered, so each test needs fresh ones.
CASES: dict[str, Callable[[], Responder]] = {
    # poll 1's answer (X, as of when it asked) arrives 1.5 s after poll 2's (Y)
    "slow-older-answer": lambda: in_turn(slowly(1.5, respond(body=feed(OLDER_X))), respond(body=feed(NEWER_Y))),
    # poll 1 gets a 503, waits, and its retry (sent after poll 2 asked) gets X
    "older-poll-retried": lambda: in_turn(
        respond(503, b"busy", headers={"Retry-After": "1"}), respond(body=feed(NEWER_Y)), respond(body=feed(OLDER_X))
    ),
    # poll 1 is redirected to a slow path that answers X; poll 2 is answered at once
    "older-poll-redirected": lambda: in_turn(redirect("/slow"), respond(body=feed(NEWER_Y))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_readers_never_go_back_to_an_older_list(
    case: str, club: LoopbackServer, setup: tuple[ClubSource, ClubFeedClient, Stores]
) -> None:
    club.route("/slow", slowly(1.0, respond(body=feed(OLDER_X))))

    sampler, one, two, first_heard = overlapping(club, setup, CASES[case]())

    assert (one.status, two.status) == ("ok", "ok")
    assert_never_back(sampler, first_heard)
    assert one.fetched_at_ms < two.fetched_at_ms  # stamped when each first asked, whatever came after
    assert [c.outcome.value for c in one.clubs] == ["superseded"]


def test_the_last_poll_record_is_the_later_sent_poll(
    club: LoopbackServer, setup: tuple[ClubSource, ClubFeedClient, Stores]
) -> None:
    _source, _client, store = setup
    _sampler, one, two, _ = overlapping(club, setup, CASES["slow-older-answer"]())

    store.polls.record_poll(last_poll_of(two))
    store.polls.record_poll(last_poll_of(one))  # finished last, asked first: must not replace the record

    recorded = store.polls.last_poll(SOURCE)
    assert recorded is not None
    assert recorded.fetched_at_ms == two.fetched_at_ms
    # The age of what readers see counts from when its list was asked for, so it includes the fetch itself.
    assert two.snapshot_age_s[212] >= 0
