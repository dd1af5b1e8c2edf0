"""Every answer of the query API, checked against docs/openapi.json: its status is declared for the operation
(or, off every route, it is API Gateway's 404), its body fits the declared schema (or is empty when none is
declared), its Content-Type is a declared media type and every required header is there and fits its schema.

The bad-input and token tables are test_query_bad_input.py's own, run through the same fixture (the real JWT
authorizer in front of the real query Lambda), so a new row there is checked here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
import test_query_bad_input as bad_input
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support.query_support import REGISTRY, SETTINGS, Allow
from test_query_bad_input import BASE, GOOD, PATH_CASES, TOKEN_CASES

from cappi.adapters.dynamo.table import SnapshotStoreError
from cappi.contracts import api as contract
from cappi.domain.heads import OpenCalls
from cappi.domain.last_poll import LastPoll
from cappi.handlers import query
from local.http_api import HttpApi, HttpRequest, HttpResponse, Route
from tools import openapi

api = bad_input.api  # the tables' fixture, shared rather than rebuilt

DOCUMENT: dict[str, Any] = json.loads(openapi.DOCUMENT.read_text())
DOCUMENT_URI = "urn:cappi:openapi"
REGISTRY_OF_DOCUMENT = Registry().with_resource(
    DOCUMENT_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


# --- the checker ---


def _escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _at(pointer: str) -> Any:
    node: Any = DOCUMENT
    for token in pointer.removeprefix("/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


@cache
def _validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer`, whose `$ref`s resolve inside the whole document."""
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{quote(pointer)}"}, registry=REGISTRY_OF_DOCUMENT)


def _template(path: str) -> re.Pattern[str]:
    """A path template as API Gateway matches it: each `{Name}` is one non-empty segment."""
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)))


def declared_response(method: str, target: str, status: int) -> tuple[str, dict[str, Any]] | str:
    """(pointer, response object) the document declares for this answer, or why there is none."""
    path = target.partition("?")[0]
    for template, item in DOCUMENT["paths"].items():
        if _template(template).fullmatch(path) and method.lower() in item:
            pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{status}"
            responses = item[method.lower()]["responses"]
            if str(status) not in responses:
                return f"{method} {template} does not declare status {status}"
            break
    else:
        pointer = f"/components/responses/{contract.ROUTE_NOT_FOUND}"
        if status != 404:
            return f"{method} {path} is on no route, where only API Gateway's 404 is declared, not {status}"
    response = _at(pointer)
    while "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
        response = _at(pointer)
    return pointer, response


def mismatches(method: str, target: str, response: HttpResponse) -> list[str]:
    """Everything about `response` that the document does not allow (empty when it fits)."""
    found = declared_response(method, target, response.status)
    if isinstance(found, str):
        return [found]
    pointer, declared = found
    problems = []
    content = declared.get("content") or {}
    if not content:
        if response.body:
            problems.append(f"{response.status} declares no body, got {response.body[:80]!r}")
    elif response.body or method != "HEAD":
        media_type = (response.header("Content-Type") or "").partition(";")[0].strip().lower()
        if media_type not in content:
            problems.append(f"Content-Type {media_type!r} is not one of {sorted(content)}")
        else:
            try:
                body = json.loads(response.body)
            except ValueError:
                problems.append(f"body is not JSON: {response.body[:80]!r}")
            else:
                schema = f"{pointer}/content/{_escape(media_type)}/schema"
                problems.extend(f"body: {e.message}" for e in _validator(schema).iter_errors(body))
    for name, header in declared.get("headers", {}).items():
        value = response.header(name)
        if value is None:
            if header.get("required"):
                problems.append(f"required header {name} is missing")
            continue
        instance: Any = value
        if header.get("schema", {}).get("type") == "integer" and value.isdigit():
            instance = int(value)
        schema = f"{pointer}/headers/{_escape(name)}/schema"
        problems.extend(f"header {name}: {e.message}" for e in _validator(schema).iter_errors(instance))
    return problems


