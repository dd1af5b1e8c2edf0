"""The headers that authenticate a request, for each auth type a club may use (see ClubAuth)."""

from __future__ import annotations

import base64

from cappi.adapters.club_client.credentials import SecretReader
from cappi.adapters.club_client.fetch_run import FetchRun
from cappi.adapters.club_client.oauth2 import ClientCredentialsTokens
from cappi.domain.registry import ClubAuth


class Authenticator:
    def __init__(self, credentials: SecretReader, tokens: ClientCredentialsTokens) -> None:
        self._credentials = credentials
        self._tokens = tokens

    def headers(self, auth: ClubAuth, run: FetchRun) -> dict[str, str]:
        kind = auth.type
        if kind == "none":
            return {}
        if kind == "bearer":
            return {"Authorization": f"Bearer {self._credentials.header_value(auth, run)}"}
        if kind == "api_key":
            if not auth.header:
                raise run.error("secret_missing", "api_key auth names no header")
            return {auth.header: self._credentials.header_value(auth, run)}
        if kind == "basic":
            user, password = self._credentials.user_and_password(auth, run)
            # Not requests' HTTPBasicAuth: it encodes as Latin-1 and fails on other characters; this sends UTF-8.
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            run.redactor.protect(password)
            run.redactor.protect(encoded)
            return {"Authorization": f"Basic {encoded}"}
        if kind == "oauth2_client_credentials":
            return {"Authorization": f"Bearer {self._tokens.access_token(auth, run)}"}
        if kind == "mtls":
            # The certificate goes on the handshake (ClientCertificates); a header credential may come with it.
            return self.headers(auth.header_auth, run) if auth.header_auth is not None else {}
        raise run.error("secret_missing", f"unsupported auth type {kind!r}")

    def can_renew(self, auth: ClubAuth) -> bool:
        """Whether a 401 may mean a stale credential that `renew` can replace (an OAuth2 token revoked early)."""
        return auth.type == "oauth2_client_credentials"

    def renew(self, auth: ClubAuth) -> None:
        """Make the next `headers` call fetch a fresh token instead of the cached one."""
        self._tokens.forget(auth)
