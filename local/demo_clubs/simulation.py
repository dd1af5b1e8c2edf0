"""The open calls of a simulated club endpoint, changing over simulated time as a real dispatch system's do.

Every simulated step (a minute by default) some calls close, new ones open and some move to another technician,
while the endpoint's size stays roughly where it started. The demo technician keeps at least two open calls in
every club at all times, so printed examples always show calls. All of it is seeded: a given seed, name and
sequence of `advance` calls always produce the same calls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

DEMO_TECH = "DEMO1"
DEFAULT_SEED = 20_240_601

_MIN_DEMO_CALLS = 2  # the demo tech never drops below this, so a printed query always shows calls
_INITIAL_DEMO_CALLS = 4
_DEMO_NEW_CALLS_PER_STEP = 0.15  # with the churn below, the demo tech hovers around 4-5 open calls
# Catching up more simulated time than this in one go is the same as this much: the feed has turned over anyway
# (under 1% of the calls open 4 hours earlier remain), and a request must not stall on days of backlog.
_MAX_CATCH_UP_STEPS = 240
_MIN_CALL_ID, _MAX_CALL_ID = 1_000_000, 9_999_999  # 7-digit call IDs
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I/O/Q: dispatch systems avoid letters read as digits
_TECH_PATTERNS = ("LLDDDD", "LDDDDD", "LLLDDD", "LLDDDDD")


@dataclass(frozen=True)
class Churn:
    """How a club's open calls change per simulated step."""

    close: float = 0.02  # share of open calls that close
    open: float = 0.02  # share of the club's size that opens (plus a pull back towards that size)
    reassign: float = 0.01  # share of open calls handed to another technician
    step_s: float = 60.0


DEFAULT_CHURN = Churn()


