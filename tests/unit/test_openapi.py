"""The committed OpenAPI document is the one the query resolver generates."""

from __future__ import annotations

import json

from tools import openapi


def test_committed_openapi_document_matches_the_resolver() -> None:
    assert openapi.DOCUMENT.read_text() == openapi.build(), "docs/openapi.json drifted: run `python -m tools.openapi`"


def test_document_describes_the_one_route_and_its_rules() -> None:
    document = json.loads(openapi.DOCUMENT.read_text())
    (path,) = document["paths"]
    assert path == "/api/CallData/OpenCalls/{ClubId}/{TechId}/ids"
    operation = document["paths"][path]["get"]
    assert {p["name"]: p["schema"]["pattern"] for p in operation["parameters"]} == {
        "ClubId": "^[0-9]{1,3}$",
        "TechId": "^[A-Za-z0-9]{1,32}$",
    }
    assert document["security"] == [{"auth0": ["read:callids"]}]
