"""The front door: the emulated HTTP API and the local issuer's endpoints behind one server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from local.gateway.limits import Limits
from local.gateway.messages import Request
from local.gateway.server import Http11Server
from local.http_api import HttpApi, HttpRequest, HttpResponse

# (method, path) -> handler(body, headers) -> (status, headers, body): the local issuer's endpoints.
ExtraRoutes = Mapping[tuple[str, str], Callable[[bytes, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]]
# (method, target, headers) -> the page for people, or None when the path is not a page's (local/pages).
Pages = Callable[[str, str, list[tuple[str, str]]], HttpResponse | None]


def serialized(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """One invocation at a time, as one Lambda execution environment serves one request at a time (the handler's
    Logger and Metrics are per-environment state)."""
    lock = threading.Lock()

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


class Gateway:
    """The HTTP API (`api`), the issuer's endpoints (`extra_routes`) and the pages for people (`pages`: GET and HEAD
    of their own paths only) behind one strict HTTP/1.1 server; all are read per request, so local mode can bind
    the port first and fill them in once its parts are built."""

    def __init__(
        self, api: HttpApi, extra_routes: ExtraRoutes, host: str, port: int, limits: Limits | None = None
    ) -> None:
        self.api = api
        self.extra_routes = dict(extra_routes)
        self.pages: Pages | None = None
        self.server = Http11Server(self.handle, host, port, limits)

    @property
    def port(self) -> int:
        return self.server.port

    def handle(self, request: Request) -> HttpResponse:
        path = request.target.partition("?")[0]
        extra = self.extra_routes.get((request.method, path))
        if extra is not None:
            status, headers, payload = extra(request.body, {k.lower(): v for k, v in request.headers})
            return HttpResponse(status, list(headers.items()), payload)
        if self.pages is not None:
            page = self.pages(request.method, request.target, request.headers)
            if page is not None:
                return page
        return self.api.handle(
            HttpRequest(
                method=request.method,
                target=request.target,
                headers=request.headers,
                body=request.body,
                source_ip=request.client,
                protocol=f"HTTP/{request.http_version}",
            )
        )

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