class CallSimulation:
    """The open calls of the clubs `club_ids` served by one endpoint `name`, about `size` of them in all.

    Not thread-safe: the club that owns it (ClubSimulator) serializes access.
    """

    def __init__(
        self,
        name: str,
        club_ids: Sequence[int],
        *,
        size: int,
        seed: int = DEFAULT_SEED,
        demo_tech: str = DEMO_TECH,
        calls_per_tech: float = 4.0,
        churn: Churn = DEFAULT_CHURN,
    ) -> None:
        if not club_ids or len(set(club_ids)) != len(club_ids):
            raise ValueError("club_ids must be a non-empty list without repeats")
        if size < 0:
            raise ValueError("size must not be negative")
        self.club_ids = tuple(club_ids)
        self.size = size
        self.demo_tech = demo_tech
        self.churn = churn
        # A simulation, not cryptography; str seeds hash with SHA-512, so runs repeat across processes.
        self._rng = random.Random(f"{seed}:{name}")  # noqa: S311
        self._elapsed_s = 0.0
        self._steps_done = 0

        self._calls: dict[int, tuple[int, str]] = {}  # call ID -> (club ID, tech ID); insertion order is feed order
        self._demo_calls: dict[int, set[int]] = {club: set() for club in self.club_ids}
        self._next_call_id = self._rng.randrange(_MIN_CALL_ID, 4_000_000)
        self._shares = self._club_shares()
        self._roster = self._make_roster(calls_per_tech)
        self._populate()

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_s

    def advance(self, seconds: float) -> int:
        """Move simulated time forward; returns how many simulated steps ran (the calls changed if any did)."""
        if seconds <= 0 or not math.isfinite(seconds):
            return 0
        self._elapsed_s += seconds
        due = int(self._elapsed_s // self.churn.step_s)
        todo = min(due - self._steps_done, _MAX_CATCH_UP_STEPS)
        for _ in range(todo):
            self._step()
        self._steps_done = due
        return todo

    def rows(self) -> list[tuple[int, int, str]]:
        """The open calls as (CallId, ClubId, TechId), in feed order."""
        return [(call, club, tech) for call, (club, tech) in self._calls.items()]

    def _club_shares(self) -> list[float]:
        # The first club ID of a source is its biggest, as with a parent club and its smaller regions.
        weights = [1.0 / (i + 1) for i in range(len(self.club_ids))]
        total = sum(weights)
        return [w / total for w in weights]

    def _make_roster(self, calls_per_tech: float) -> dict[int, list[str]]:
        taken = {self.demo_tech.upper()}
        roster: dict[int, list[str]] = {}
        for club, share in zip(self.club_ids, self._shares, strict=True):
            count = max(3, round(self.size * share / calls_per_tech))
            techs: list[str] = []
            while len(techs) < count:
                tech = _tech_id(self._rng)
                if tech not in taken:
                    taken.add(tech)
                    techs.append(tech)
            roster[club] = techs
        return roster

    def _populate(self) -> None:
        # Clubs interleave in call-number order, and the demo tech's calls sit at random places among them.
        labels = [
            club
            for club, share in zip(self.club_ids, self._shares, strict=True)
            for _ in range(max(_INITIAL_DEMO_CALLS, round(self.size * share)))
        ]
        self._rng.shuffle(labels)
        demo_positions: set[int] = set()
        for club in self.club_ids:
            positions = [i for i, label in enumerate(labels) if label == club]
            demo_positions.update(self._rng.sample(positions, _INITIAL_DEMO_CALLS))
        for index, club in enumerate(labels):
            self._open(club, self.demo_tech if index in demo_positions else self._pick_tech(club))

    def _step(self) -> None:
        rng, churn = self._rng, self.churn
        open_now = len(self._calls)
        closing = self._count(open_now * churn.close)
        moving = self._count(open_now * churn.reassign)
        # One draw for both, so no call closes and moves in the same minute (and the key list is built once).
        chosen = rng.sample(list(self._calls), min(open_now, closing + moving))
        for call in chosen[:closing]:
            self._close(call)
        for call in chosen[closing:]:
            self._reassign(call)
        # New calls at the usual rate, plus a pull towards the club's size so it neither drains nor swells.
        pull = (self.size - open_now) * 0.1
        for _ in range(self._count(max(0.0, self.size * churn.open + pull))):
            club = rng.choices(self.club_ids, weights=self._shares)[0]
            self._open(club, self._pick_tech(club))
        for club in self.club_ids:
            if rng.random() < _DEMO_NEW_CALLS_PER_STEP:
                self._open(club, self.demo_tech)

    def _count(self, expected: float) -> int:
        """A whole number of events around `expected`: jittered, and rounded at random so small rates still fire."""
        value = expected * self._rng.uniform(0.75, 1.25)
        whole = int(value)
        return whole + (1 if self._rng.random() < value - whole else 0)

    def _pick_tech(self, club: int) -> str:
        return self._rng.choice(self._roster[club])

    def _new_call_id(self) -> int:
        while True:
            self._next_call_id += self._rng.randint(1, 3)
            if self._next_call_id > _MAX_CALL_ID:
                self._next_call_id = _MIN_CALL_ID  # call numbers wrap, as 7-digit counters must
            if self._next_call_id not in self._calls:
                return self._next_call_id

    def _open(self, club: int, tech: str) -> None:
        call = self._new_call_id()
        self._calls[call] = (club, tech)
        if tech == self.demo_tech:
            self._demo_calls[club].add(call)

    def _keeps_demo_floor(self, club: int, tech: str) -> bool:
        return tech != self.demo_tech or len(self._demo_calls[club]) > _MIN_DEMO_CALLS

    def _close(self, call: int) -> None:
        club, tech = self._calls[call]
        if self._keeps_demo_floor(club, tech):
            del self._calls[call]
            self._demo_calls[club].discard(call)

    def _reassign(self, call: int) -> None:
        club, tech = self._calls[call]
        if not self._keeps_demo_floor(club, tech):
            return
        others = self._roster[club]
        new_tech = self._rng.choice(others)
        while new_tech == tech:
            new_tech = self._rng.choice(others)
        self._calls[call] = (club, new_tech)
        self._demo_calls[club].discard(call)


def _tech_id(rng: random.Random) -> str:
    pattern = rng.choice(_TECH_PATTERNS)
    return "".join(rng.choice(_LETTERS) if p == "L" else str(rng.randrange(10)) for p in pattern)
