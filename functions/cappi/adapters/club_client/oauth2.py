"""OAuth2 client-credentials access tokens: requested from the club's token endpoint, cached for the container.

A token is shared by every fetch that names the same token URL, client, scope and audience, and is renewed a
margin before it expires, so a poll never starts with a token about to lapse.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cappi.adapters.club_client.body import BodyReader
from cappi.adapters.club_client.credentials import HEADER_TOKEN, SecretReader
from cappi.adapters.club_client.decoding import ACCEPT_ENCODING
from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.fetch_run import FetchRun
from cappi.adapters.club_client.redaction import loggable_url
from cappi.adapters.club_client.transport import Transport
from cappi.domain.registry import ClubAuth, check_url

log = logging.getLogger("cappi.club_client")  # the name the ingest handler routes into its structured log

_TOKEN_BODY_CAP = 256 * 1024  # token responses are a few KB; more means something is wrong
_DEFAULT_TOKEN_LIFETIME_S = 3600.0

TokenKey = tuple[str, str, str | None, str | None]


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


class ClientCredentialsTokens:
    def __init__(
        self,
        credentials: SecretReader,
        transport: Transport,
        body: BodyReader,
        *,
        clock: Callable[[], float],
        user_agent: str,
        refresh_margin: float,
        max_body_bytes: int,
    ) -> None:
        self._credentials = credentials
        self._transport = transport
        self._body = body
        self._clock = clock
        self._user_agent = user_agent
        self._refresh_margin = refresh_margin
        self._body_cap = min(_TOKEN_BODY_CAP, max_body_bytes)
        self._tokens: dict[TokenKey, _Token] = {}
        self._lock = threading.Lock()

    def access_token(self, auth: ClubAuth, run: FetchRun) -> str:
        key = _token_key(auth)
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            run.redactor.protect(cached.value)
            return cached.value
        issued_at = self._clock()
        value, lifetime = self._request_token(auth, run)
        margin = min(self._refresh_margin, lifetime / 2)
        with self._lock:
            self._tokens[key] = _Token(value=value, refresh_at=issued_at + lifetime - margin)
        return value

    def forget(self, auth: ClubAuth) -> None:
        """Drop the cached token, so the next access_token asks the endpoint for a fresh one."""
        with self._lock:
            self._tokens.pop(_token_key(auth), None)

    def _request_token(self, auth: ClubAuth, run: FetchRun) -> tuple[str, float]:
        token_url = auth.token_url or ""
        problem = check_url(token_url)
        if problem:
            raise run.error("insecure_url", f"token URL {loggable_url(token_url)} {problem}")
        if not auth.client_id:
            raise run.error("token_endpoint", "oauth2 auth names no client_id")
        form = {"grant_type": "client_credentials", "client_id": auth.client_id}
        form["client_secret"] = self._credentials.secret(auth, run)
        if auth.scope:
            form["scope"] = auth.scope
        if auth.audience:
            form["audience"] = auth.audience
        headers = {"User-Agent": self._user_agent, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        where = run.where(token_url)
        try:
            resp = self._transport.send("POST", token_url, headers, run.deadline, data=form)
            try:
                if resp.status_code != 200:
                    excerpt = self._body.error_excerpt(resp, run.deadline, run.redactor)
                    raise AttemptFailure(
                        "token_endpoint",
                        f"HTTP {resp.status_code}" + (f": {excerpt}" if excerpt else ""),
                        status=resp.status_code,
                    )
                body, _ = self._body.read(resp, run.deadline, self._body_cap)
            finally:
                resp.close()
        except AttemptFailure as failure:
            code = "deadline" if failure.code == "deadline" else "token_endpoint"
            log.warning(
                "club feed %s: token request to %s failed: %s",
                run.source.name,
                where,
                run.redactor.clean(failure.message),
                extra=run.log_fields(token_url, failure.status, failure.code),
            )
            raise run.error(code, f"token request to {where} failed: {failure.message}", failure.status) from None

        token, lifetime = _parse_token_response(body)
        if token is None:
            raise run.error("token_endpoint", f"token response from {where} has no usable access_token/expires_in")
        run.redactor.protect(token)
        log.info(
            "club feed %s: new access token from %s, valid %.0fs",
            run.source.name,
            where,
            lifetime,
            extra=run.log_fields(token_url, 200, "token"),
        )
        return token, lifetime


def _parse_token_response(body: bytes) -> tuple[str | None, float]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, 0.0
    if not isinstance(doc, dict):
        return None, 0.0
    token = doc.get("access_token")
    if not isinstance(token, str) or not HEADER_TOKEN.fullmatch(token):
        return None, 0.0
    expires_in = doc.get("expires_in", _DEFAULT_TOKEN_LIFETIME_S)
    if isinstance(expires_in, str) and expires_in.strip().isascii() and expires_in.strip().isdigit():
        expires_in = int(expires_in.strip())
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not math.isfinite(expires_in):
        return None, 0.0
    return token, max(0.0, float(expires_in))


def _token_key(auth: ClubAuth) -> TokenKey:
    return (auth.token_url or "", auth.client_id or "", auth.scope, auth.audience)
