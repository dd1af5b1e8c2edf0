"""One simulated club endpoint (one registry source): its simulated calls, its credentials, and what an operator
can do to it through the control endpoint (break the feed, pin exact calls, jump ahead in time, revoke tokens)."""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from local.demo_clubs.credentials import ClubCredentials
from local.demo_clubs.simulation import DEFAULT_CHURN, DEFAULT_SEED, DEMO_TECH, CallSimulation, Churn

MODES = ("normal", "down", "garbage", "html", "slow")
DEFAULT_SLOW_DELAY_S = 3.0
MAX_SLOW_DELAY_S = 300.0
MAX_CONTROL_ADVANCE_S = 7 * 86_400.0


class ControlError(ValueError):
    """A control request that cannot be applied; the message says why."""


class ClubSimulator:
    """One simulated club endpoint (one registry source): its open calls, credentials and failure mode."""

    def __init__(
        self,
        name: str,
        club_ids: Sequence[int],
        *,
        size: int,
        auth: str = "none",
        secret: str | None = None,
        seed: int = DEFAULT_SEED,
        api_key_header: str = "X-Api-Key",
        client_id: str | None = None,
        required_headers: Mapping[str, str] | None = None,
        demo_tech: str = DEMO_TECH,
        calls_per_tech: float = 4.0,
        churn: Churn = DEFAULT_CHURN,
        token_lifetime_s: int = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = ClubCredentials(
            name,
            auth,
            secret,
            api_key_header=api_key_header,
            client_id=client_id,
            required_headers=required_headers,
            token_lifetime_s=token_lifetime_s,
            clock=clock,
        )
        self.simulation = CallSimulation(
            name, club_ids, size=size, seed=seed, demo_tech=demo_tech, calls_per_tech=calls_per_tech, churn=churn
        )
        self.name = name
        self.club_ids = self.simulation.club_ids
        self.demo_tech = demo_tech
        self._lock = threading.RLock()
        self.mode = "normal"
        self.slow_delay_s = DEFAULT_SLOW_DELAY_S
        self._pinned: list[tuple[Any, Any, Any]] | None = None
        self._version = 0
        self._cache: dict[tuple[int, bool], bytes] = {}

    # --- identity and credentials ---

    @property
    def auth(self) -> str:
        return self.credentials.auth

    @property
    def secret(self) -> str | None:
        return self.credentials.secret

    @property
    def secret_name(self) -> str | None:
        return self.credentials.secret_name

    def registry_source(self, base_url: str) -> dict[str, Any]:
        """This club's entry in a registry file (functions/cappi/domain/registry.py format)."""
        club_base = f"{base_url.rstrip('/')}/{self.name}"
        source: dict[str, Any] = {"name": self.name, "club_ids": list(self.club_ids), "base_url": club_base}
        source["auth"] = self.credentials.registry_auth(club_base)
        if self.credentials.required_headers:
            source["headers"] = dict(self.credentials.required_headers)
        source["enabled"] = True
        return source

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why the feed request's credentials are refused, or None when they are good."""
        return self.credentials.refusal(headers)

    def issue_token(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """The club's own OAuth2 token endpoint (form-encoded client_credentials, as RFC 6749 has it)."""
        return self.credentials.issue_token(body, headers)

    def revoke_tokens(self) -> None:
        self.credentials.revoke_tokens()

    # --- simulated time ---

    def advance(self, seconds: float) -> int:
        """Move simulated time forward; returns how many simulated steps ran."""
        with self._lock:
            steps = self.simulation.advance(seconds)
            if steps:
                self._changed()
            return steps

    @property
    def elapsed_s(self) -> float:
        return self.simulation.elapsed_s

    # --- what the feed serves ---

    def open_calls(self) -> list[tuple[Any, Any, Any]]:
        """The rows the feed serves now, as (CallId, ClubId, TechId): the pinned rows, or the simulation's."""
        with self._lock:
            if self._pinned is not None:
                return list(self._pinned)
            return self.simulation.rows()

    def demo_calls(self) -> dict[int, list[int]]:
        """The demo tech's open call IDs (in what the feed serves now) per club ID."""
        result: dict[int, list[int]] = {club: [] for club in self.club_ids}
        demo = self.demo_tech.upper()
        for call, club, tech in self.open_calls():
            if isinstance(tech, str) and tech.strip().upper() == demo and club in result:
                result[club].append(call)
        return {club: sorted(calls, key=lambda c: (len(str(c)), str(c))) for club, calls in result.items()}

    def feed_body(self, *, gzipped: bool = False) -> bytes:
        """The document the feed serves now; serialized (and compressed) once per change, not once per request."""
        with self._lock:
            if not self._cache or next(iter(self._cache))[0] != self._version:
                self._cache = {}
            raw = self._cache.get((self._version, False))
            if raw is None:
                rows = self.open_calls()
                document = {"Result": {"Calls": [{"CallId": c, "ClubId": k, "TechId": t} for c, k, t in rows]}}
                raw = self._cache[(self._version, False)] = json.dumps(document, separators=(",", ":")).encode()
            if not gzipped:
                return raw
            packed = self._cache.get((self._version, True))
            if packed is None:
                packed = self._cache[(self._version, True)] = gzip.compress(raw, compresslevel=1, mtime=0)
            return packed

    def summary(self) -> dict[str, Any]:
        with self._lock:
            rows = self.open_calls()
            return {
                "name": self.name,
                "club_ids": list(self.club_ids),
                "auth": self.auth,
                "mode": self.mode,
                "slow_delay_s": self.slow_delay_s,
                "pinned": self._pinned is not None,
                "calls": len(rows),
                "techs": len({(club, tech) for _, club, tech in rows}),
                "demo_tech": self.demo_tech,
                "demo_calls": {str(club): calls for club, calls in self.demo_calls().items()},
                "simulated_s": round(self.elapsed_s, 3),
                "version": self._version,
            }

    # --- control ---

    def set_mode(self, mode: str, delay_s: float | None = None) -> None:
        if mode not in MODES:
            raise ControlError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            self.mode = mode
            if delay_s is not None:
                self.slow_delay_s = delay_s

    def pin(self, calls: Iterable[Sequence[Any]] | None) -> None:
        """Serve exactly these (CallId, ClubId, TechId) rows, verbatim; None goes back to the simulation."""
        with self._lock:
            self._pinned = None if calls is None else [tuple(row) for row in calls]
            self._changed()

    def apply_control(self, request: Any) -> None:
        """Apply a `POST /_control/<name>` body; raises ControlError, changing nothing, when any part is wrong."""
        if not isinstance(request, dict):
            raise ControlError("the body must be a JSON object")
        unknown = set(request) - {"mode", "delay", "calls", "advance", "revoke_tokens"}
        if unknown:
            raise ControlError(f"unknown field(s): {', '.join(sorted(unknown))}")
        mode = request.get("mode")
        if mode is not None and mode not in MODES:
            raise ControlError(f"mode must be one of {', '.join(MODES)}")
        delay = request.get("delay")
        if delay is not None and not (_is_number(delay) and 0 <= delay <= MAX_SLOW_DELAY_S):
            raise ControlError(f"delay must be a number of seconds from 0 to {MAX_SLOW_DELAY_S:g}")
        advance = request.get("advance")
        if advance is not None and not (_is_number(advance) and 0 <= advance <= MAX_CONTROL_ADVANCE_S):
            raise ControlError(f"advance must be a number of seconds from 0 to {MAX_CONTROL_ADVANCE_S:g}")
        if request.get("revoke_tokens") not in (None, True, False):
            raise ControlError("revoke_tokens must be true or false")
        calls = _control_calls(request["calls"]) if "calls" in request else None
        with self._lock:
            if mode is not None or delay is not None:
                self.set_mode(mode or self.mode, delay)
            if "calls" in request:
                self.pin(calls)
            if advance:
                self.advance(advance)
            if request.get("revoke_tokens"):
                self.revoke_tokens()

    def _changed(self) -> None:
        self._version += 1


def _control_calls(raw: Any) -> list[tuple[Any, Any, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ControlError("calls must be null or a list of [call_id, club_id, tech_id]")
    rows = []
    for index, row in enumerate(raw):
        if (
            not isinstance(row, list)
            or len(row) != 3
            or not isinstance(row[0], int | str)
            or isinstance(row[0], bool)
            or type(row[1]) is not int
            or not isinstance(row[2], str)
        ):
            raise ControlError(f"calls[{index}] must be [call_id (int or string), club_id (int), tech_id (string)]")
        rows.append((row[0], row[1], row[2]))
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
