"""`CappiClient`: the open call IDs of one technician, with the token, retry and caching work done for the app.

Thread safety: one client is meant to be shared by every thread of an app. `requests.Session` is not documented
as thread-safe, so each thread gets a Session of its own (its own keep-alive connections), created on first use;
the token, the ETag cache and the session registry are guarded by locks. `close()` closes every thread's Session.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import requests

from cappi_client import ids
from cappi_client._version import VERSION
from cappi_client.environments import Environment, resolve
from cappi_client.errors import ApiError, ProtocolError, TransportError, api_error_class
from cappi_client.retry import (
    Clock,
    Deadline,
    Retryable,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)
from cappi_client.tokens import Credentials, FileTokenCache, Token, TokenKey, TokenProvider

log = logging.getLogger("cappi_client")

USER_AGENT = f"cappi-client/{VERSION} python-requests/{requests.__version__}"
_SHOWN = 200  # characters of an unexpected body quoted in an error


class _Sessions:
    """One requests.Session per thread, all known so `close()` can close them.

    Held weakly: a Session belongs to its thread's `threading.local`, so when a thread ends its Session is freed
    with it, and an app that starts a thread per job does not pile up Sessions and open connections.
    """

    def __init__(self, factory: Callable[[], requests.Session]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._generation = 0

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None or self._local.generation != self._generation:
            session = self._factory()
            with self._lock:
                self._all.add(session)
                self._local.session, self._local.generation = session, self._generation
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._all = list(self._all), weakref.WeakSet()
            self._generation += 1
        for session in sessions:
            session.close()


class _Answers:
    """The last ETag and answer per (club, tech), least recently used dropped first, so a 304 can be answered."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, str], tuple[str, tuple[str, ...]]] = OrderedDict()

    def get(self, key: tuple[int, str]) -> tuple[str, tuple[str, ...]] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[int, str], etag: str | None, calls: tuple[str, ...]) -> None:
        with self._lock:
            if not etag or self._size <= 0:
                self._entries.pop(key, None)
                return
            self._entries[key] = (etag, calls)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class CappiClient:
    """Ask CAPPI which calls are open for a technician.

    >>> client = CappiClient("stage")  # credentials from CAPPI_CLIENT_ID / CAPPI_CLIENT_SECRET
    >>> client.open_calls(212, "AB12")  # doctest: +SKIP
    ['8655R', '8679']

    `environment`: "stage", "prod", "local" (port from CAPPI_PORT) or an `Environment`. `token_cache`: a file path
    to share tokens across processes (None: memory only). `deadline_s` bounds a whole call, token included.
    """

    def __init__(
        self,
        environment: str | Environment = "stage",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        token_cache: str | os.PathLike[str] | None = None,
        deadline_s: float = 30.0,
        request_timeout_s: float = 10.0,
        max_attempts: int = 5,
        etag_cache_size: int = 4096,
        session_factory: Callable[[], requests.Session] = requests.Session,
        clock: Clock | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.environment = resolve(environment)
        credentials = Credentials.resolve(client_id, client_secret)
        self.policy = retry_policy or RetryPolicy(
            deadline_s=deadline_s, max_attempts=max_attempts, request_timeout_s=request_timeout_s
        )
        self._clock = clock or Clock()
        self._sessions = _Sessions(session_factory)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        key = TokenKey.of(self.environment.token_url, credentials, self.environment.audience, scope or "")
        self.tokens = TokenProvider(
            key,
            credentials,
            self._sessions.get,
            policy=self.policy,
            clock=self._clock,
            file_cache=FileTokenCache(token_cache) if token_cache is not None else None,
            headers={"User-Agent": USER_AGENT},
        )
        self._answers = _Answers(etag_cache_size)

    def __repr__(self) -> str:
        return f"CappiClient({self.environment.name!r}, base_url={self.environment.base_url!r})"

    def __enter__(self) -> CappiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connections (the client stays usable: new ones open on the next call)."""
        self._sessions.close()

    def open_calls(self, club_id: int | str, tech_id: str, *, deadline_s: float | None = None) -> list[str]:
        """The IDs of the calls open for `tech_id` of club `club_id`, in CAPPI's order (e.g. `["8655R", "8679"]`).

        Raises InvalidId before any request for an ID CAPPI would refuse, ApiError subclasses for the API's
        refusals (after retrying 429/5xx within the deadline, and one fresh token after a 401), TokenError,
        DeadlineExceeded, TransportError or ProtocolError.
        """
        club = ids.club_id(club_id)
        tech = ids.tech_id(tech_id)
        deadline = Deadline(self.policy.deadline_s if deadline_s is None else deadline_s, self._clock)
        url = self.environment.url_for(club, tech)
        key = (club, tech)
        cached = self._answers.get(key)  # taken once: a 304 is answered from what was sent, whatever happens since
        token = self.tokens.get(deadline)
        response = self._get(url, token, cached, deadline)
        if response.status_code == 401:
            log.debug("open_calls: 401 for a cached token; fetching a fresh one and retrying once")
            self.tokens.invalidate(token)
            token = self.tokens.get(deadline)
            response = self._get(url, token, cached, deadline)
        return self._answer(response, key, cached)

    def _get(
        self, url: str, token: Token, cached: tuple[str, tuple[str, ...]] | None, deadline: Deadline
    ) -> requests.Response:
        headers = {**self._headers, "Authorization": token.authorization}
        if cached is not None:
            headers["If-None-Match"] = cached[0]

        def attempt(timeout: float) -> requests.Response:
            try:
                response = self._sessions.get().get(url, headers=headers, timeout=timeout, allow_redirects=False)
            except requests.RequestException as exc:
                raise Retryable(TransportError(f"{url}: {type(exc).__name__}: {exc}")) from exc
            if is_retryable_status(response.status_code):
                error = _api_error(response, self._clock.time())
                raise Retryable(error, error.retry_after)
            return response

        return with_retries(attempt, what="open_calls", policy=self.policy, clock=self._clock, deadline=deadline)

    def _answer(
        self, response: requests.Response, key: tuple[int, str], cached: tuple[str, tuple[str, ...]] | None
    ) -> list[str]:
        status = response.status_code
        if status == 304:
            if cached is None:
                raise ProtocolError("304 Not Modified without If-None-Match having been sent", status=status)
            return list(cached[1])
        if status != 200:
            raise _api_error(response, self._clock.time())
        calls = parse_call_ids(response.content)
        self._answers.put(key, response.headers.get("ETag"), calls)
        return list(calls)


def parse_call_ids(body: bytes) -> tuple[str, ...]:
    """The call IDs of a 200 body: the flat array `["8655R","8679"]`, or the integration document's nested
    one-result form `[["8679"]]`; anything else is a ProtocolError."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"200 body is not JSON: {_snippet(body)}", status=200) from None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return tuple(data)
    raise ProtocolError(f"200 body is not a JSON array of strings: {_snippet(body)}", status=200)


def _api_error(response: requests.Response, now: float) -> ApiError:
    """The typed error for an error status: CAPPI's `{"error", "message"}` or API Gateway's `{"message"}`."""
    data: Any
    try:
        data = response.json()
    except ValueError:
        data = None
    code = message = None
    if isinstance(data, dict):
        code = data.get("error") if isinstance(data.get("error"), str) else None
        message = data.get("message") if isinstance(data.get("message"), str) else None
    if message is None:
        message = _snippet(response.content) if response.content else (response.reason or "no detail")
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    cls = api_error_class(response.status_code)
    return cls(response.status_code, code, message, retry_after=retry_after, url=response.url)


def _snippet(body: bytes) -> str:
    text = body[:_SHOWN].decode("utf-8", "replace").strip()
    return repr(text + ("\u2026" if len(body) > _SHOWN else ""))