def assert_fits(method: str, target: str, response: HttpResponse) -> None:
    problems = mismatches(method, target, response)
    assert problems == [], f"{method} {target} -> {response.status} {response.body[:200]!r}: {problems}"


# --- the answers ---


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"), [c[1:5] for c in PATH_CASES], ids=[c[0] for c in PATH_CASES]
)
def test_every_bad_input_answer_fits_the_document(
    api: Any, method: str, target: str, headers: list, status: int
) -> None:
    response = api.get(target, GOOD + headers, method=method)
    assert response.status == status
    assert_fits(method, target, response)


@pytest.mark.parametrize(("headers", "status"), [c[1:3] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES])
def test_every_token_answer_fits_the_document(api: Any, headers: list, status: int) -> None:
    target = f"{BASE}/212/AB12/ids"
    response = api.get(target, headers)
    assert response.status == status
    assert_fits("GET", target, response)


def test_a_200_and_the_304_that_revalidates_it(api: Any) -> None:
    target = f"{BASE}/212/AB12/ids"
    first = api.get(target, GOOD)
    assert first.status == 200
    assert_fits("GET", target, first)
    again = api.get(target, [*GOOD, ("If-None-Match", first.header("ETag") or "")])
    assert (again.status, again.body) == (304, b"")
    assert_fits("GET", target, again)


def test_the_nested_single_result_fits_the_document(api: Any) -> None:
    nested = replace(SETTINGS, nested_single_result=True)
    gateway = _lambda_api(lambda: query.QueryDependencies(nested, api.reader, REGISTRY.club_ids))
    target = f"{BASE}/212/EF56/ids"
    response = gateway.handle(HttpRequest("GET", target, GOOD))
    assert response.json() == [["42"]]
    assert_fits("GET", target, response)


@pytest.mark.parametrize("target", ["/nope", "/api/CallData/OpenCalls", f"{BASE}/212/AB12/ids.json"])
def test_an_unknown_route_gets_api_gateways_404(api: Any, target: str) -> None:
    response = api.get(target, GOOD)
    assert response.json() == {"message": "Not Found"}
    assert_fits("GET", target, response)


def test_a_club_not_polled_yet_is_a_503_with_retry_after(api: Any) -> None:
    target = f"{BASE}/300/AB12/ids"
    response = api.get(target, GOOD)
    assert (response.status, response.json()["error"]) == (503, "no_snapshot_yet")
    assert_fits("GET", target, response)


