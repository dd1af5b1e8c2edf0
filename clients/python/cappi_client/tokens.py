"""Client-credentials tokens: fetched once, shared by every thread, reused until shortly before they expire.

Why this matters: Auth0 counts and rate-limits machine-to-machine token requests, and a token is valid for 24
hours. So a process asks for one token however many threads call at once (a lock with a double check: the first
thread fetches, the others wait for its result), refreshes it a leeway before expiry (60 s, or 10% of the lifetime
for short-lived tokens, so a 5 s token is not refreshed on every call), and on a 401 drops only the token that was
refused (eight threads seeing the same 401 cause one new request, not eight).

`FileTokenCache` carries a token across processes (a CLI run, a worker restart): one JSON file, owner-only, that
holds access tokens but never the client secret, keyed by a fingerprint of the credentials (token URL, client ID, a
SHA-256 of the secret, audience, scope) so that a token for another environment or client is never sent, and a
wrong secret is not hidden by a token an earlier, right one obtained: it goes to the issuer and fails there. The
file is single-flight across processes: whoever finds no fresh token holds an exclusive lock (on the file's
directory) while it asks the issuer, so processes starting together make one token request and the others read
its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from cappi_client.errors import ConfigurationError, DeadlineExceeded, TokenError, TransportError
from cappi_client.retry import (
    Clock,
    Deadline,
    Retryable,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)

log = logging.getLogger("cappi_client")

MAX_LEEWAY_S = 60.0
LEEWAY_FRACTION = 0.1
DEFAULT_LIFETIME_S = 300.0  # when a token response has no expires_in (Auth0 always sends it; RFC 6749 may not)
CACHE_FORMAT = 1
_MAX_CACHE_BYTES = 1_000_000
_SHOWN = 200  # characters of an unexpected token response quoted in an error


@dataclass(frozen=True, slots=True)
class Credentials:
    """A machine-to-machine application's client ID and secret; the secret never appears in a repr."""

    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def resolve(
        cls, client_id: str | None = None, client_secret: str | None = None, env: Mapping[str, str] = os.environ
    ) -> Credentials:
        """Arguments first, then `CAPPI_CLIENT_ID` / `CAPPI_CLIENT_SECRET`."""
        cid = client_id or env.get("CAPPI_CLIENT_ID", "").strip()
        secret = client_secret or env.get("CAPPI_CLIENT_SECRET", "").strip()
        if not cid:
            raise ConfigurationError("no client ID: pass client_id or set CAPPI_CLIENT_ID")
        if not secret:
            raise ConfigurationError("no client secret: pass client_secret or set CAPPI_CLIENT_SECRET")
        return cls(cid, secret)


