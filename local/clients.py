"""Which clients the local token issuer knows: the demo client, or the ones a CAPPI_CLIENTS_FILE lists.

`{"clients": [{"client_id", "client_secret", "scopes", "clubs", "audiences"}]}`; every problem in the file is
reported at once, each naming the client and the field, and never quoting a secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cappi.contracts.api import SCOPE
from cappi.domain.ids import MAX_CLUB_ID

DEFAULT_SCOPES = (SCOPE,)

DEMO_CLIENT_ID = "cappi-demo-tester"
# Printed at start and fixed so README examples work: local mode only, never a real credential.
DEMO_CLIENT_SECRET = "cappi-demo-secret"  # noqa: S105

CLIENT_ID = re.compile(r"[A-Za-z0-9._~@-]{1,128}")
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 section 3.3
_CLIENT_FIELDS = {"client_id", "client_secret", "scopes", "clubs", "audiences", "comment"}


@dataclass(frozen=True)
class LocalClient:
    """One machine-to-machine application of the local issuer.

    `clubs`: the club-list claim's values (None: the token carries no such claim, so every club may be read).
    `audiences`: the audiences this client has a grant for (None: only the issuer's default audience).
    """

    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    clubs: tuple[int, ...] | None = None
    audiences: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        # The secret stays out of reprs, which end up in tracebacks and test output.
        return (
            f"LocalClient(client_id={self.client_id!r}, scopes={self.scopes!r}, clubs={self.clubs!r}, "
            f"audiences={self.audiences!r})"
        )


class ClientsFileError(ValueError):
    """The clients file is unusable; `problems` lists every finding, each naming the client and the field."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__(f"{origin}: invalid clients file:\n" + "\n".join(f"  - {p}" for p in problems))

    def line(self, variable: str = "CAPPI_CLIENTS_FILE") -> str:
        """The console's one line: the variable, every problem, and the fix (never a secret: problems quote none)."""
        return (
            f"{variable}={self.origin}: {'; '.join(self.problems)}; fix the file (format: "
            '{"clients": [{"client_id", "client_secret", "scopes", "clubs", "audiences"}]}, README.md) '
            f"or unset {variable} to use the demo client"
        )


def demo_clients() -> list[LocalClient]:
    """The one client local mode starts with: scope read:callids, every club (no club claim)."""
    return [LocalClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)]


def load_clients(path: str | Path) -> list[LocalClient]:
    """Read a CAPPI_CLIENTS_FILE: `{"clients": [{"client_id", "client_secret", "scopes", "clubs", "audiences"}]}`.

    `scopes` defaults to ["read:callids"] and may be empty (a client whose tokens the API refuses with 403);
    `clubs` (club IDs for the club-list claim) and `audiences` are optional. Every problem is reported at once.
    """
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientsFileError(origin, [f"cannot read file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ClientsFileError(origin, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientsFileError(origin, [f"not valid JSON: {exc}"]) from exc
    return parse_clients(data, origin)


def parse_clients(data: Any, origin: str = "<clients>") -> list[LocalClient]:
    if not isinstance(data, dict) or not isinstance(data.get("clients"), list):
        raise ClientsFileError(origin, ['the top level must be an object with a "clients" array'])
    problems: list[str] = []
    extra = set(data) - {"clients", "comment", "$schema"}
    if extra:
        problems.append(f"unknown top-level field(s): {', '.join(sorted(extra))}")
    if not data["clients"]:
        problems.append('"clients" is empty: list at least one client')
    clients: list[LocalClient] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["clients"]):
        client = _parse_client(raw, index, problems)
        if client is None:
            continue
        if client.client_id in seen:
            problems.append(
                f"client {client.client_id!r} (clients[{index}]): field 'client_id': "
                f"duplicate of clients[{seen[client.client_id]}]"
            )
            continue
        seen[client.client_id] = index
        clients.append(client)
    if problems:
        raise ClientsFileError(origin, problems)
    return clients


def _parse_client(raw: Any, index: int, problems: list[str]) -> LocalClient | None:
    where = f"clients[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    client_id = raw.get("client_id")
    if isinstance(client_id, str) and CLIENT_ID.fullmatch(client_id):
        label = f"client {client_id!r} ({where})"
    else:
        label = where
        problems.append(f"{label}: field 'client_id': must be 1-128 characters of A-Z, a-z, 0-9 and . _ ~ @ -")
    for key in sorted(set(raw) - _CLIENT_FIELDS):
        problems.append(f"{label}: field {key!r}: unknown field")

    secret = raw.get("client_secret")
    if not isinstance(secret, str) or not secret or len(secret) > 512 or not secret.isprintable():
        # Never quote the value: this message is printed.
        problems.append(
            f"{label}: field 'client_secret': must be a non-empty one-line string of at most 512 characters"
        )

    scopes = raw.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or not all(isinstance(s, str) and SCOPE_TOKEN.fullmatch(s) for s in scopes):
        problems.append(f"{label}: field 'scopes': must be a list of scope names without spaces or quotes")
    elif len(set(scopes)) != len(scopes):
        problems.append(f"{label}: field 'scopes': lists a scope twice")

    clubs = raw.get("clubs")
    if clubs is not None:
        if not isinstance(clubs, list) or not all(type(c) is int and 0 <= c <= MAX_CLUB_ID for c in clubs):
            problems.append(f"{label}: field 'clubs': must be null or a list of club IDs (integers 0-{MAX_CLUB_ID})")
        elif len(set(clubs)) != len(clubs):
            problems.append(f"{label}: field 'clubs': lists a club ID twice")

    audiences = raw.get("audiences")
    if audiences is not None and (
        not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) and a for a in audiences)
    ):
        problems.append(f"{label}: field 'audiences': must be null or a non-empty list of audience strings")

    if len(problems) > before or not isinstance(client_id, str) or not isinstance(secret, str):
        return None
    return LocalClient(
        client_id=client_id,
        client_secret=secret,
        scopes=tuple(scopes),
        clubs=tuple(clubs) if clubs is not None else None,
        audiences=tuple(audiences) if audiences is not None else None,
    )