class _FailingReader:
    """A snapshot reader that fails as the store or a bug of ours would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def open_calls(self, club_id: int, tech_id: str) -> OpenCalls | None:
        raise self.error

    def last_poll(self, club_id: int) -> LastPoll | None:
        raise self.error


def _lambda_api(dependencies: Any) -> HttpApi:
    return HttpApi([Route("GET", contract.ROUTE, query.make_handler(dependencies), Allow())])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(SnapshotStoreError("throttled"), 503, "unavailable"), (RuntimeError("a bug"), 500, "internal_error")],
    ids=["store unavailable", "internal error"],
)
def test_failures_of_the_function_fit_the_document(error: Exception, status: int, code: str) -> None:
    reader = _FailingReader(error)
    gateway = _lambda_api(lambda: query.QueryDependencies(SETTINGS, reader, REGISTRY.club_ids))
    target = f"{BASE}/212/AB12/ids"
    response = gateway.handle(HttpRequest("GET", target, [("Authorization", "Bearer test")]))
    assert (response.status, response.json()["error"]) == (status, code)
    assert_fits("GET", target, response)


def test_api_gateways_500_for_a_failed_function_fits_the_document() -> None:
    def crash(_event: dict, _context: Any) -> dict:
        raise RuntimeError("the function died")

    gateway = HttpApi([Route("GET", contract.ROUTE, crash, Allow())])
    target = f"{BASE}/212/AB12/ids"
    response = gateway.handle(HttpRequest("GET", target, [("Authorization", "Bearer test")]))
    assert response.json() == {"message": "Internal Server Error"}
    assert_fits("GET", target, response)


# --- the checker refuses what the document does not allow ---

TARGET = f"{BASE}/212/AB12/ids"
JSON = [("Content-Type", "application/json")]
RETRY = [*JSON, ("Retry-After", "5")]


@pytest.mark.parametrize(
    ("method", "target", "response", "problem"),
    [
        ("GET", TARGET, HttpResponse(400, JSON, b'["8679"]'), "is not valid under any of the given schemas"),
        ("GET", TARGET, HttpResponse(503, RETRY, b'["8679"]'), "is not of type 'object'"),
        ("GET", TARGET, HttpResponse(503, RETRY, b'{"error":"nope","message":"x"}'), "is not one of"),
        ("GET", TARGET, HttpResponse(503, RETRY, b'{"message":"Unavailable"}'), "'error' is a required property"),
        ("GET", TARGET, HttpResponse(200, JSON, b'{"ids":[]}'), "required header ETag is missing"),
        ("GET", TARGET, HttpResponse(418, JSON, b"{}"), "does not declare status 418"),
        ("GET", "/nope", HttpResponse(400, JSON, b'{"message":"x"}'), "only API Gateway's 404"),
        ("GET", TARGET, HttpResponse(304, [], b"[]"), "declares no body"),
        ("GET", TARGET, HttpResponse(404, [("Content-Type", "text/html")], b"<h1>"), "Content-Type 'text/html'"),
        (
            "GET",
            TARGET,
            HttpResponse(503, JSON, b'{"error":"unavailable","message":"x"}'),
            "required header Retry-After is missing",
        ),
        (
            "GET",
            TARGET,
            HttpResponse(503, [*JSON, ("Retry-After", "soon")], b'{"error":"unavailable","message":"x"}'),
            "header Retry-After: 'soon' is not of type 'integer'",
        ),
    ],
    ids=[
        "array for a 400",
        "array for a 503",
        "unknown code",
        "gateway shape for a 503",
        "200 without validators",
        "undeclared status",
        "off-route non-404",
        "304 with a body",
        "HTML error page",
        "503 without Retry-After",
        "Retry-After not seconds",
    ],
)
def test_the_checker_rejects_what_the_document_does_not_allow(
    method: str, target: str, response: HttpResponse, problem: str
) -> None:
    problems = mismatches(method, target, response)
    assert any(problem in p for p in problems), problems


# --- the front door's own refusals (local mode's gateway, over a socket) ---


def _over_the_socket(port: int, head: bytes) -> HttpResponse:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = [tuple(line.decode().split(": ", 1)) for line in header_block.split(b"\r\n") if line]
    return HttpResponse(int(status_line.split()[1]), headers, body)  # type: ignore[arg-type]


def _head(*extra: str) -> bytes:
    """A GET of the route with `extra` header lines."""
    return "\r\n".join([f"GET {BASE}/212/AB12/ids HTTP/1.1", "Host: x", *extra, "", ""]).encode()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"GET {BASE}/212/{'A' * 10_300}/ids HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
        (_head(f"X-Big: {'b' * 10_300}"), 431),
        (_head(*(f"X-{n}: 1" for n in range(120))), 431),
        (_head("Content-Length: 20000000"), 413),
        (_head("Content-Length: 3", "Transfer-Encoding: chunked"), 400),
    ],
    ids=["request-line-too-long", "header-too-long", "too-many-headers", "body-too-large", "two-framings"],
)
def test_the_front_doors_refusals_fit_the_document(api: Any, head: bytes, status: int) -> None:
    from local.gateway import Gateway

    gateway = Gateway(api.api, {}, "127.0.0.1", 0)
    gateway.start()
    try:
        response = _over_the_socket(gateway.port, head)
    finally:
        gateway.stop()
    assert response.status == status
    assert_fits("GET", f"{BASE}/212/AB12/ids", response)
