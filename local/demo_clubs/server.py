"""The simulated clubs over HTTP: every club on one loopback port under `/<club name>/`, plus control endpoints
for tests and demos. Simulated time follows real time (scaled by `time_scale`), caught up when a request for a
club arrives: no background thread."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cappi.domain.registry import is_loopback_host
from local.demo_clubs.club import ClubSimulator, ControlError
from local.demo_clubs.demo import DemoClubs

_GZIP_MIN_BYTES = 1024
_MAX_CONTROL_BODY = 10 * 1024 * 1024

Response = tuple[int, dict[str, str], bytes]


class ClubFeedServer:
    """Serves `clubs` over HTTP on a loopback port, in a daemon thread.

    - `GET /<name>/service/calls/status`: the club's feed (401 without the right credentials), with an ETag;
      304 Not Modified when `If-None-Match` names the current list's;
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
        lowered = {k.lower(): v for k, v in headers.items()}
        # A weak ETag of the document (the same for its gzip and plain forms): a poll that sends it back while the
        # list is unchanged gets 304 Not Modified and no body, as a club's cache or CDN would answer.
        etag = f'W/"{hashlib.sha256(body).hexdigest()[:20]}"'
        if etag in (tag.strip() for tag in lowered.get("if-none-match", "").split(",")):
            return 304, {"ETag": etag}, b""
        accepts_gzip = "gzip" in lowered.get("accept-encoding", "").lower()
        if accepts_gzip and len(body) >= _GZIP_MIN_BYTES:
            gzipped = club.feed_body(gzipped=True)
            return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip", "ETag": etag}, gzipped
        return 200, {"Content-Type": "application/json", "ETag": etag}, body

    def _control(self, method: str, parts: list[str], body: bytes) -> Response:
        if not parts and method == "GET":
            for each in self.clubs:
                self.tick(each)
            return _json(200, {"clubs": [each.summary() for each in self.clubs]})
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
