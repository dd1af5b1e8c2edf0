"""The local HTTP front door: the emulated HTTP API (query route behind the JWT authorizer) plus the local token
issuer's endpoints, on one loopback port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.http_api import HttpApi, HttpRequest, HttpResponse

# (method, path) -> handler(body, headers) -> (status, headers, body): the local issuer's endpoints.
ExtraRoutes = Mapping[tuple[str, str], Callable[[bytes, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]]
MAX_BODY = 1024 * 1024


def serialized(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """One invocation at a time, as one Lambda execution environment serves one request at a time (the handler's
    Logger and Metrics are per-environment state)."""
    lock = threading.Lock()

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


class Gateway:
    def __init__(self, api: HttpApi, extra_routes: ExtraRoutes, host: str, port: int) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def version_string(self) -> str:
                return "CAPPI-local"

            def log_message(self, format: str, *args: object) -> None:
                pass  # requests are logged by the query handler itself

            def _serve(self) -> None:
                length_raw = self.headers.get("Content-Length") or "0"
                length = int(length_raw) if length_raw.isdigit() else -1
                if length < 0 or length > MAX_BODY:
                    self._write(
                        HttpResponse(
                            413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}'
                        )
                    )
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                path = self.path.partition("?")[0]
                extra = gateway.extra_routes.get((self.command, path))
                if extra is not None:
                    status, headers, payload = extra(body, {k.lower(): v for k, v in self.headers.items()})
                    self._write(HttpResponse(status, list(headers.items()), payload))
                    return
                request = HttpRequest(
                    method=self.command,
                    target=self.path,
                    headers=list(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    protocol=self.request_version,
                )
                self._write(gateway.api.handle(request))

            def __getattr__(self, name: str) -> Any:
                """`do_<METHOD>` for every method, as API Gateway routes them all: http.server answers a method
                it has no `do_` for (TRACE, PROPFIND, FOO...) with an HTML 501, where API Gateway's HTTP API
                says 404 `{"message":"Not Found"}` unless a route matches. TRACE is never echoed."""
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def parse_request(self) -> bool:
                """http.server's parsing, minus HTTP/0.9 (`GET /path` with no version), which API Gateway does
                not speak: such a request gets a JSON 400, not a bare body."""
                if not super().parse_request():
                    return False
                if self.request_version == "HTTP/0.9":
                    self.send_error(HTTPStatus.BAD_REQUEST)
                    return False
                return True

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                """http.server's own refusals (bad request line or version, header lines too long or too many)
                as API Gateway words its own: `{"message": <reason phrase>}` in JSON, never an HTML page, and
                never the request's text echoed back (its `message` argument quotes the request line)."""
                self.log_error("code %d, message %s", code, message)
                try:
                    phrase = HTTPStatus(code).phrase
                except ValueError:
                    phrase = "Error"
                if self.request_version == "HTTP/0.9":
                    self.request_version = self.protocol_version  # a status line and headers, not a bare body
                self.send_response(code, phrase)
                self.send_header("Connection", "close")
                if code < 200 or code in (204, 304):
                    self.end_headers()
                    return
                body = json.dumps({"message": phrase}, separators=(",", ":")).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _write(self, response: HttpResponse) -> None:
                self.send_response(response.status)
                names = {k.lower() for k, _ in response.headers}
                for name, value in response.headers:
                    self.send_header(name, value)
                if "content-length" not in names:
                    self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD" and response.status not in (204, 304):
                    self.wfile.write(response.body)

        self.api = api
        self.extra_routes = dict(extra_routes)
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
