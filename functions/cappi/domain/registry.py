"""The club registry: which club sources CAPPI polls, where, and how it authenticates (DESIGN.md section 4).

One JSON file per stage, reviewed like code. It names secrets; it never holds their values.
Every problem is reported at once, each naming the file, the source and the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cappi.domain.ids import MAX_CLUB_ID

AUTH_TYPES = ("none", "bearer", "basic", "api_key", "oauth2_client_credentials", "mtls")
# What `mtls` may add on top of the client certificate: a credential sent in a header.
HEADER_AUTH_TYPES = ("bearer", "basic", "api_key")
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# A secret name is kept as the SSM parameter "/" + name (cappi.contracts.credentials): `/`-separated parts of
# letters, digits, `_`, `.` and `-`, at most 15 levels, the first part not starting with "aws" or "ssm" (reserved).
SECRET_NAME = re.compile(r"(?!(?i:aws|ssm))[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){0,14}")
SECRET_NAME_MAX = 512
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")

_SOURCE_FIELDS = {"name", "club_ids", "base_url", "auth", "headers", "enabled"}
_AUTH_FIELDS = {
    "none": {"type"},
    "bearer": {"type", "secret"},
    "basic": {"type", "secret"},
    "api_key": {"type", "secret", "header"},
    "oauth2_client_credentials": {"type", "secret", "token_url", "client_id", "scope", "audience"},
    "mtls": {"type", "secret", "header_auth"},
}
_AUTH_REQUIRED = {
    "none": set(),
    "bearer": {"secret"},
    "basic": {"secret"},
    "api_key": {"secret", "header"},
    "oauth2_client_credentials": {"secret", "token_url", "client_id"},
    "mtls": {"secret"},
}


class RegistryError(ValueError):
    """The registry file is unusable; `problems` lists every finding, one line each."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__(f"{origin}: invalid club registry:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class ClubAuth:
    """How CAPPI authenticates to a club. `secret` names a credential, never holds a value: ingest reads it from
    the SSM SecureString parameter "/" + `secret` (written by `cappi secrets set`).

    - bearer: the secret value is the token.
    - basic: the secret value is `user:password` or JSON `{"username": ..., "password": ...}`.
    - api_key: the secret value is sent in the header named `header`.
    - oauth2_client_credentials: the secret value is the client secret for `client_id` at `token_url`.
    - mtls: the secret value is JSON `{"certificate": "<PEM>", "key": "<PEM>"}`, presented on the TLS handshake;
      `header_auth`, if set, is a bearer, basic or api_key credential (with its own secret) sent as well.
    """

    type: str = "none"
    secret: str | None = None
    header: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None
    audience: str | None = None
    header_auth: ClubAuth | None = None

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every secret this auth reads: its own and the nested header credential's."""
        names = [self.secret] if self.secret else []
        if self.header_auth is not None:
            names.extend(self.header_auth.secret_names)
        return tuple(names)

    @property
    def credential_headers(self) -> frozenset[str]:
        """Lower-case names of the headers this auth fills, which the registry's own headers must not set."""
        names = {"authorization"} if self.type in ("bearer", "basic", "oauth2_client_credentials") else set()
        if self.header:
            names.add(self.header.lower())
        if self.header_auth is not None:
            names |= self.header_auth.credential_headers
        return frozenset(names)


@dataclass(frozen=True, slots=True)
class ClubSource:
    """One club endpoint that CAPPI polls; it may publish calls for several club IDs."""

    name: str
    club_ids: frozenset[int]
    base_url: str
    auth: ClubAuth = field(default_factory=ClubAuth)
    headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def feed_url(self) -> str:
        return self.base_url.rstrip("/") + "/service/calls/status"


