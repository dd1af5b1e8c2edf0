"""ClubFeedClient: one fetch of a club's feed, attempt by attempt, until it succeeds, fails for good or runs
out of time. The request itself, redirects, bodies and credentials are each handled by their own module."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests
from requests.structures import CaseInsensitiveDict

from cappi.adapters.club_client.auth import Authenticator
from cappi.adapters.club_client.body import BodyReader
from cappi.adapters.club_client.client_cert import ClientCertificates
from cappi.adapters.club_client.credentials import SecretReader
from cappi.adapters.club_client.deadline import Deadline
from cappi.adapters.club_client.decoding import ACCEPT_ENCODING
from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.fetch_run import FetchRun
from cappi.adapters.club_client.oauth2 import ClientCredentialsTokens
from cappi.adapters.club_client.redaction import install_log_redaction, loggable_url
from cappi.adapters.club_client.redirects import REDIRECT_STATUSES, RedirectTrail
from cappi.adapters.club_client.retry_policy import backoff_s, status_failure
from cappi.adapters.club_client.transport import Transport
from cappi.adapters.secrets import SecretSource
from cappi.domain.body_record import validator
from cappi.domain.registry import ClubSource, check_url

log = logging.getLogger("cappi.club_client")  # the name the ingest handler routes into its structured log
install_log_redaction()  # every record of this logger and urllib3's goes through the running fetch's redactor


@dataclass(frozen=True)
class ClientLimits:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 120.0
    max_body_bytes: int = 96 * 1024 * 1024  # cappi.settings.DEFAULT_MAX_BODY_BYTES (a test holds them equal)
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
    url: str  # where the body came from, as FetchRun.where shows it (redacted: it is for reports and logs)
    content_type: str | None
    bytes_on_wire: int
    sent_at_ms: int | None = None  # wall-clock ms when the fetch first asked the club (FetchRun.mark_sent)
    # The response's validators, to send back on the next poll; `not_modified`: a 304 to them (the body is empty).
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    # The fetch's Redactor.clean, for what the poll shows of the body (a rejected row's value may hold a secret).
    redact: Callable[..., str] = field(default=lambda text, cut_short=False: text, repr=False, compare=False)


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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._wall_clock = wall_clock  # for `sent_at_ms`, which orders overlapping polls; `clock` runs deadlines
        self._sleep = sleep
        self._user_agent = user_agent
        self._transport = Transport(
            session or requests.Session(), connect_timeout=limits.connect_timeout, read_timeout=limits.read_timeout
        )
        self._body = BodyReader(limits.read_timeout)
        credentials = SecretReader(secrets)
        tokens = ClientCredentialsTokens(
            credentials,
            self._transport,
            self._body,
            clock=clock,
            user_agent=user_agent,
            refresh_margin=limits.token_refresh_margin,
            max_body_bytes=limits.max_body_bytes,
        )
        self._auth = Authenticator(credentials, tokens)
        self._certificates = ClientCertificates(credentials)

    def fetch(self, source: ClubSource, validators: Validators | None = None) -> FetchResult:
        """GET the source's feed, retrying transient failures; raise FeedFetchError when it cannot be had.

        `validators`: the `etag` / `last_modified` of the response whose body the poll already has; they are sent as
        `If-None-Match` / `If-Modified-Since`, and a 304 comes back as a FetchResult with `not_modified` set. A 304
        to a request that sent neither is a failure (`unexpected_not_modified`).
        """
        run = FetchRun(source=source, deadline=Deadline(self._clock, self.limits.deadline), wall_clock=self._wall_clock)
        with run.redactor.active():
            return self._fetch(source, run, _conditional_headers(validators))

    def _fetch(self, source: ClubSource, run: FetchRun, conditional: Mapping[str, str]) -> FetchResult:
        url = source.feed_url
        problem = check_url(url)
        if problem:
            raise run.error("insecure_url", f"feed URL {loggable_url(url)} {problem}")
        cert = self._certificates.files(source.auth, run)

        # Not urllib3's Retry: it cannot hold all attempts to one deadline or renew an OAuth2 token after a 401.
        budget = self.limits.max_attempts
        retries = 0
        renewed_token = False
        while True:
            if run.deadline.expired():
                raise run.error("deadline", run.deadline.failure("before the next attempt").message)
            headers = self._request_headers(source, run)
            headers.update(conditional)
            run.attempts += 1
            try:
                result = self._attempt(url, headers, run, cert)
            except AttemptFailure as failure:
                self._log_failure(run, url, failure)
                if failure.status == 401 and self._auth.can_renew(source.auth) and not renewed_token:
                    # The cached token may have been revoked early; one fresh token gets one more try,
                    # outside the budget for transient errors.
                    renewed_token = True
                    budget += 1
                    self._auth.renew(source.auth)
                    continue
                if not failure.retryable or run.attempts >= budget:
                    raise run.error(failure.code, failure.message, failure.status) from None
                wait = failure.retry_after
                if wait is None:
                    wait = backoff_s(retries, self.limits.backoff_base, self.limits.backoff_cap)
                if wait >= run.deadline.remaining():
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
                result.url,  # already FetchRun.where's rendering
                result.status,
                run.attempts,
                result.elapsed_s,
                result.bytes_on_wire,
                extra=run.log_fields(result.url, result.status, "ok"),
            )
            return result

    def _request_headers(self, source: ClubSource, run: FetchRun) -> CaseInsensitiveDict[str]:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({"User-Agent": self._user_agent})
        headers["Accept"] = "application/json"
        headers.update(source.headers)
        # Fixed after the registry's headers: the body can only be decoded in the codings asked for.
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        headers.update(self._auth.headers(source.auth, run))
        return headers

    def _attempt(
        self, url: str, headers: Mapping[str, str], run: FetchRun, cert: tuple[str, str] | None
    ) -> FetchResult:
        """One attempt: the GET and any same-origin redirects, each hop with the same headers and certificate."""
        trail = RedirectTrail(url, self.limits.max_redirects)
        while True:
            run.mark_sent()
            resp = self._transport.send("GET", trail.url, headers, run.deadline, cert=cert)
            try:
                status = resp.status_code
                if status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    # Drain a little so a short body keeps the connection usable.
                    self._body.error_excerpt(resp, run.deadline, run.redactor)
                    trail.follow(location)
                    continue
                if status == 304:
                    if not any(name in headers for name in ("If-None-Match", "If-Modified-Since")):
                        raise AttemptFailure(
                            "unexpected_not_modified",
                            "HTTP 304 Not Modified to a request that sent no If-None-Match or If-Modified-Since",
                            status=status,
                        )
                    return FetchResult(
                        body=b"",
                        status=status,
                        attempts=run.attempts,
                        elapsed_s=run.deadline.elapsed(),
                        url=run.where(trail.url),
                        content_type=None,
                        bytes_on_wire=0,
                        sent_at_ms=run.sent_at_ms,
                        redact=run.redactor.clean,
                        etag=validator(resp.headers.get("ETag")),
                        last_modified=validator(resp.headers.get("Last-Modified")),
                        not_modified=True,
                    )
                if status == 200:
                    body, wire = self._body.read(resp, run.deadline, self.limits.max_body_bytes)
                    return FetchResult(
                        body=body,
                        status=status,
                        attempts=run.attempts,
                        elapsed_s=run.deadline.elapsed(),
                        url=run.where(trail.url),
                        content_type=resp.headers.get("Content-Type"),
                        bytes_on_wire=wire,
                        sent_at_ms=run.sent_at_ms,
                        redact=run.redactor.clean,
                        etag=validator(resp.headers.get("ETag")),
                        last_modified=validator(resp.headers.get("Last-Modified")),
                    )
                excerpt = self._body.error_excerpt(resp, run.deadline, run.redactor)
                raise status_failure(trail.url, status, excerpt, resp.headers.get("Retry-After"))
            finally:
                resp.close()

    def _log_failure(self, run: FetchRun, url: str, failure: AttemptFailure) -> None:
        log.warning(
            "club feed %s: GET %s failed on attempt %d after %.3fs: %s (%s)",
            run.source.name,
            run.where(url),
            run.attempts,
            run.deadline.elapsed(),
            failure.code,
            run.redactor.clean(failure.message),
            extra=run.log_fields(url, failure.status, failure.code),
        )


class Validators(Protocol):
    """What a conditional fetch sends back (cappi.domain.body_record.BodyRecord has this shape)."""

    @property
    def etag(self) -> str | None: ...

    @property
    def last_modified(self) -> str | None: ...


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    if validators is None:
        return {}
    headers = {}
    if etag := validator(validators.etag):
        headers["If-None-Match"] = etag
    if last_modified := validator(validators.last_modified):
        headers["If-Modified-Since"] = last_modified
    return headers
