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
from local.jwt_authorizer.config import DEFAULT_JWKS_COOLDOWN_S, DEFAULT_JWKS_MAX_AGE_S, check_jwks_uri

log = logging.getLogger("local.jwt_authorizer")  # one logger for the package, as when it was one module

DEFAULT_FETCH_TIMEOUT_S: Final = 3.0
DEFAULT_JWKS_MAX_BYTES: Final = 256 * 1024


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
        self._fetch_lock = threading.Lock()
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
        """The key for `kid`, fetching the JWKS first when due and allowed; None when it is not known."""
        key = self._keys.get(kid)
        if key is not None and not self._stale(self._clock()):
            return key  # the warm path: one dict lookup, no lock
        # A known key past max age is still good while another request refetches: do not queue behind that fetch.
        if not self._fetch_lock.acquire(blocking=key is None):
            return key
        try:  # one fetch at a time; requests for an unknown kid wait for it and then see its result
            now = self._clock()
            key = self._keys.get(kid)
            if key is not None and not self._stale(now):
                return key
            if self._attempted_at is None or now - self._attempted_at >= self._cooldown_s:
                self._refresh(now)
            return self._keys.get(kid)
        finally:
            self._fetch_lock.release()

    def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (startup, operator action). True when the keys were replaced."""
        with self._fetch_lock:
            return self._refresh(self._clock())

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._max_age_s

    def _refresh(self, now: float) -> bool:
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self.uri))
        except Exception as exc:  # any failure: keep serving the keys we have
            self.fetch_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("jwks fetch failed, keeping %d cached keys", len(self._keys), extra={"error": self.last_error})
            return False
        self._keys = keys
        self._fetched_at = now
        self.last_error = None
        return True
