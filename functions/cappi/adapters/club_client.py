"""HTTP client that fetches one club's open-call feed (DESIGN.md section 4, outbound call rules).

One instance lives for the whole Lambda container so TCP/TLS connections and OAuth tokens are reused between
polls. Every fetch is bounded: connect and read timeouts per request, one deadline over everything a fetch
does (attempts, backoff, redirects, token calls), and a cap on the body before and after decompression.

Nothing this module raises or logs carries a secret, a token or an Authorization value.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import html
import http.client
import json
import logging
import math
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote_plus, urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from cappi.adapters.secrets import SecretNotFound, SecretSource
from cappi.domain.poll import FeedUnavailable
from cappi.domain.registry import ClubAuth, ClubSource, check_url, is_loopback_host

log = logging.getLogger("cappi.club_client")

FETCH_ERROR_CODES = frozenset(
    {
        "insecure_url",
        "connection",
        "timeout",
        "deadline",
        "http_status",
        "auth_failed",
        "redirect_refused",
        "too_large",
        "bad_encoding",
        "truncated",
        "secret_missing",
        "token_endpoint",
    }
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_SIZE = 65536
_INFLATE_STEP = 256 * 1024  # most output one decompress call may produce, so a bomb never balloons at once
_ERROR_BODY_CAP = 4096
_ERROR_SNIPPET_CHARS = 200
_TOKEN_BODY_CAP = 256 * 1024  # token responses are a few KB; more means something is wrong
_DEFAULT_TOKEN_LIFETIME_S = 3600.0
_MIN_SOCKET_TIMEOUT_S = 0.01  # settimeout(0) would switch the socket to non-blocking mode
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a bearer token or API key may hold
_TAG = re.compile(r"<[^>]{0,1000}>")
_CREDENTIAL_WORD = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Control characters, and line/bidi overrides that could make a log line lie about what it says.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]|[\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class ClientLimits:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 120.0
    max_body_bytes: int = 50 * 1024 * 1024
    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_redirects: int = 3
    token_refresh_margin: float = 60.0

    def __post_init__(self) -> None:
        if min(self.connect_timeout, self.read_timeout, self.deadline) <= 0:
            raise ValueError("timeouts and deadline must be positive")
        if self.max_body_bytes <= 0 or self.max_attempts < 1 or self.max_redirects < 0:
            raise ValueError("max_body_bytes and max_attempts must be positive, max_redirects not negative")
        if min(self.backoff_base, self.backoff_cap, self.token_refresh_margin) < 0:
            raise ValueError("backoff and token margin must not be negative")


@dataclass(frozen=True)
class FetchResult:
    body: bytes = field(repr=False)  # up to max_body_bytes; keep it out of reprs that end up in logs
    status: int
    attempts: int
    elapsed_s: float
    url: str
    content_type: str | None
    bytes_on_wire: int


class FeedFetchError(FeedUnavailable):
    """A fetch failed; `code` is one of FETCH_ERROR_CODES, for metrics and alarms."""

    def __init__(self, code: str, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        if code not in FETCH_ERROR_CODES:
            raise ValueError(f"unknown fetch error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.attempts = attempts

    def __repr__(self) -> str:
        return (
            f"FeedFetchError(code={self.code!r}, status={self.status!r}, attempts={self.attempts!r}, "
            f"message={self.message!r})"
        )


class _Failure(Exception):
    """One request went wrong; the retry loop decides whether it is final."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class _Run:
    """State of one fetch: its deadline and the secret strings that must never appear in text we emit."""

    source: ClubSource
    clock: Callable[[], float]
    start: float
    deadline: float
    attempts: int = 0
    sensitive: set[str] = field(default_factory=set)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def protect(self, value: str) -> None:
        self.sensitive.add(value)
        # The same value may come back percent-encoded (a form echo) or base64'd elsewhere.
        self.sensitive.add(quote_plus(value))

    def clean(self, text: str) -> str:
        # Longest first, so a secret that contains another secret is removed whole.
        for value in sorted(self.sensitive, key=len, reverse=True):
            if value:
                text = text.replace(value, "[redacted]")
        return _CREDENTIAL_WORD.sub(r"\1 [redacted]", text)

    def error(self, code: str, message: str, status: int | None = None) -> FeedFetchError:
        return FeedFetchError(
            code, f"source {self.source.name!r}: {self.clean(message)}", status=status, attempts=self.attempts
        )

    def deadline_failure(self, during: str) -> _Failure:
        return _Failure("deadline", f"deadline of {self.deadline - self.start:g}s passed {during}")


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