@dataclass(frozen=True, slots=True)
class ClubRegistry:
    sources: tuple[ClubSource, ...]
    origin: str = "<registry>"

    def source(self, name: str) -> ClubSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"{self.origin}: no club source named {name!r}")

    @property
    def enabled_sources(self) -> tuple[ClubSource, ...]:
        return tuple(s for s in self.sources if s.enabled)

    @property
    def club_ids(self) -> frozenset[int]:
        """Every club ID some source serves (enabled or not): the clubs the query API knows."""
        return frozenset(cid for s in self.sources for cid in s.club_ids)

    @property
    def sources_by_club(self) -> dict[int, str]:
        """Club ID -> name of the source that serves it (where that club's snapshot pointer lives)."""
        return {club_id: s.name for s in self.sources for club_id in s.club_ids}

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(sorted({name for s in self.sources for name in s.auth.secret_names}))


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object) -> str | None:
    """Why `url` is not acceptable for an outbound call, or None if it is (HTTPS, or HTTP to loopback)."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https:// URL"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must use https:// (plain http is allowed only for loopback addresses)"
    if parts.username or parts.password:
        return "must not carry credentials (use the auth block and a secret)"
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    return None


def load_registry(path: str | Path) -> ClubRegistry:
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(origin, [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(origin, [f"not valid JSON: {exc}"]) from exc
    return parse_registry(data, origin)


def parse_registry(data: Any, origin: str = "<registry>") -> ClubRegistry:
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise RegistryError(origin, ['the top level must be an object with a "sources" array'])
    extra = set(data) - {"sources", "$schema", "comment"}
    if extra:
        problems.append(f"unknown top-level field(s): {', '.join(sorted(extra))}")

    sources: list[ClubSource] = []
    seen_names: dict[str, int] = {}
    club_owner: dict[int, str] = {}
    for index, raw in enumerate(data["sources"]):
        source = _parse_source(raw, index, problems)
        if source is None:
            continue
        label = f"source {source.name!r} (sources[{index}])"
        if source.name in seen_names:
            problems.append(f"{label}: field 'name': duplicate of sources[{seen_names[source.name]}]")
            continue
        seen_names[source.name] = index
        for club_id in sorted(source.club_ids):
            if club_id in club_owner:
                problems.append(
                    f"{label}: field 'club_ids': club {club_id} is already claimed by source {club_owner[club_id]!r}"
                )
            else:
                club_owner[club_id] = source.name
        sources.append(source)

    if problems:
        raise RegistryError(origin, problems)
    return ClubRegistry(sources=tuple(sources), origin=origin)


def _parse_source(raw: Any, index: int, problems: list[str]) -> ClubSource | None:
    where = f"sources[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    name = raw.get("name")
    if isinstance(name, str) and SOURCE_NAME.fullmatch(name):
        label = f"source {name!r} ({where})"
    else:
        label = f"{where}"
        problems.append(
            f"{label}: field 'name': must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    before = len(problems)

    for key in sorted(set(raw) - _SOURCE_FIELDS):
        problems.append(f"{label}: field {key!r}: unknown field")

    club_ids = raw.get("club_ids")
    if (
        not isinstance(club_ids, list)
        or not club_ids
        or not all(type(c) is int and 0 <= c <= MAX_CLUB_ID for c in club_ids)
    ):
        problems.append(f"{label}: field 'club_ids': must be a non-empty list of integers 0-{MAX_CLUB_ID}")
    elif len(set(club_ids)) != len(club_ids):
        problems.append(f"{label}: field 'club_ids': lists a club ID twice")

    url_problem = check_url(raw.get("base_url"))
    if url_problem:
        problems.append(f"{label}: field 'base_url': {url_problem}")

    auth = _parse_auth(raw.get("auth", {"type": "none"}), label, problems)

    headers = raw.get("headers", {})
    if not isinstance(headers, dict):
        problems.append(f"{label}: field 'headers': must be an object of header name to string value")
        headers = {}
    for hname, hvalue in headers.items():
        if not HEADER_NAME.fullmatch(hname) or not isinstance(hvalue, str) or "\n" in hvalue or "\r" in hvalue:
            problems.append(
                f"{label}: field 'headers.{hname}': must be a valid header name with a one-line string value"
            )
        elif hname.lower() == "authorization" or (auth and hname.lower() in auth.credential_headers):
            problems.append(f"{label}: field 'headers.{hname}': credentials belong in the auth block, not in headers")

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{label}: field 'enabled': must be true or false")

    if len(problems) > before or auth is None or not isinstance(name, str) or club_ids is None:
        return None
    return ClubSource(
        name=name,
        club_ids=frozenset(club_ids),
        base_url=raw["base_url"],
        auth=auth,
        headers=dict(headers),
        enabled=enabled,
    )


def _parse_auth(
    raw: Any, label: str, problems: list[str], at: str = "auth", allowed: tuple[str, ...] = AUTH_TYPES
) -> ClubAuth | None:
    """`at` is where this block sits in the source ('auth', or 'auth.header_auth' for mtls's header credential)."""
    if not isinstance(raw, dict):
        problems.append(f"{label}: field {at!r}: must be an object with a 'type'")
        return None
    kind = raw.get("type")
    if kind not in allowed:
        problems.append(
            f"{label}: field '{at}.type': unknown auth type {kind!r} (expected one of {', '.join(allowed)})"
        )
        return None
    before = len(problems)
    for key in sorted(set(raw) - _AUTH_FIELDS[kind]):
        problems.append(f"{label}: field '{at}.{key}': not used by auth type {kind!r}")
    for key in sorted(_AUTH_REQUIRED[kind]):
        if not isinstance(raw.get(key), str) or not raw[key]:
            what = "missing secret name" if key == "secret" else "missing"
            problems.append(f"{label}: field '{at}.{key}': {what} (required by auth type {kind!r})")
    secret = raw.get("secret")
    if isinstance(secret, str) and secret and (len(secret) > SECRET_NAME_MAX or not SECRET_NAME.fullmatch(secret)):
        problems.append(
            f"{label}: field '{at}.secret': not a valid secret name (its SSM parameter is '/' + the name: up to 15 "
            "'/'-separated parts of letters, digits, '_', '.', '-', not starting with 'aws' or 'ssm')"
        )
    header = raw.get("header")
    if isinstance(header, str) and header and not HEADER_NAME.fullmatch(header):
        problems.append(f"{label}: field '{at}.header': not a valid header name")
    if kind == "oauth2_client_credentials" and isinstance(raw.get("token_url"), str):
        url_problem = check_url(raw["token_url"])
        if url_problem:
            problems.append(f"{label}: field '{at}.token_url': {url_problem}")
    for key in ("scope", "audience"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{label}: field '{at}.{key}': must be a string")
    header_auth = None
    if kind == "mtls" and raw.get("header_auth") is not None:
        header_auth = _parse_auth(raw["header_auth"], label, problems, f"{at}.header_auth", HEADER_AUTH_TYPES)
    if len(problems) > before:
        return None
    return ClubAuth(
        type=kind,
        secret=raw.get("secret"),
        header=raw.get("header"),
        token_url=raw.get("token_url"),
        client_id=raw.get("client_id"),
        scope=raw.get("scope"),
        audience=raw.get("audience"),
        header_auth=header_auth,
    )
