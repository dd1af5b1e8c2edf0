"""The issuer's signing keys: the JWKS document fetched (https, or http on loopback; no redirect, bounded in time
and size), parsed into RS256 keys by `kid`, and cached with a shared cooldown and a maximum age."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK

from cappi.domain.registry import is_loopback_host
from local.http_api import WouldWait, waiting_refused
from local.jwt_authorizer.config import DEFAULT_JWKS_COOLDOWN_S, DEFAULT_JWKS_MAX_AGE_S, check_jwks_uri

log = logging.getLogger("local.jwt_authorizer")  # one logger for the package, as when it was one module

DEFAULT_FETCH_TIMEOUT_S: Final = 3.0
DEFAULT_JWKS_MAX_BYTES: Final = 256 * 1024
# A caller waits for a fetch this much past its deadline, for the fetch's thread to report its end (the default
# fetch ends at its deadline: its watchdog shuts the socket).
FETCH_GRACE_S: Final = 0.5


def _connection(uri: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection for `uri` (through the environment's https proxy for a host it does not bypass, as urllib would
    go; never for loopback) and the request target."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "http":  # loopback only (check_jwks_uri)
        return http.client.HTTPConnection(host, parts.port or 80, timeout=timeout_s), target
    context = ssl.create_default_context()
    proxy = urllib.request.getproxies().get("https")
    if proxy and not is_loopback_host(host) and not urllib.request.proxy_bypass(host):
        proxied = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        conn = http.client.HTTPSConnection(
            proxied.hostname or "", proxied.port or 8080, timeout=timeout_s, context=context
        )
        conn.set_tunnel(host, parts.port or 443)
        return conn, target
    return http.client.HTTPSConnection(host, parts.port or 443, timeout=timeout_s, context=context), target


def fetch_url(
    uri: str, *, timeout_s: float = DEFAULT_FETCH_TIMEOUT_S, max_bytes: int = DEFAULT_JWKS_MAX_BYTES
) -> bytes:
    """GET `uri` and return the body of a 200 answer; raise on anything else (a redirect is not followed: the keys
    must come from the configured URL), past `max_bytes`, or past `timeout_s` in all: a watchdog shuts the socket
    at the deadline, so a server that drips its head or body a byte at a time cannot hold the fetch longer."""
    check_jwks_uri(uri)
    deadline = time.monotonic() + timeout_s
    conn, target = _connection(uri, timeout_s)
    expired = threading.Event()

    def give_up() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it, in whatever part of the answer

    watchdog = threading.Timer(timeout_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("GET", target, headers={"Accept": "application/json", "User-Agent": "cappi-local"})
        response = conn.getresponse()
        if response.status != 200:
            raise OSError(f"HTTP Error {response.status}: JWKS answered {response.status}")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise OSError(f"JWKS too large ({declared} bytes)")
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(16 * 1024):  # what has come, not 16 KB: the deadline is checked in between
            if time.monotonic() > deadline:
                break
            size += len(chunk)
            if size > max_bytes:
                raise OSError(f"JWKS larger than {max_bytes} bytes")
            chunks.append(chunk)
        if expired.is_set() or time.monotonic() > deadline:
            raise TimeoutError(f"JWKS fetch took longer than {timeout_s:g} s")
        return b"".join(chunks)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or time.monotonic() > deadline:
            raise TimeoutError(f"JWKS fetch took longer than {timeout_s:g} s") from exc
        raise
    finally:
        watchdog.cancel()
        conn.close()


def parse_jwks(document: bytes) -> dict[str, PyJWK]:
    """RSA signing keys of a JWKS document by `kid`, parsed once. Raises ValueError when it is not a JWKS."""
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' array)")
    keys: dict[str, PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue  # first key of a kid wins; a later duplicate cannot shadow it
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            # Bound to RS256 here, so PyJWT verifies with RS256 whatever a token's header says.
            keys[kid] = PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            log.warning("jwks key skipped: unusable RSA key", extra={"kid": kid})
    return keys


class JwksCache:
    """The issuer's signing keys by `kid`, fetched on first use and kept parsed.

    A fetch happens when there are no keys yet, when the keys are older than `max_age_s`, or when a token names a
    `kid` the cache does not hold (a rotation). All fetches share one cooldown: at most one every `cooldown_s`,
    so a flood of tokens with random `kid`s costs one fetch, not one each. A failed fetch keeps the old keys.
    Fetches run on a thread of their own, so nobody who does not need one waits for it (see `get`).

    Not `jwt.PyJWKClient` (2.15): its cooldown starts only after a successful fetch (a down issuer gets one fetch
    per request), its expired cache is dropped before the refetch (a failed refetch loses the keys), it reads
    `time.monotonic` itself (no clock to inject) and its fetch has no size limit.
    """

    def __init__(
        self,
        uri: str,
        *,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cooldown_s: float = DEFAULT_JWKS_COOLDOWN_S,
        max_age_s: float = DEFAULT_JWKS_MAX_AGE_S,
        timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
        max_bytes: int = DEFAULT_JWKS_MAX_BYTES,
    ) -> None:
        if fetch is None:
            check_jwks_uri(uri)  # an injected fetch may serve any name (tests); the real one only https/loopback

            def fetch(u: str) -> bytes:
                return fetch_url(u, timeout_s=timeout_s, max_bytes=max_bytes)

        self.uri = uri
        self._fetch = fetch
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._max_age_s = max_age_s
        # Replaced whole, never mutated, so readers need no lock.
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, for the cooldown
        self._timeout_s = timeout_s  # how long a caller waits for a fetch: the default fetch's own deadline
        self._fetch_lock = threading.Lock()  # guards `_running` and `_attempted_at`
        self._running: tuple[threading.Event, float] | None = None  # the fetch under way: its end, its deadline
        self.fetches = 0
        self.fetch_failures = 0
        self.last_error: str | None = None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def key_set(self) -> Mapping[str, PyJWK]:
        """The keys now held: a mapping replaced whole by every successful fetch, so its identity tells whether
        the keys were refetched since it was last looked at."""
        return self._keys

    def get(self, kid: str) -> PyJWK | None:
        """The key for `kid`, fetching the JWKS first when due and allowed; None when it is not known.

        Fetches run beside the caller, on a thread of their own. A caller that needs the fetch (an unknown `kid`)
        waits for it until its deadline at most; on a thread that may not wait (the gateway's event loop) it gets
        `WouldWait` instead, and the gateway asks again from a thread. A known key past its maximum age is still
        good while it is refetched: nobody waits for that fetch."""
        key = self._keys.get(kid)
        if key is not None and not self._stale(self._clock()):
            return key  # the warm path: one dict lookup, no lock
        if key is not None:
            running = self._fetch_beside(joined=False)
            if running is None or waiting_refused():
                return key
        else:
            running = self._fetch_beside(joined=True)
            if running is None:  # cooling down: what we hold is the answer
                return self._keys.get(kid)
            if waiting_refused():
                raise WouldWait(f"the issuer's keys are being fetched for kid {kid!r}")
        done, deadline = running
        done.wait(max(0.0, deadline - time.monotonic()))
        return self._keys.get(kid)

    def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (startup, operator action), and wait for it until its deadline at most.
        True when the keys were replaced."""
        before = self._keys
        running = self._fetch_beside(joined=True, force=True)
        if running is not None:
            done, deadline = running
            done.wait(max(0.0, deadline - time.monotonic()))
        return self._keys is not before

    def _fetch_beside(self, *, joined: bool, force: bool = False) -> tuple[threading.Event, float] | None:
        """The fetch under way (`joined`: a fetch started by another caller counts; else only this call's own),
        started now on a thread of its own when none is and the cooldown allows: its end, and when waiting for
        it stops (time.monotonic()). None when there is none to wait for."""
        with self._fetch_lock:
            if self._running is not None:
                return self._running if joined else None
            now = self._clock()
            if not force and self._attempted_at is not None and now - self._attempted_at < self._cooldown_s:
                return None
            self._attempted_at = now
            self.fetches += 1
            running = (threading.Event(), time.monotonic() + self._timeout_s + FETCH_GRACE_S)
            self._running = running
        try:
            threading.Thread(target=self._refresh, args=(now, running[0]), name="jwks-fetch", daemon=True).start()
        except RuntimeError:  # no thread to be had: no fetch this time, as when it fails
            self._end_fetch(running[0])
            return None
        return running

    def _end_fetch(self, done: threading.Event) -> None:
        with self._fetch_lock:
            self._running = None
        done.set()

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._max_age_s

    def _refresh(self, now: float, done: threading.Event) -> None:
        try:
            keys = parse_jwks(self._fetch(self.uri))
        except Exception as exc:  # any failure: keep serving the keys we have
            self.fetch_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("jwks fetch failed, keeping %d cached keys", len(self._keys), extra={"error": self.last_error})
        else:
            self._keys = keys
            self._fetched_at = now
            self.last_error = None
        finally:
            self._end_fetch(done)