def secret_fingerprint(secret: str) -> str:
    """What the cache keeps of a client secret: a SHA-256 of it, never the secret itself."""
    return hashlib.sha256(b"cappi-client secret\0" + secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenKey:
    """What a token is valid for: a token is only ever reused for exactly the same five values."""

    token_url: str
    client_id: str
    audience: str
    scope: str = ""
    secret_sha256: str = ""  # secret_fingerprint(the client secret): another secret never reuses this token

    @classmethod
    def of(cls, token_url: str, credentials: Credentials, audience: str, scope: str = "") -> TokenKey:
        return cls(token_url, credentials.client_id, audience, scope, secret_fingerprint(credentials.client_secret))

    @property
    def digest(self) -> str:
        fields = [self.token_url, self.client_id, self.audience, self.scope, self.secret_sha256]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return {
            "token_url": self.token_url,
            "client_id": self.client_id,
            "audience": self.audience,
            "scope": self.scope,
            "secret_sha256": self.secret_sha256,
        }


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and when it expires (wall-clock seconds, so another process can judge it too)."""

    access_token: str = field(repr=False)
    expires_at: float
    lifetime_s: float
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a password
    scope: str | None = None

    @property
    def refresh_at(self) -> float:
        """When to stop using it: a leeway before expiry, never more than a tenth of its lifetime."""
        return self.expires_at - min(MAX_LEEWAY_S, max(0.0, self.lifetime_s) * LEEWAY_FRACTION)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    @property
    def authorization(self) -> str:
        return f"Bearer {self.access_token}"


class FileTokenCache:
    """Tokens persisted in one JSON file with owner-only permissions, shared by processes of the same user.

    Writes are atomic (a 0600 temporary file in the same directory, then a rename), and a parent directory this
    creates is 0700. Anything odd on reading (missing, corrupt, too big, another owner, readable by others) makes the
    file count as empty: the cache saves a token request, it must never fail a call.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    @contextlib.contextmanager
    def exclusive(self, deadline: Deadline) -> Iterator[None]:
        """Hold an exclusive POSIX `flock` on the cache file's directory: one process at a time looks for a token
        and fetches one. The directory, not a lock file: it never changes inode (the file is replaced on every
        write) and leaves nothing behind. Where the lock cannot be had (no `fcntl`, an unreadable directory), go on
        without it: the cache saves token requests, it never fails a call. Raises DeadlineExceeded if another
        process holds it past the deadline.
        """
        try:
            import fcntl
        except ImportError:  # Windows: no single-flight across processes
            yield
            return
        try:
            _make_private_dirs(self.path.parent)
            fd = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            log.warning("token cache %s: no lock across processes: %s", self.path, exc.strerror or exc)
            yield
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline.remaining() <= 0:
                        raise DeadlineExceeded(
                            "token: deadline passed while another process was fetching a token"
                        ) from None
                    time.sleep(min(0.02, max(0.0, deadline.remaining())))
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self, key: TokenKey) -> Token | None:
        entry = self._read().get(key.digest)
        if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in key.as_dict().items()):
            return None  # a digest collision or a hand-edited file: only an exact match counts
        try:
            return Token(
                access_token=_text(entry["access_token"]),
                expires_at=float(entry["expires_at"]),
                lifetime_s=float(entry["lifetime_s"]),
                token_type=_text(entry.get("token_type", "Bearer")),
                scope=entry.get("granted_scope") if isinstance(entry.get("granted_scope"), str) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def store(self, key: TokenKey, token: Token, now: float) -> None:
        entries = {k: v for k, v in self._read().items() if _unexpired(v, now)}
        entries[key.digest] = {
            **key.as_dict(),
            "access_token": token.access_token,
            "token_type": token.token_type,
            "granted_scope": token.scope,  # "scope" is the key's: the scope asked for
            "expires_at": token.expires_at,
            "lifetime_s": token.lifetime_s,
        }
        self._write(entries)

    def discard(self, key: TokenKey, access_token: str) -> None:
        """Forget the token for `key` if it is still `access_token` (another process may have stored a newer one)."""
        entries = self._read()
        entry = entries.get(key.digest)
        if isinstance(entry, dict) and entry.get("access_token") == access_token:
            del entries[key.digest]
            self._write(entries)

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return {}
        try:
            with os.fdopen(fd, "rb") as file:
                info = os.fstat(file.fileno())
                if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
                    log.warning("token cache %s ignored: it must be owned by this user and mode 0600", self.path)
                    return {}
                raw = file.read(_MAX_CACHE_BYTES + 1)
            data = json.loads(raw) if len(raw) <= _MAX_CACHE_BYTES else None
        except (OSError, ValueError):
            log.warning("token cache %s ignored: unreadable or not JSON", self.path)
            return {}
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("tokens"), dict):
            return {}
        return dict(data["tokens"])

    def _write(self, entries: dict[str, Any]) -> None:
        directory = self.path.parent
        tmp: str | None = None
        try:
            _make_private_dirs(directory)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")  # mode 0600
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump({"format": CACHE_FORMAT, "tokens": entries}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            log.warning("token cache %s not written: %s", self.path, exc.strerror or exc)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _make_private_dirs(directory: Path) -> None:
    """Create `directory` and missing parents as 0700; directories that exist already are left as they are."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def _unexpired(entry: object, now: float) -> bool:
    try:
        return isinstance(entry, dict) and float(entry["expires_at"]) > now
    except (KeyError, TypeError, ValueError):
        return False


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


class TokenProvider:
    """The one place tokens come from for a client: memory, then the file cache, then the token endpoint."""

    def __init__(
        self,
        key: TokenKey,
        credentials: Credentials,
        session: Callable[[], requests.Session],
        *,
        policy: RetryPolicy,
        clock: Clock,
        file_cache: FileTokenCache | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if credentials.client_id != key.client_id:
            raise ConfigurationError("the token key's client ID differs from the credentials'")
        if key.secret_sha256 and key.secret_sha256 != secret_fingerprint(credentials.client_secret):
            raise ConfigurationError("the token key's secret fingerprint differs from the credentials'")
        self.key = key
        self._credentials = credentials
        self._session = session
        self._policy = policy
        self._clock = clock
        self._file = file_cache
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.requests_made = 0  # token endpoint requests, retries included: what Auth0 would count

    def get(self, deadline: Deadline) -> Token:
        """A token fresh enough to send; at most one thread at a time asks the endpoint for one."""
        token = self._token
        if token is not None and token.fresh(self._clock.time()):
            return token
        if not self._lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise DeadlineExceeded("token: deadline passed while another thread was fetching a token")
        try:
            token = self._token
            if token is not None and token.fresh(self._clock.time()):
                return token  # another thread fetched it while this one waited
            if self._file is None:
                token = self._fetch(deadline)
            else:
                with self._file.exclusive(deadline):
                    stored = self._file.load(self.key)
                    if stored is not None and stored.fresh(self._clock.time()):
                        log.info(
                            "token: from the cache %s (expires in %.0f s)",
                            self._file.path,
                            stored.expires_at - self._clock.time(),
                        )
                        self._token = stored
                        return stored
                    token = self._fetch(deadline)
                    self._file.store(self.key, token, self._clock.time())
            self._token = token
            return token  # even one shorter-lived than the leeway serves the call that fetched it
        finally:
            self._lock.release()

    def invalidate(self, token: Token) -> None:
        """Drop `token` after the API refused it, unless a newer one has replaced it already."""
        with self._lock:
            if self._token is not None and self._token.access_token == token.access_token:
                self._token = None
            if self._file is not None:
                self._file.discard(self.key, token.access_token)

    def _fetch(self, deadline: Deadline) -> Token:
        body = {
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
            "audience": self.key.audience,
            "grant_type": "client_credentials",
        }
        if self.key.scope:
            body["scope"] = self.key.scope

        def attempt(timeout: float) -> Token:
            self.requests_made += 1  # under the lock: only one thread fetches
            try:
                response = self._session().post(
                    self.key.token_url, json=body, headers=self._headers, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise Retryable(TransportError(f"token: {self.key.token_url}: {type(exc).__name__}")) from exc
            return self._token_from(response)

        token = with_retries(attempt, what="token", policy=self._policy, clock=self._clock, deadline=deadline)
        log.info("token: from the issuer %s (expires in %.0f s)", self.key.token_url, token.lifetime_s)
        return token

    def _token_from(self, response: requests.Response) -> Token:
        status = response.status_code
        data = _json_or_none(response)
        if status != 200:
            fields = data if isinstance(data, dict) else {}
            error = fields.get("error") if isinstance(fields.get("error"), str) else None
            description = fields.get("error_description")
            description = description if isinstance(description, str) else None
            detail = description or error or (response.text[:_SHOWN].strip() or response.reason or "no detail")
            failure = TokenError(
                f"token endpoint answered {status}: {detail}", status=status, error=error, error_description=description
            )
            if is_retryable_status(status):
                raise Retryable(failure, parse_retry_after(response.headers.get("Retry-After"), self._clock.time()))
            raise failure
        if not isinstance(data, dict):
            raise TokenError("token endpoint answered 200 without a JSON object", status=status)
        access_token = data.get("access_token")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(access_token, str) or not access_token:
            raise TokenError("token response has no access_token", status=status)
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenError(f"token response has token_type {token_type!r}, not Bearer", status=status)
        lifetime = _lifetime(data.get("expires_in"))
        scope = data.get("scope") if isinstance(data.get("scope"), str) else None
        now = self._clock.time()
        return Token(access_token, now + lifetime, lifetime, "Bearer", scope)


def _lifetime(raw: object) -> float:
    if raw is None:
        return DEFAULT_LIFETIME_S
    if isinstance(raw, bool):
        raise TokenError("token response has a boolean expires_in")
    if isinstance(raw, str) and raw.strip().isdigit():  # some servers send it quoted
        return float(raw)
    if isinstance(raw, int | float) and math.isfinite(raw) and raw >= 0:
        return float(raw)
    raise TokenError(f"token response has expires_in {str(raw)[:40]!r}, not a number of seconds")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
