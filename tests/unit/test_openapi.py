"""The committed OpenAPI document is the one the query resolver generates, and it says what the API answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cappi.contracts import api
from cappi.domain import query as rules
from cappi.handlers import http
from tools import openapi

DOCUMENT: dict[str, Any] = json.loads(openapi.DOCUMENT.read_text())
OPERATION: dict[str, Any] = DOCUMENT["paths"][api.ROUTE]["get"]
REFUSALS = {cls.__name__: cls for cls in openapi._subclasses(rules.Refused)}


def test_committed_openapi_document_matches_the_resolver() -> None:
    assert openapi.DOCUMENT.read_text() == openapi.build(), "docs/openapi.json drifted: run `python -m tools.openapi`"


def test_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert DOCUMENT["openapi"].startswith("3.1")
    validator.validate(DOCUMENT)


def test_document_describes_the_one_route_and_its_rules() -> None:
    document = DOCUMENT
    (path,) = document["paths"]
    assert path == "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
    operation = document["paths"][path]["get"]
    path_parameters = [p for p in operation["parameters"] if p["in"] == "path"]
    assert {p["name"]: p["schema"]["pattern"] for p in path_parameters} == {
        "ClubId": "^[0-9]{1,3}$",
        "TechId": "^[A-Za-z0-9]{1,32}$",
    }
    # The one other parameter: If-None-Match, optional, so a generated client can send it per call.
    (header,) = [p for p in operation["parameters"] if p["in"] != "path"]
    assert (header["name"], header["in"], header["required"], header["schema"]) == (
        "If-None-Match",
        "header",
        False,
        {"type": "string"},
    )
    assert "304" in header["description"]
    assert document["security"] == [{"auth0": ["read:callids"]}]


def test_the_title_is_short_so_generated_packages_get_a_short_name() -> None:
    # openapi-python-client names its package `<title>_client`; the long name was
    # `cappi_club_assist_api_for_open_call_i_ds_client`.
    assert DOCUMENT["info"]["title"] == "CAPPI"
    assert DOCUMENT["info"]["summary"] == "Club Assist API for open call IDs"


def test_every_status_the_api_answers_is_declared_with_its_own_shape() -> None:
    responses = OPERATION["responses"]
    assert set(responses) == {"200", "304", "400", "401", "403", "404", "413", "414", "429", "431", "500", "503"}
    assert "content" not in responses["304"]
    schemas = {status: r["content"]["application/json"]["schema"] for status, r in responses.items() if "content" in r}
    assert schemas["200"] == {"$ref": "#/components/schemas/OpenCallIds"}
    assert schemas["503"] == {"$ref": "#/components/schemas/Error"}
    both = {"oneOf": [{"$ref": "#/components/schemas/Error"}, {"$ref": "#/components/schemas/GatewayError"}]}
    assert schemas["400"] == schemas["401"] == schemas["403"] == schemas["404"] == schemas["500"] == both
    gateway_only = {"$ref": "#/components/schemas/GatewayError"}
    assert schemas["413"] == schemas["414"] == schemas["429"] == schemas["431"] == gateway_only
    assert not any(s.get("type") == "array" for status, s in schemas.items() if status != "200")


def test_headers_are_declared_per_response() -> None:
    responses = OPERATION["responses"]

    def required(status: str) -> dict[str, bool]:
        return {name: h["required"] for name, h in responses[status].get("headers", {}).items()}

    validators = {"ETag": True, "Last-Modified": True, "Cache-Control": True}
    assert required("200") == required("304") == validators
    assert required("401") == {"WWW-Authenticate": True}
    assert required("403") == {"WWW-Authenticate": False}  # CAPPI's forbidden_club has no challenge
    assert required("503") == {"Retry-After": True}
    assert required("429") == {"Retry-After": False}  # API Gateway's throttling sends none today
    assert responses["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 0}


def test_security_scheme_and_servers_name_both_stages() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["auth0"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["scopes"] == {"read:callids": "read open call IDs"}
    assert flow["tokenUrl"] == api.ENVIRONMENTS["prod"].token_url
    servers = {s["url"]: s["description"] for s in DOCUMENT["servers"]}
    assert set(servers) == {env.base_url for env in api.ENVIRONMENTS.values()}
    for env in api.ENVIRONMENTS.values():
        assert env.token_url in scheme["description"]
        assert env.token_url in servers[env.base_url]
    assert DOCUMENT["servers"][0]["url"] == api.ENVIRONMENTS["prod"].base_url  # the flow's token URL is prod's


def test_error_schema_lists_every_code_the_code_raises() -> None:
    codes = openapi.error_codes()
    assert DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]["enum"] == sorted(codes)
    assert {
        "invalid_club_id": {400},
        "invalid_tech_id": {400},
        "unauthorized": {401},
        "insufficient_scope": {403},
        "forbidden_club": {403},
        "unknown_club": {404},
        "not_found": {404},
        "no_snapshot_yet": {503},
        "unavailable": {503},
        "internal_error": {500},
    }.items() <= codes.items()
    assert "`invalid_club_id`, `invalid_tech_id`" in OPERATION["responses"]["400"]["description"]


def test_scan_finds_a_new_code_and_refuses_one_it_cannot_read() -> None:
    found = openapi.codes_in(
        'raise rules.UnknownClub("gone_club", "x")\nhttp.error(410, "gone", "y")\nlogger.error("not a code")',
        "new.py",
        REFUSALS,
        http.STATUS,
    )
    assert list(found) == [("gone_club", 404), ("gone", 410)]
    with pytest.raises(ValueError, match="not a string literal"):
        list(openapi.codes_in("raise UnknownClub(code, 'x')", "new.py", REFUSALS, http.STATUS))
    with pytest.raises(ValueError, match="literal status"):
        list(openapi.codes_in("http.error(status, 'x', 'y')", "new.py", REFUSALS, http.STATUS))


def test_a_code_on_an_undeclared_status_fails_the_build(tmp_path: Path) -> None:
    module = tmp_path / "teapot.py"
    module.write_text('http.error(418, "teapot", "short and stout")\n')
    codes = openapi.error_codes([module])
    assert codes["teapot"] == {418}
    with pytest.raises(ValueError, match=r"statuses \[418\]"):
        openapi._describe_responses({"components": {}, "paths": {}}, codes)


def test_every_reference_resolves() -> None:
    openapi._check_references(DOCUMENT)
    with pytest.raises(ValueError, match="dangling"):
        openapi._check_references({"a": {"$ref": "#/components/schemas/Missing"}})
