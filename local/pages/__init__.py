"""Local mode's pages for people, on the gateway's port beside the API: `/` (this instance: the token and query
commands with its real URLs), `/docs` (the API reference: Swagger UI over docs/openapi.json), `/status` (every
source as `cappi status` says it, following new polls through `/status.json`) and `/status/{source}` (that source's
`cappi check-feed` report and plan; an unknown source is a 404 page).

No token is needed and no secret is shown (the token command names the client and says where its secret is). Every
value that can come from a feed is HTML-escaped (`local.pages.html`); scripts and styles are files of this origin,
and the Content-Security-Policy allows nothing else. Swagger UI's files (5.24) come from PyPI's `swagger-ui-py`
wheel, installed by requirements-local.txt with the rest of local mode, and are served from where pip put them, so
nothing is loaded from outside the machine.

Pages claim only GET and HEAD on their own paths; any other request goes on to the API, whose routes and JSON
errors are unchanged. Every answer has an ETag, and a matching If-None-Match gets 304. A page that reads the table
or runs a command raises `WouldWait` on the gateway's event loop, which hands it to a thread of its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cappi.domain.registry import ClubRegistry
from cappi.domain.source_status import HeadReads, PollReads, registry_status
from local.http_api import HttpResponse, WouldWait, waiting_refused
from local.pages import html
from local.pages.feed_report import FeedReport

ASSETS = Path(__file__).parent / "assets"
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
HTML = "text/html; charset=utf-8"


def swagger_assets() -> Path | None:
    """Swagger UI's files as PyPI's `swagger-ui-py` installs them (found, not imported: its Python is not used)."""
    spec = importlib.util.find_spec("swagger_ui")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(f) / "static" for f in folders if (Path(f) / "static" / "swagger-ui-bundle.js").is_file()]
    return found[0] if found else None


@dataclass
class Instance:
    """What the pages say about this local mode."""

    base_url: str
    audience: str
    issuer: str
    client_id: str | None  # the local issuer's first client; None with an outside issuer
    route: str  # the query route's template
    registry: ClubRegistry
    heads: HeadReads
    polls: PollReads
    stale_after_s: float
    example: Callable[[], tuple[int, str] | None]  # a club and a technician with open calls, once published
    feed_report: Callable[[str], FeedReport]


class Pages:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._example: tuple[int, str] | None = None
        self._swagger = swagger_assets()
        self._static: dict[str, tuple[bytes, str]] = {}

    def __call__(self, method: str, target: str, headers: list[tuple[str, str]]) -> HttpResponse | None:
        """The page for a GET or HEAD of one of its paths, else None (the API answers)."""
        if method not in ("GET", "HEAD"):
            return None
        path = target.partition("?")[0]
        answer = self._route(path)
        if answer is None:
            return None
        status, content_type, body = answer
        return respond(status, content_type, body, headers)

    def _route(self, path: str) -> tuple[int, str, bytes] | None:
        if path == "/":
            return 200, HTML, self._home().encode()
        if path == "/docs":
            missing = None if self._swagger else "Swagger UI is not installed: pip install -r requirements-local.txt"
            return 200, HTML, html.docs(missing).encode()
        if path == "/docs/openapi.json":
            return 200, "application/json", self._openapi()
        if path.startswith("/docs/assets/") and self._swagger is not None:
            return self._file(self._swagger, path.removeprefix("/docs/assets/"))
        if path.startswith("/pages/"):
            return self._file(ASSETS, path.removeprefix("/pages/"))
        if path == "/status":
            return 200, HTML, html.status(self._rows()).encode()
        if path == "/status.json":
            return 200, "application/json", self._status_json()
        if path.startswith("/status/"):
            return self._source(unquote(path.removeprefix("/status/")))
        return None

    def _file(self, folder: Path, name: str) -> tuple[int, str, bytes] | None:
        cached = self._static.get(str(folder / name))
        if cached is None:
            if "/" in name or name.startswith(".") or not (folder / name).is_file():
                return None  # the API's JSON 404, as for any path nobody serves
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            cached = ((folder / name).read_bytes(), kind + ("; charset=utf-8" if kind.startswith("text/") else ""))
            self._static[str(folder / name)] = cached
        body, kind = cached
        return 200, kind, body

    def _home(self) -> str:
        i = self.instance
        if self._example is None:
            _no_wait()
            self._example = i.example()
        return html.home(
            base_url=i.base_url,
            audience=i.audience,
            issuer=i.issuer,
            client_id=i.client_id,
            example=self._example,
            route=i.route,
        )

    def _openapi(self) -> bytes:
        """docs/openapi.json with this instance as its server, so Swagger UI's "Try it out" asks local mode."""
        document = json.loads(OPENAPI.read_text())
        document["servers"] = [{"url": self.instance.base_url, "description": "this local mode"}]
        return json.dumps(document, indent=2).encode()

    def _rows(self) -> list[Any]:
        _no_wait()
        i = self.instance
        return registry_status(
            i.registry, i.heads, i.polls, now_ms=int(time.time() * 1000), stale_after_s=i.stale_after_s
        )

    def _status_json(self) -> bytes:
        rows = self._rows()
        sources = [{**row.as_json(), "state": row.state, "cells": html.status_cells(row)} for row in rows]
        return json.dumps({"columns": html.STATUS_COLUMNS, "sources": sources}).encode()

    def _source(self, name: str) -> tuple[int, str, bytes]:
        if name not in {s.name for s in self.instance.registry.sources}:
            return 404, HTML, html.not_found(f"No source named {name!r} in this registry.").encode()
        _no_wait()
        found = self.instance.feed_report(name)
        return 200, HTML, html.feed(name, found.report, found.plan, found.note).encode()


def _no_wait() -> None:
    """These answers read the table or run a command: never on the gateway's event loop."""
    if waiting_refused():
        raise WouldWait


def respond(status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]) -> HttpResponse:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    common = [
        ("ETag", etag),
        ("Cache-Control", "no-cache"),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]
    wanted = next((v for k, v in headers if k.lower() == "if-none-match"), None)
    if status == 200 and wanted is not None and etag in {t.strip().removeprefix("W/") for t in wanted.split(",")}:
        return HttpResponse(304, common, b"")
    return HttpResponse(status, [("Content-Type", content_type), *common], body)
