"""A stand-in for API Gateway's HTTP API in front of a Lambda handler.

It does what API Gateway does before and after the query Lambda: match the route (method and path template),
run the route's JWT authorizer, build the payload format 2.0 event (with `authorizer.jwt.claims` as API Gateway
renders them), invoke the handler, and turn its result into an HTTP response. Requests that never reach the
Lambda get API Gateway's own answers (`{"message":"Not Found"}`, the authorizer's 401/403, a 500 when the
function fails). No business logic lives here: the handler is the deployed one.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

# API Gateway's quota for an HTTP API: the request line and header values together (bytes).
MAX_REQUEST_HEAD_BYTES = 10_240

Handler = Callable[[dict[str, Any], Any], Any]


def request_uuid() -> str:
    """A version-4 UUID's text, as Lambda's request IDs look: from `random` rather than `uuid.uuid4()`, whose
    urandom call and UUID object are a noticeable share of a local request; these IDs need no secrecy."""
    bits = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@functools.lru_cache(maxsize=256)
def _route_pattern(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A route template's regular expression and variable names, built once per template, not per request."""
    names = tuple(re.findall(r"\{(\w+)\}", path))
    pattern = re.escape(path)
    for name in names:
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
    return re.compile(pattern), names


def head_size(method: str, target: str, protocol: str, headers: Iterable[tuple[str, str]]) -> int:
    """What API Gateway counts against `MAX_REQUEST_HEAD_BYTES`: the request line, header names and values."""
    return len(f"{method} {target} {protocol}") + sum(len(k) + len(v) for k, v in headers)


class WouldWait(Exception):
    """Raised, before anything else is done for the request, by a part whose answer needs a wait (an authorizer
    whose keys are being fetched) when called on a thread that may not wait: the gateway's event loop, which then
    hands the request to a thread of its own and asks again there."""


_this_thread = threading.local()


def refuse_waits() -> None:
    """Mark the calling thread as one that never waits on the network (the gateway's event loop), for good."""
    _this_thread.refuses_waits = True


def waiting_refused() -> bool:
    """Whether the calling thread was marked by `refuse_waits`."""
    return getattr(_this_thread, "refuses_waits", False)


@dataclass(frozen=True)
class AuthorizerDecision:
    """What a route's authorizer answers. Allowed: `claims` and `scopes`, which the Lambda gets as
    `requestContext.authorizer.jwt`. Refused: API Gateway's response (`status`, `body`, `headers`). `reason` (a
    machine code) and `description` (the challenge's `error_description`) are for logs and tests."""

    allowed: bool
    status: int
    reason: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    claims: dict[str, str] | None = None
    scopes: list[str] | None = None
    description: str = ""


class Authorizer(Protocol):
    def authorize(self, authorization_header: str | None) -> AuthorizerDecision: ...


@dataclass(frozen=True, slots=True)
class Route:
    """`method` and a path template such as `/api/CallData/OpenCalls/{ClubId}/{TechId}/ids`."""

    method: str
    path: str
    handler: Handler
    authorizer: Authorizer | None = None
    function_name: str = "cappi-local-query"

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters (decoded) when the request fits this route, else None. Variables span one segment."""
        if self.method not in (method, "ANY"):
            return None
        found = _route_pattern(self.path)[0].fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # path and query as sent on the request line, still percent-encoded
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class LambdaContext:
    """The parts of Lambda's context object that Powertools and our handlers read."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    timeout_ms: int = 10_000
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self.started) * 1000))


def _message(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()  # API Gateway's bytes, no spaces
    return HttpResponse(status, [("Content-Type", "application/json"), *headers], body)


class HttpApi:
    """Routes requests like one HTTP API with a `$default` stage.

    A request no route matches gets 404 `{"message":"Not Found"}` whatever its method, as API Gateway answers
    it: a known path with another method too (no 405, no HEAD for a GET route, no OPTIONS without a CORS
    configuration), and TRACE or an unknown method alike.
    """

    def __init__(self, routes: Iterable[Route], *, domain_name: str = "localhost", api_id: str = "local") -> None:
        self.routes = list(routes)
        self.domain_name = domain_name
        self.api_id = api_id
        self._ids = itertools.count(1)

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = f"{random.getrandbits(32):08x}-{next(self._ids)}"
        extra = [("apigw-requestid", request_id)]
        if head_size(request.method, request.target, request.protocol, request.headers) > MAX_REQUEST_HEAD_BYTES:
            return _message(431, "Request Header Fields Too Large", extra)
        raw_path, _, query = request.target.partition("?")
        for route in self.routes:
            params = route.match(request.method, raw_path)
            if params is not None:
                return self._invoke(
                    route, params, request, raw_path=raw_path, query=query, request_id=request_id, extra=extra
                )
        return _message(404, "Not Found", extra)

    def _invoke(
        self,
        route: Route,
        params: dict[str, str],
        request: HttpRequest,
        *,
        raw_path: str,
        query: str,
        request_id: str,
        extra: list[tuple[str, str]],
    ) -> HttpResponse:
        authorizer_context = None
        if route.authorizer is not None:
            decision = route.authorizer.authorize(request.header("authorization"))
            if not decision.allowed:
                headers = [("Content-Type", "application/json"), *decision.headers.items(), *extra]
                return HttpResponse(decision.status, headers, decision.body.encode())
            authorizer_context = {"jwt": {"claims": dict(decision.claims or {}), "scopes": decision.scopes}}
        event = self.event(
            route, params, request, raw_path=raw_path, query=query, request_id=request_id, authorizer=authorizer_context
        )
        context = LambdaContext(function_name=route.function_name, aws_request_id=request_uuid())
        try:
            result = route.handler(event, context)
        except Exception:  # API Gateway answers for a failed function; the function logged its own error
            return _message(500, "Internal Server Error", extra)
        return self._response(result, extra)

    def event(
        self,
        route: Route,
        params: dict[str, str],
        request: HttpRequest,
        *,
        raw_path: str,
        query: str,
        request_id: str,
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A payload format 2.0 event, shaped as API Gateway sends it."""
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            lower = name.lower()
            if lower == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
            else:
                headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        now = time.time()
        decoded_path = unquote(raw_path)  # HTTP APIs hand the function a decoded path
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": decoded_path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "000000000000",
                "apiId": self.api_id,
                "domainName": self.domain_name,
                "domainPrefix": self.domain_name.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": decoded_path,
                    "protocol": request.protocol,
                    "sourceIp": request.source_ip,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": route.route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            values: dict[str, list[str]] = {}
            for key, value in parse_qsl(query, keep_blank_values=True):
                values.setdefault(key, []).append(value)
            event["queryStringParameters"] = {k: ",".join(v) for k, v in values.items()}
        if params:
            event["pathParameters"] = params
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        if request.body:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
        return event

    @staticmethod
    def _response(result: Any, extra: list[tuple[str, str]]) -> HttpResponse:
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload 2.0 lets a function return just a body; API Gateway then answers 200 with JSON.
            text = result if isinstance(result, str) else json.dumps(result)
            return HttpResponse(200, [("Content-Type", "application/json"), *extra], text.encode())
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        headers.extend(("Set-Cookie", c) for c in result.get("cookies") or [])
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return HttpResponse(int(result["statusCode"]), [*headers, *extra], body)
