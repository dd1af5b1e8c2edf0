"""Club-list claims that are present but unusable, through local mode's JWT authorizer, the emulated HTTP API and
the query Lambda: each fails closed with the query's 403 `forbidden_club`, as a list without the club does.

API Gateway (and local mode's authorizer, which follows it) leaves a null claim out of `jwt.claims`, so at the
Lambda a null club list would look like no club list at all, which is allowed unless the stage requires one. The
handler reads the verified token itself for that one claim. An absent claim keeps today's answer."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import support.jwt_keys as K
from support.query_support import DEFAULT_CLAIMS, Allow, query_api

from local.jwt_authorizer import AuthorizerConfig, JwtAuthorizer

CLUB_CLAIM = "https://cappi.clubassist.com/clubs"
PATH = "/api/CallData/OpenCalls/212/AB12/ids"
KEY = K.rsa_key("k1")
ABSENT = object()

# The club-list claim as the token carries it (JSON) -> the status for club 212.
TOKEN_CLAIMS: list[tuple[str, Any, int]] = [
    ("null", None, 403),
    ("empty-string", "", 403),
    ("empty-list", [], 403),
    ("null-text", "null", 403),
    ("object", {}, 403),
    ("object-with-club", {"212": True}, 403),
    ("list-of-null", [None], 403),
    ("club-and-null", [212, None], 403),
    ("club-and-junk", [212, "x"], 403),
    ("club-and-object", [212, {}], 403),
    ("nested-list", [[212]], 200),  # rendered `[[212]]`: the brackets are separators, as for `[212]`
    ("other-number", 42, 403),
    ("boolean", True, 403),
    ("absent", ABSENT, 200),
    ("the-club", [212, 4], 200),
    ("other-clubs", [4], 403),
    ("the-club-as-text", "212", 200),
]


def bearer(club_claim: Any) -> str:
    claims = K.claims()
    if club_claim is not ABSENT:
        claims[CLUB_CLAIM] = club_claim
    return "Bearer " + KEY.sign(claims)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def authorizer() -> JwtAuthorizer:
    return JwtAuthorizer.from_config(AuthorizerConfig(K.ISSUER, K.AUDIENCE, (K.SCOPE,)), fetch=lambda _uri: K.jwks(KEY))


@pytest.mark.parametrize(
    ("club_claim", "status"), [(v, s) for _n, v, s in TOKEN_CLAIMS], ids=[n for n, *_ in TOKEN_CLAIMS]
)
def test_a_present_but_unusable_club_claim_fails_closed_through_local_mode(club_claim: Any, status: int) -> None:
    with query_api(authorizer=authorizer()) as api:
        response = api.get(PATH, [("Authorization", bearer(club_claim))])
    assert response.status == status, response.body
    if status == 403:
        assert response.json()["error"] == "forbidden_club"


def test_a_null_club_claim_is_refused_when_the_stage_requires_one_too() -> None:
    with query_api(authorizer=authorizer(), require_club_claim=True) as api:
        assert api.get(PATH, [("Authorization", bearer(None))]).json()["error"] == "forbidden_club"
        assert api.get(PATH, [("Authorization", bearer(ABSENT))]).json()["error"] == "forbidden_club"
        assert api.get(PATH, [("Authorization", bearer([212]))]).status == 200


# The club-list claim as API Gateway hands it to the Lambda (every value a string) -> the status for club 212.
RENDERED: list[tuple[str, int]] = [
    ("null", 403),
    ("", 403),
    ("[]", 403),
    ("{}", 403),
    ('{"212":true}', 403),
    ("[null]", 403),
    ("[212 null]", 403),
    ("[212 x]", 403),
    ("None", 403),
    ("42", 403),
    ("[212]", 200),
    ("212,4", 200),
]


@pytest.mark.parametrize(("claim", "status"), RENDERED)
def test_each_rendered_club_claim_at_the_lambda(claim: str, status: int) -> None:
    with query_api(authorizer=Allow({**DEFAULT_CLAIMS, CLUB_CLAIM: claim})) as api:
        response = api.get(PATH)
    assert response.status == status, response.body
    if status == 403:
        assert response.json() == {"error": "forbidden_club", "message": "this client may not read club 212"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer test",
        "Bearer a.b.c",
        "Bearer a.!!!.c",
        "Bearer a." + "e" * 9_000 + ".c",
        "Bearer a." + b64(b"[1]") + ".c",
        "Bearer a." + b64(b"[" * 5_000) + ".c",  # too deep for the JSON parser
        "Bearer a." + b64(b"\xff\xfe") + ".c",
        "Bearer a." + b64(json.dumps({CLUB_CLAIM: None}).encode()) + ".c.d",
    ],
)
def test_an_unreadable_placeholder_token_changes_nothing(authorization: str) -> None:
    """Tests' hand-made events carry placeholder tokens: nothing is read from them, and nothing breaks."""
    with query_api() as api:
        assert api.get(PATH, [("Authorization", authorization)]).status == 200
