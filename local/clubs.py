"""Simulated club feeds for local mode's default demo: three clubs that behave like real club endpoints.

Each club answers `GET {base}/service/calls/status` with the document's `{"Result": {"Calls": [...]}}`, checks the
credentials its registry entry says CAPPI sends, and refuses anything else with 401. Their open calls change over
simulated time, as a real dispatch system's do: every simulated minute some calls close, new ones open and some
move to another technician, while the club's size stays roughly where it started. All of it is seeded, so a given
seed and a given sequence of `advance` calls always produce the same feed.

    demo-small   club 212        ~40 calls      bearer token, plus the document's Ident and User-Agent headers
    demo-medium  clubs 213, 214  ~3,000 calls   API key in X-Api-Key
    demo-large   club 300        ~12,000 calls  OAuth2 client credentials against the club's own /oauth/token

Every club ID has the technician DEMO1 with open calls at all times (at least two), so printed examples work.

`ClubFeedServer` serves all clubs on one loopback port, each under `/<club name>/`, plus control endpoints for
tests and demos (`/_control/<club name>`: break the feed, pin exact calls, jump ahead in time). Simulated time
follows real time (scaled by `time_scale`), computed when a request arrives: no background thread.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from cappi.domain.registry import is_loopback_host

AUTH_TYPES = ("none", "bearer", "basic", "api_key", "oauth2_client_credentials")
MODES = ("normal", "down", "garbage", "html", "slow")
DEMO_TECH = "DEMO1"
DEFAULT_SEED = 20_240_601
DEFAULT_SLOW_DELAY_S = 3.0
MAX_SLOW_DELAY_S = 300.0
MAX_CONTROL_ADVANCE_S = 7 * 86_400.0
SECRET_PREFIX = "cappi/local/clubs/"  # noqa: S105 - a name prefix, not a value
DOCUMENT_HEADERS = {"Ident": "ClubAssist", "User-Agent": "API Services B2B Partners"}  # the document's example

_MIN_DEMO_CALLS = 2  # the demo tech never drops below this, so a printed query always shows calls
_INITIAL_DEMO_CALLS = 4
_DEMO_NEW_CALLS_PER_STEP = 0.15  # with the churn below, the demo tech hovers around 4-5 open calls
# Catching up more simulated time than this in one go is the same as this much: the feed has turned over anyway
# (under 1% of the calls open 4 hours earlier remain), and a request must not stall on days of backlog.
_MAX_CATCH_UP_STEPS = 240
_GZIP_MIN_BYTES = 1024
_MAX_CONTROL_BODY = 10 * 1024 * 1024
_MIN_CALL_ID, _MAX_CALL_ID = 1_000_000, 9_999_999  # 7-digit call IDs
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I/O/Q: dispatch systems avoid letters read as digits
_TECH_PATTERNS = ("LLDDDD", "LDDDDD", "LLLDDD", "LLDDDDD")

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Churn:
    """How a club's open calls change per simulated step."""

    close: float = 0.02  # share of open calls that close
    open: float = 0.02  # share of the club's size that opens (plus a pull back towards that size)
    reassign: float = 0.01  # share of open calls handed to another technician
    step_s: float = 60.0


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
        churn: Churn = Churn(),
        token_lifetime_s: int = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if auth not in AUTH_TYPES:
            raise ValueError(f"unknown auth type {auth!r}")
        if auth != "none" and not secret:
            raise ValueError(f"auth type {auth!r} needs a secret")
        if auth == "basic" and ":" not in (secret or ""):
            raise ValueError("basic auth needs a 'user:password' secret")
        if not club_ids or len(set(club_ids)) != len(club_ids):
            raise ValueError("club_ids must be a non-empty list without repeats")
        if size < 0:
            raise ValueError("size must not be negative")
        self.name = name
        self.club_ids = tuple(club_ids)
        self.size = size
        self.auth = auth
        self.secret = secret
        self.api_key_header = api_key_header
        self.client_id = client_id or ("cappi-local" if auth == "oauth2_client_credentials" else None)
        self.required_headers = dict(required_headers or {})
        self.demo_tech = demo_tech
        self.churn = churn
        self.token_lifetime_s = token_lifetime_s
        self._clock = clock
        self._lock = threading.RLock()
        # A simulation, not cryptography; str seeds hash with SHA-512, so runs repeat across processes.
        self._rng = random.Random(f"{seed}:{name}")  # noqa: S311

        self.mode = "normal"
        self.slow_delay_s = DEFAULT_SLOW_DELAY_S
        self._pinned: list[tuple[Any, Any, Any]] | None = None
        self._tokens: dict[str, float] = {}  # access token -> expiry on `clock`
        self._elapsed_s = 0.0
        self._steps_done = 0
        self._version = 0
        self._cache: dict[tuple[int, bool], bytes] = {}

        self._calls: dict[int, tuple[int, str]] = {}  # call ID -> (club ID, tech ID); insertion order is feed order
        self._demo_calls: dict[int, set[int]] = {club: set() for club in self.club_ids}
        self._next_call_id = self._rng.randrange(_MIN_CALL_ID, 4_000_000)
        self._shares = self._club_shares()
        self._roster = self._make_roster(calls_per_tech)
        self._populate()

    # --- identity and credentials ---

    @property
    def secret_name(self) -> str | None:
        return SECRET_PREFIX + self.name if self.auth != "none" else None

    def registry_source(self, base_url: str) -> dict[str, Any]:
        """This club's entry in a registry file (functions/cappi/domain/registry.py format)."""
        club_base = f"{base_url.rstrip('/')}/{self.name}"
        auth: dict[str, Any] = {"type": self.auth}
        if self.auth != "none":
            auth["secret"] = self.secret_name
        if self.auth == "api_key":
            auth["header"] = self.api_key_header
        if self.auth == "oauth2_client_credentials":
            auth["token_url"] = f"{club_base}/oauth/token"
            auth["client_id"] = self.client_id
        source: dict[str, Any] = {"name": self.name, "club_ids": list(self.club_ids), "base_url": club_base}
        source["auth"] = auth
        if self.required_headers:
            source["headers"] = dict(self.required_headers)
        source["enabled"] = True
        return source

    # --- simulated time ---

    def advance(self, seconds: float) -> int:
        """Move simulated time forward; returns how many simulated steps ran."""
        if seconds <= 0 or not math.isfinite(seconds):
            return 0
        with self._lock:
            self._elapsed_s += seconds
            due = int(self._elapsed_s // self.churn.step_s)
            todo = min(due - self._steps_done, _MAX_CATCH_UP_STEPS)
            for _ in range(todo):
                self._step()
            self._steps_done = due
            if todo:
                self._changed()
            return todo

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_s

    # --- what the feed serves ---

    def open_calls(self) -> list[tuple[Any, Any, Any]]:
        """The rows the feed serves now, as (CallId, ClubId, TechId): the pinned rows, or the simulation's."""
        with self._lock:
            if self._pinned is not None:
                return list(self._pinned)
            return [(call, club, tech) for call, (club, tech) in self._calls.items()]

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
                "simulated_s": round(self._elapsed_s, 3),
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

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

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

    # --- HTTP behaviour (the server only routes) ---

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why the feed request's credentials are refused, or None when they are good."""
        got = {k.lower(): v for k, v in headers.items()}
        for name, value in self.required_headers.items():
            if got.get(name.lower()) != value:
                return f"missing or wrong {name} header"
        if self.auth == "none":
            return None
        if self.auth == "api_key":
            return None if _same(got.get(self.api_key_header.lower()), self.secret) else f"bad {self.api_key_header}"
        authorization = got.get("authorization") or ""
        scheme, _, credential = authorization.partition(" ")
        if self.auth == "basic":
            return (
                None if scheme.lower() == "basic" and _same(_unbase64(credential), self.secret) else "bad credentials"
            )
        if scheme.lower() != "bearer" or not credential:
            return "missing bearer token"
        if self.auth == "bearer":
            return None if _same(credential.strip(), self.secret) else "bad bearer token"
        with self._lock:
            expiry = self._tokens.get(credential.strip())
            if expiry is None or expiry <= self._clock():
                return "unknown or expired access token"
        return None

    def issue_token(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """The club's own OAuth2 token endpoint (form-encoded client_credentials, as RFC 6749 has it)."""
        if self.auth != "oauth2_client_credentials":
            return 404, {"error": "not_found"}
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return 400, {"error": "invalid_request"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if authorization.lower().startswith("basic "):
            client_id, _, secret = (_unbase64(authorization[6:]) or "").partition(":")
        if client_id != self.client_id or not _same(secret, self.secret):
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + self.token_lifetime_s
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s}

    # --- the simulation ---

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

    def _changed(self) -> None:
        self._version += 1


class DemoClubs:
    """The three demo clubs local mode starts by default (or any set of simulators given as `clubs`)."""

    def __init__(self, seed: int = DEFAULT_SEED, *, clubs: Sequence[ClubSimulator] | None = None) -> None:
        if clubs is None:
            clubs = (
                ClubSimulator(
                    "demo-small",
                    [212],
                    size=40,
                    auth="bearer",
                    secret="local-demo-small-bearer-token",  # noqa: S106 - a simulated club's, printed on purpose
                    required_headers=DOCUMENT_HEADERS,
                    seed=seed,
                ),
                ClubSimulator(
                    "demo-medium",
                    [213, 214],
                    size=3000,
                    auth="api_key",
                    secret="local-demo-medium-api-key",  # noqa: S106
                    api_key_header="X-Api-Key",
                    seed=seed,
                ),
                ClubSimulator(
                    "demo-large",
                    [300],
                    size=12_000,
                    auth="oauth2_client_credentials",
                    secret="local-demo-large-client-secret",  # noqa: S106
                    client_id="cappi-local",
                    seed=seed,
                ),
            )
        names = [c.name for c in clubs]
        if len(set(names)) != len(names):
            raise ValueError("club names must be unique")
        self.clubs: tuple[ClubSimulator, ...] = tuple(clubs)
        self._by_name = {c.name: c for c in self.clubs}

    def __iter__(self) -> Iterator[ClubSimulator]:
        return iter(self.clubs)

    def __getitem__(self, name: str) -> ClubSimulator:
        return self._by_name[name]

    def get(self, name: str) -> ClubSimulator | None:
        return self._by_name.get(name)

    def registry(self, base_url: str) -> dict[str, Any]:
        """A registry document for these clubs served at `base_url` (each under `{base_url}/{name}`)."""
        return {
            "comment": "Simulated demo clubs of CAPPI local mode",
            "sources": [club.registry_source(base_url) for club in self.clubs],
        }

    def secrets(self) -> dict[str, str]:
        """Secret name -> value, in the formats the feed client reads (token, API key, OAuth2 client secret)."""
        return {c.secret_name: c.secret for c in self.clubs if c.secret_name and c.secret}

    def advance(self, seconds: float) -> None:
        for club in self.clubs:
            club.advance(seconds)

    def example_query(self) -> tuple[int, str]:
        """A (ClubId, TechId) that always has open calls: for the printed curl example."""
        first = self.clubs[0]
        return first.club_ids[0], first.demo_tech


class ClubFeedServer:
    """Serves `clubs` over HTTP on a loopback port, in a daemon thread.

    - `GET /<name>/service/calls/status`: the club's feed (401 without the right credentials);
    - `POST /<name>/oauth/token`: the token endpoint of an `oauth2_client_credentials` club;
    - `GET /_control` and `GET /_control/<name>`: state summaries;
    - `POST /_control/<name>` with JSON `{"mode": "normal"|"down"|"garbage"|"html"|"slow", "delay": s,
      "calls": [[call_id, club_id, tech_id], ...] | null, "advance": s, "revoke_tokens": true}`.

    Simulated time runs at `time_scale` times real time, caught up when a club is requested.
    """

    def __init__(
        self,
        clubs: DemoClubs,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"the simulated clubs listen on loopback only, not {host!r}")
        if time_scale < 0 or not math.isfinite(time_scale):
            raise ValueError("time_scale must be a finite number >= 0")
        self.clubs = clubs
        self.time_scale = time_scale
        self._clock = clock
        self._tick_lock = threading.Lock()
        self._last_tick = {club.name: clock() for club in clubs}
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="club-feeds", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def start(self) -> ClubFeedServer:
        now = self._clock()
        with self._tick_lock:
            self._last_tick = {club.name: now for club in self.clubs}
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" responses, so shutdown does not wait for them
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def __enter__(self) -> ClubFeedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- request handling, called from the handler threads ---

    def tick(self, club: ClubSimulator) -> None:
        with self._tick_lock:
            now = self._clock()
            elapsed = now - self._last_tick.get(club.name, now)
            self._last_tick[club.name] = now
        club.advance(elapsed * self.time_scale)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["_control"]:
            return self._control(method, parts[1:], body)
        club = self.clubs.get(parts[0]) if parts else None
        if club is None:
            return _json(404, {"error": "not_found", "message": "no such club"})
        rest = parts[1:]
        if rest == ["service", "calls", "status"] and method == "GET":
            self.tick(club)
            return self._feed(club, headers)
        if rest == ["oauth", "token"] and method == "POST" and club.auth == "oauth2_client_credentials":
            status, payload = club.issue_token(body, headers)
            response = _json(status, payload)
            response[1]["Cache-Control"] = "no-store"
            return response
        return _json(404, {"error": "not_found", "message": "no such endpoint"})

    def _feed(self, club: ClubSimulator, headers: Mapping[str, str]) -> Response:
        mode = club.mode
        if mode == "down":
            # What a load balancer in front of a dead backend says, before any credential is looked at.
            return _json(503, {"error": "service_unavailable", "message": f"{club.name} is down (simulated)"})
        refusal = club.refusal(headers)
        if refusal is not None:
            extra = {"WWW-Authenticate": "Bearer"} if club.auth in ("bearer", "oauth2_client_credentials") else {}
            status, response_headers, payload = _json(401, {"error": "unauthorized", "message": refusal})
            return status, {**response_headers, **extra}, payload
        if mode == "slow":
            self._stopping.wait(club.slow_delay_s)
        if mode == "html":
            page = (
                b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
                b"<body><h1>Service Temporarily Unavailable</h1><p>Please try again later.</p></body></html>"
            )
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        body = club.feed_body()
        if mode == "garbage":
            # A body cut short: the transport is fine (Content-Length matches), the document is not JSON.
            return 200, {"Content-Type": "application/json"}, body[: max(1, len(body) * 2 // 3)]
        accepts_gzip = "gzip" in {k.lower(): v for k, v in headers.items()}.get("accept-encoding", "").lower()
        if accepts_gzip and len(body) >= _GZIP_MIN_BYTES:
            return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, club.feed_body(gzipped=True)
        return 200, {"Content-Type": "application/json"}, body

    def _control(self, method: str, parts: list[str], body: bytes) -> Response:
        if not parts and method == "GET":
            for club in self.clubs:
                self.tick(club)
            return _json(200, {"clubs": [club.summary() for club in self.clubs]})
        club = self.clubs.get(parts[0]) if len(parts) == 1 else None
        if club is None:
            return _json(404, {"error": "not_found", "message": "no such club"})
        self.tick(club)
        if method == "POST":
            try:
                club.apply_control(json.loads(body or b"null"))
            except ValueError as exc:  # bad JSON and ControlError alike
                message = str(exc) if isinstance(exc, ControlError) else "the body must be JSON"
                return _json(400, {"error": "bad_request", "message": message})
        elif method != "GET":
            return _json(405, {"error": "method_not_allowed"})
        return _json(200, club.summary())


def _handler_class(owner: ClubFeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the feed client reuses connections
        server_version = "CAPPI-demo-club"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            pass  # request lines would carry nothing the control summaries do not

        def _serve(self) -> None:
            if owner.stopped:
                # A kept-alive connection outlives the listening socket; a stopped club must look stopped.
                self.close_connection = True
                return
            length_raw = self.headers.get("Content-Length") or "0"
            length = int(length_raw) if length_raw.isdigit() else -1
            if length < 0 or length > _MAX_CONTROL_BODY:
                self._write(_json(413, {"error": "too_large"}))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            path = self.path.partition("?")[0]
            headers = dict(self.headers.items())
            try:
                response = owner.handle(self.command, path, headers, body)
            except Exception as exc:  # a simulator bug must show as a 500, not a dropped connection
                response = _json(500, {"error": "internal", "message": type(exc).__name__})
            try:
                self._write(response)
            except OSError:
                self.close_connection = True  # the client gave up first (a timeout test, a slow mode)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def _write(self, response: Response) -> None:
            status, headers, body = response
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _json(status: int, payload: Any) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(payload, separators=(",", ":")).encode()


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


def _tech_id(rng: random.Random) -> str:
    pattern = rng.choice(_TECH_PATTERNS)
    return "".join(rng.choice(_LETTERS) if p == "L" else str(rng.randrange(10)) for p in pattern)


def _same(given: str | None, expected: str | None) -> bool:
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _unbase64(value: str) -> str | None:
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