class ClubFeedClient:
    """Fetches `ClubSource.feed_url` under the outbound call rules. Create once per container and reuse."""

    def __init__(
        self,
        secrets: SecretSource,
        limits: ClientLimits = ClientLimits(),
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "CAPPI/1.0",
    ) -> None:
        self.limits = limits
        self._secrets = secrets
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._user_agent = user_agent
        self._tokens: dict[tuple[str, str, str | None, str | None], _Token] = {}
        self._tokens_lock = threading.Lock()

    def fetch(self, source: ClubSource) -> FetchResult:
        """GET the source's feed, retrying transient failures; raise FeedFetchError when it cannot be had."""
        start = self._clock()
        run = _Run(source=source, clock=self._clock, start=start, deadline=start + self.limits.deadline)
        url = source.feed_url
        problem = check_url(url)
        if problem:
            raise run.error("insecure_url", f"feed URL {_loggable(url)} {problem}")

        budget = self.limits.max_attempts
        retries = 0
        renewed_token = False
        while True:
            if run.expired():
                raise run.error("deadline", run.deadline_failure("before the next attempt").message)
            headers = self._request_headers(source, run)
            run.attempts += 1
            try:
                result = self._attempt(url, headers, run)
            except _Failure as failure:
                self._log_failure(run, url, failure)
                if failure.status == 401 and source.auth.type == "oauth2_client_credentials" and not renewed_token:
                    # The cached token may have been revoked early; one fresh token gets one more try,
                    # outside the budget for transient errors.
                    renewed_token = True
                    budget += 1
                    self._forget_token(source.auth)
                    continue
                if not failure.retryable or run.attempts >= budget:
                    raise run.error(failure.code, failure.message, failure.status) from None
                wait = failure.retry_after
                if wait is None:
                    ceiling = min(self.limits.backoff_cap, self.limits.backoff_base * 2**retries)
                    wait = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
                if wait >= run.remaining():
                    # Fail now rather than sleep into the deadline; an HTTP status stays the headline.
                    code = "http_status" if failure.code == "http_status" else "deadline"
                    message = f"{failure.message}; waiting {wait:.1f}s for a retry would pass the deadline"
                    raise run.error(code, message, failure.status) from None
                retries += 1
                self._sleep(wait)
                continue
            log.info(
                "club feed %s: GET %s -> %s on attempt %d after %.3fs (%d bytes on the wire)",
                source.name,
                _loggable(result.url),
                result.status,
                run.attempts,
                result.elapsed_s,
                result.bytes_on_wire,
                extra=_log_fields(source, result.url, result.status, run, "ok"),
            )
            return result

    # --- one attempt: the GET and any same-origin redirects ---

    def _attempt(self, url: str, headers: Mapping[str, str], run: _Run) -> FetchResult:
        current = url
        visited = {url}
        hops = 0
        while True:
            resp = self._send("GET", current, headers, run)
            try:
                status = resp.status_code
                if status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    self._error_snippet(resp, run)  # drain a little so a short body keeps the connection usable
                    current = self._redirect_target(current, location, hops, visited)
                    visited.add(current)
                    hops += 1
                    continue
                if status == 200:
                    body, wire = self._read_body(resp, run, self.limits.max_body_bytes)
                    return FetchResult(
                        body=body,
                        status=status,
                        attempts=run.attempts,
                        elapsed_s=self._clock() - run.start,
                        url=current,
                        content_type=resp.headers.get("Content-Type"),
                        bytes_on_wire=wire,
                    )
                raise self._status_failure(current, resp, run)
            finally:
                resp.close()

    def _redirect_target(self, current: str, location: str | None, hops: int, visited: set[str]) -> str:
        where = _loggable(current)
        if not location:
            raise _Failure("redirect_refused", f"redirect from {where} has no Location")
        target = urljoin(current, location.strip())
        if _origin(target) != _origin(current):
            # Credentials ride on every feed request, so they must never follow a redirect off the origin.
            raise _Failure("redirect_refused", f"redirect from {where} to another origin {_loggable(target)}")
        problem = check_url(target)
        if problem:
            raise _Failure("redirect_refused", f"redirect target {_loggable(target)} {problem}")
        if target in visited:
            raise _Failure("redirect_refused", f"redirect loop at {_loggable(target)}")
        if hops >= self.limits.max_redirects:
            raise _Failure("redirect_refused", f"more than {self.limits.max_redirects} redirects from {where}")
        return target

    def _status_failure(self, url: str, resp: requests.Response, run: _Run) -> _Failure:
        status = resp.status_code
        snippet = self._error_snippet(resp, run)
        message = f"HTTP {status} from {_loggable(url)}" + (f": {snippet}" if snippet else "")
        if status in (401, 403):
            return _Failure("auth_failed", message, status=status)
        if status == 429 or 500 <= status <= 599:
            retry_after = _retry_after_s(resp.headers.get("Retry-After"))
            return _Failure("http_status", message, status=status, retryable=True, retry_after=retry_after)
        return _Failure("http_status", message, status=status)

    # --- the wire ---

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        run: _Run,
        data: Mapping[str, str] | None = None,
    ) -> requests.Response:
        problem = check_url(url)
        if problem:  # every request, not only the first: callers hand in redirect and token URLs too
            raise _Failure("insecure_url", f"URL {_loggable(url)} {problem}")
        remaining = run.remaining()
        if remaining <= 0:
            raise run.deadline_failure(f"before {method} {_loggable(url)}")
        timeout = (min(self.limits.connect_timeout, remaining), min(self.limits.read_timeout, remaining))
        settings = self._session.merge_environment_settings(url, {}, True, None, None)
        # Loopback never goes through a proxy: in local mode a stray HTTP_PROXY would otherwise see credentials.
        proxies = {} if is_loopback_host(urlsplit(url).hostname) else settings["proxies"]
        where = f"{method} {_loggable(url)}"
        # The adapter, not Session.send: with allow_redirects=False Session.send still reads a whole 3xx body
        # into memory (to prepare Response.next), with no cap and no deadline.
        adapter = self._session.get_adapter(url)
        try:
            # Preparing validates header values and quotes a bad one in its error, so it is inside the try.
            prepared = requests.Request(method, url, headers=dict(headers), data=data).prepare()
            return adapter.send(
                prepared,
                stream=True,
                timeout=timeout,
                verify=settings["verify"],
                cert=settings["cert"],
                proxies=proxies,
            )
        except requests.exceptions.ConnectTimeout:
            raise self._timeout_failure(run, f"connect timed out: {where}") from None
        except requests.exceptions.SSLError as exc:
            # Certificate and handshake failures do not heal within one poll.
            raise _Failure("connection", f"TLS failure: {where} ({_root_cause(exc)})") from None
        except requests.exceptions.ConnectionError as exc:
            raise _Failure("connection", f"connection failed: {where} ({_root_cause(exc)})", retryable=True) from None
        except requests.exceptions.ReadTimeout:
            raise self._timeout_failure(run, f"no response headers in time: {where}") from None
        except requests.exceptions.RequestException as exc:
            # Their messages may quote header values, so only the type is kept.
            raise _Failure("connection", f"request failed: {where} ({type(exc).__name__})") from None

    def _timeout_failure(self, run: _Run, message: str) -> _Failure:
        if run.expired():
            return run.deadline_failure(f"({message})")
        return _Failure("timeout", message, retryable=True)

    def _read_body(self, resp: requests.Response, run: _Run, cap: int) -> tuple[bytes, int]:
        """Read and decode the whole body under the cap and the deadline; return (body, bytes on the wire)."""
        decoder = _BodyDecoder(resp.headers.get("Content-Encoding"), cap)
        declared = _declared_length(resp)
        if declared is not None and declared > cap:
            raise _Failure("too_large", f"Content-Length {declared} exceeds the cap of {cap} bytes")
        raw = resp.raw
        wire = 0
        while True:
            remaining = run.remaining()
            if remaining <= 0:
                raise run.deadline_failure(f"while reading the body ({wire} bytes so far)")
            # A server dripping bytes never trips the per-read timeout; bounding each read by what is left
            # of the deadline (and checking between reads) stops it anyway.
            _limit_socket_timeout(raw, min(self.limits.read_timeout, remaining))
            try:
                chunk = raw.read1(_READ_SIZE, decode_content=False) or b""
            except (ReadTimeoutError, TimeoutError):
                raise self._timeout_failure(run, f"body read timed out after {wire} bytes") from None
            except (Urllib3Error, http.client.HTTPException, OSError) as exc:
                raise _Failure(
                    "truncated", f"connection broke after {wire} bytes of the body ({_root_cause(exc)})", retryable=True
                ) from None
            if not chunk:
                break
            wire += len(chunk)
            if wire > cap:
                raise _Failure("too_large", f"body exceeds the cap of {cap} bytes")
            decoder.feed(chunk)
        # urllib3 already raises on a short body; this also holds for an adapter that turned that check off.
        if declared is not None and wire < declared:
            raise _Failure("truncated", f"body ended after {wire} of {declared} bytes", retryable=True)
        return decoder.finish(), wire

    def _error_snippet(self, resp: requests.Response, run: _Run) -> str:
        """A short, cleaned excerpt of an error body, read best-effort and never more than a few KB."""
        raw = resp.raw
        data = bytearray()
        complete = False
        try:
            while len(data) <= _ERROR_BODY_CAP:
                remaining = run.remaining()
                if remaining <= 0:
                    break
                _limit_socket_timeout(raw, min(self.limits.read_timeout, remaining))
                chunk = raw.read1(_ERROR_BODY_CAP + 1 - len(data), decode_content=False)
                if not chunk:
                    complete = True
                    break
                data += chunk
        except (Urllib3Error, http.client.HTTPException, OSError):
            pass  # the status already tells the story; the excerpt is a bonus
        encoding = (resp.headers.get("Content-Encoding") or "").strip().lower()
        if data and encoding in ("gzip", "x-gzip", "deflate"):
            try:
                data = bytearray(zlib.decompressobj(wbits=47).decompress(bytes(data), _ERROR_BODY_CAP))
            except zlib.error:
                return ""
        text = bytes(data[:_ERROR_BODY_CAP]).decode("utf-8", errors="replace")
        if not complete and run.sensitive:
            # A secret cut in half at the end of what was read would escape redaction; drop that tail.
            text = text[: max(0, len(text) - max(len(s) for s in run.sensitive))]
        return _summarize(run.clean(text), run)

    # --- authentication ---

    def _request_headers(self, source: ClubSource, run: _Run) -> CaseInsensitiveDict[str]:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({"User-Agent": self._user_agent})
        headers["Accept"] = "application/json"
        headers.update(source.headers)
        # Fixed after the registry's headers: the body can only be decoded in the codings asked for.
        headers["Accept-Encoding"] = "gzip, deflate"
        headers.update(self._auth_headers(source.auth, run))
        return headers

    def _auth_headers(self, auth: ClubAuth, run: _Run) -> dict[str, str]:
        kind = auth.type
        if kind == "none":
            return {}
        if kind == "bearer":
            return {"Authorization": f"Bearer {self._header_secret(auth, run)}"}
        if kind == "api_key":
            if not auth.header:
                raise run.error("secret_missing", "api_key auth names no header")
            return {auth.header: self._header_secret(auth, run)}
        if kind == "basic":
            user, password = self._basic_credentials(auth, run)
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            run.protect(password)
            run.protect(encoded)
            return {"Authorization": f"Basic {encoded}"}
        if kind == "oauth2_client_credentials":
            return {"Authorization": f"Bearer {self._access_token(auth, run)}"}
        raise run.error("secret_missing", f"unsupported auth type {kind!r}")

    def _secret(self, auth: ClubAuth, run: _Run) -> str:
        name = auth.secret
        if not name:
            raise run.error("secret_missing", f"auth type {auth.type!r} names no secret")
        try:
            value = self._secrets.get(name)
        except SecretNotFound:
            raise run.error("secret_missing", f"secret {name!r} not found") from None
        except Exception as exc:
            # The value was never obtained, so the error cannot quote it.
            reason = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise run.error(
                "secret_missing", f"secret {name!r} could not be read: {type(exc).__name__} {reason}"
            ) from None
        if not isinstance(value, str) or not value.strip():
            raise run.error("secret_missing", f"secret {name!r} is empty")
        run.protect(value)
        # Secrets written with `echo` or from a file often end in a newline, which no header may carry.
        value = value.strip()
        run.protect(value)
        return value

    def _header_secret(self, auth: ClubAuth, run: _Run) -> str:
        value = self._secret(auth, run)
        if not _HEADER_TOKEN.fullmatch(value):
            raise run.error(
                "secret_missing",
                f"secret {auth.secret!r} holds characters that cannot be sent in an HTTP header (visible ASCII only)",
            )
        return value

    def _basic_credentials(self, auth: ClubAuth, run: _Run) -> tuple[str, str]:
        value = self._secret(auth, run)
        unusable = run.error(
            "secret_missing",
            f"secret {auth.secret!r} is not 'user:password' or a JSON object with username and password",
        )
        if value.startswith("{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise unusable from None
            user = parsed.get("username") if isinstance(parsed, dict) else None
            password = parsed.get("password") if isinstance(parsed, dict) else None
            if not isinstance(user, str) or not isinstance(password, str):
                raise unusable
        else:
            user, sep, password = value.partition(":")
            if not sep:
                raise unusable
        if not user or ":" in user or any(c in user + password for c in "\r\n\0"):
            raise unusable
        return user, password

    def _access_token(self, auth: ClubAuth, run: _Run) -> str:
        key = _token_key(auth)
        with self._tokens_lock:
            cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            run.protect(cached.value)
            return cached.value
        issued_at = self._clock()
        value, lifetime = self._request_token(auth, run)
        margin = min(self.limits.token_refresh_margin, lifetime / 2)
        with self._tokens_lock:
            self._tokens[key] = _Token(value=value, refresh_at=issued_at + lifetime - margin)
        return value

    def _forget_token(self, auth: ClubAuth) -> None:
        with self._tokens_lock:
            self._tokens.pop(_token_key(auth), None)

    def _request_token(self, auth: ClubAuth, run: _Run) -> tuple[str, float]:
        token_url = auth.token_url or ""
        problem = check_url(token_url)
        if problem:
            raise run.error("insecure_url", f"token URL {_loggable(token_url)} {problem}")
        if not auth.client_id:
            raise run.error("token_endpoint", "oauth2 auth names no client_id")
        form = {"grant_type": "client_credentials", "client_id": auth.client_id}
        form["client_secret"] = self._secret(auth, run)
        if auth.scope:
            form["scope"] = auth.scope
        if auth.audience:
            form["audience"] = auth.audience
        headers = {"User-Agent": self._user_agent, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
        where = _loggable(token_url)
        try:
            resp = self._send("POST", token_url, headers, run, data=form)
            try:
                if resp.status_code != 200:
                    snippet = self._error_snippet(resp, run)
                    raise _Failure(
                        "token_endpoint",
                        f"HTTP {resp.status_code}" + (f": {snippet}" if snippet else ""),
                        status=resp.status_code,
                    )
                body, _ = self._read_body(resp, run, min(_TOKEN_BODY_CAP, self.limits.max_body_bytes))
            finally:
                resp.close()
        except _Failure as failure:
            code = "deadline" if failure.code == "deadline" else "token_endpoint"
            log.warning(
                "club feed %s: token request to %s failed: %s",
                run.source.name,
                where,
                run.clean(failure.message),
                extra=_log_fields(run.source, token_url, failure.status, run, failure.code),
            )
            raise run.error(code, f"token request to {where} failed: {failure.message}", failure.status) from None

        token, lifetime = _parse_token_response(body)
        if token is None:
            raise run.error("token_endpoint", f"token response from {where} has no usable access_token/expires_in")
        run.protect(token)
        log.info(
            "club feed %s: new access token from %s, valid %.0fs",
            run.source.name,
            where,
            lifetime,
            extra=_log_fields(run.source, token_url, 200, run, "token"),
        )
        return token, lifetime

    def _log_failure(self, run: _Run, url: str, failure: _Failure) -> None:
        log.warning(
            "club feed %s: GET %s failed on attempt %d after %.3fs: %s (%s)",
            run.source.name,
            _loggable(url),
            run.attempts,
            self._clock() - run.start,
            failure.code,
            run.clean(failure.message),
            extra=_log_fields(run.source, url, failure.status, run, failure.code),
        )


class _BodyDecoder:
    """Undoes gzip/deflate incrementally, never holding more than `cap` decoded bytes."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise _Failure("bad_encoding", f"unsupported Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else "identity"
        self._cap = cap
        self._out = bytearray()
        # wbits=47 accepts both gzip and zlib framing, whichever the header says.
        self._inflater = zlib.decompressobj(wbits=47) if self._coding != "identity" else None
        # Some servers send raw deflate under "deflate"; that shows in the first two bytes, kept until then.
        self._head: bytearray | None = bytearray() if self._coding == "deflate" else None

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._out += data
            if len(self._out) > self._cap:
                raise _Failure("too_large", f"body exceeds the cap of {self._cap} bytes")
            return
        if self._head is not None:
            self._head += data
        try:
            self._inflate(data)
        except zlib.error:
            if self._head is None or self._out:
                raise _Failure("bad_encoding", f"corrupt {self._coding} body") from None
            head, self._head = bytes(self._head), None
            self._inflater = zlib.decompressobj(wbits=-15)
            try:
                self._inflate(head)
            except zlib.error:
                raise _Failure("bad_encoding", f"corrupt {self._coding} body") from None
        if self._head is not None and len(self._head) >= 2:
            self._head = None

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        pending = data
        while pending:
            if self._inflater.eof:
                if self._coding == "deflate":
                    raise zlib.error("data after the end of the deflate stream")
                # Concatenated gzip members are one valid gzip body.
                self._inflater = zlib.decompressobj(wbits=31)
            room = self._cap + 1 - len(self._out)
            piece = self._inflater.decompress(pending, min(room, _INFLATE_STEP))
            self._out += piece
            if len(self._out) > self._cap:
                raise _Failure("too_large", f"decompressed body exceeds the cap of {self._cap} bytes")
            pending = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        if self._inflater is not None and not self._inflater.eof:
            raise _Failure("bad_encoding", f"{self._coding} body ends before the end of the compressed stream")
        return bytes(self._out)


def _parse_token_response(body: bytes) -> tuple[str | None, float]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, 0.0
    if not isinstance(doc, dict):
        return None, 0.0
    token = doc.get("access_token")
    if not isinstance(token, str) or not _HEADER_TOKEN.fullmatch(token):
        return None, 0.0
    expires_in = doc.get("expires_in", _DEFAULT_TOKEN_LIFETIME_S)
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in.strip())
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not math.isfinite(expires_in):
        return None, 0.0
    return token, max(0.0, float(expires_in))


def _token_key(auth: ClubAuth) -> tuple[str, str, str | None, str | None]:
    return (auth.token_url or "", auth.client_id or "", auth.scope, auth.audience)


def _declared_length(resp: requests.Response) -> int | None:
    if "chunked" in (resp.headers.get("Transfer-Encoding") or "").lower():
        return None  # framing comes from the chunks; a Content-Length beside them is meaningless
    value = (resp.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _limit_socket_timeout(raw: object, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        return  # the deadline is still checked between reads
    with contextlib.suppress(OSError, AttributeError):
        sock.settimeout(max(seconds, _MIN_SOCKET_TIMEOUT_S))


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value[:12])  # an absurd number of digits still means "too long to wait"
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port or default)


def _loggable(url: str) -> str:
    """scheme://host[:port]/path: no user info, query or fragment, which is where credentials hide."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _summarize(text: str, run: _Run) -> str:
    text = html.unescape(_TAG.sub(" ", text))
    text = " ".join(_UNPRINTABLE.sub(" ", text).split())
    # Cleaned again: stripping tags and entities can join a secret that markup had split.
    text = run.clean(text)
    if len(text) > _ERROR_SNIPPET_CHARS:
        text = text[: _ERROR_SNIPPET_CHARS - 1] + "\u2026"
    return text


def _root_cause(exc: BaseException) -> str:
    """The innermost error's type and OS reason, without messages that might quote a request."""
    seen: set[int] = set()
    current: BaseException | None = exc
    innermost: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        innermost = current
        reason = getattr(current, "reason", None)
        nested = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = reason if isinstance(reason, BaseException) else nested or current.__cause__ or current.__context__
    if isinstance(innermost, OSError) and innermost.strerror:
        return f"{type(innermost).__name__}: {innermost.strerror}"
    return type(innermost).__name__


def _log_fields(source: ClubSource, url: str, status: int | None, run: _Run, outcome: str) -> dict[str, object]:
    return {
        "club_source": source.name,
        "url": _loggable(url),
        "status": status,
        "attempt": run.attempts,
        "elapsed_s": round(run.clock() - run.start, 3),
        "outcome": outcome,
    }
