"""Malformed requests through the emulated HTTP API (real JWT authorizer, real query Lambda): each gets the
expected 4xx with a JSON body, and nothing produces a 500."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import support.jwt_keys as keys
from support.query_support import QueryApi, query_api

from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer

BASE = "/api/CallData/OpenCalls"
SIGNER = keys.rsa_key("kid-1")
OTHER = keys.rsa_key("kid-1")  # same kid, different key: a forged signature


@pytest.fixture(scope="module")
def api() -> Iterator[QueryApi]:
    jwks = JwksCache(keys.ISSUER + ".well-known/jwks.json", fetch=lambda _uri: keys.jwks(SIGNER))
    authorizer = JwtAuthorizer(AuthorizerConfig(keys.ISSUER, keys.AUDIENCE, ("read:callids",)), jwks)
    with query_api(authorizer=authorizer) as running:
        yield running


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


GOOD = bearer(SIGNER.sign(keys.claims()))

# (label, method, target, extra headers, expected status, expected error code or API Gateway message)
PATH_CASES = [
    ("valid", "GET", f"{BASE}/212/AB12/ids", [], 200, None),
    ("valid unknown tech", "GET", f"{BASE}/212/ZZ99/ids", [], 200, None),
    ("32-char tech", "GET", f"{BASE}/212/{'A' * 32}/ids", [], 200, None),
    ("encoded digits", "GET", f"{BASE}/%32%31%32/AB12/ids", [], 200, None),
    ("query string ignored", "GET", f"{BASE}/212/AB12/ids?x=1&y=2", [], 200, None),
    ("non-numeric club", "GET", f"{BASE}/abc/AB12/ids", [], 400, "invalid_club_id"),
    ("negative club", "GET", f"{BASE}/-1/AB12/ids", [], 400, "invalid_club_id"),
    ("4-digit club", "GET", f"{BASE}/1000/AB12/ids", [], 400, "invalid_club_id"),
    ("4-digit club, leading zero", "GET", f"{BASE}/0212/AB12/ids", [], 400, "invalid_club_id"),
    ("decimal club", "GET", f"{BASE}/2.5/AB12/ids", [], 400, "invalid_club_id"),
    ("club with space", "GET", f"{BASE}/%20212/AB12/ids", [], 400, "invalid_club_id"),
    ("unicode digits club", "GET", f"{BASE}/%D9%A3/AB12/ids", [], 400, "invalid_club_id"),
    ("empty club", "GET", f"{BASE}//AB12/ids", [], 404, "Not Found"),
    ("tech with single quote", "GET", f"{BASE}/212/ab'12/ids", [], 400, "invalid_tech_id"),
    ("tech with double quote", "GET", f'{BASE}/212/ab"12/ids', [], 400, "invalid_tech_id"),
    ("tech with encoded quote", "GET", f"{BASE}/212/ab%2212/ids", [], 400, "invalid_tech_id"),
    ("tech with encoded slash", "GET", f"{BASE}/212/ab%2F12/ids", [], 400, "invalid_tech_id"),
    ("tech with backslash", "GET", f"{BASE}/212/ab%5C12/ids", [], 400, "invalid_tech_id"),
    ("tech with space", "GET", f"{BASE}/212/ab%2012/ids", [], 400, "invalid_tech_id"),
    ("tech between spaces", "GET", f"{BASE}/212/%20AB12%20/ids", [], 200, None),  # trimmed, as in a feed
    ("tech between tabs", "GET", f"{BASE}/212/%09ab12%09/ids", [], 200, None),
    ("tech before a newline", "GET", f"{BASE}/212/ab12%0A/ids", [], 400, "invalid_tech_id"),  # a control character
    ("tech after a carriage return", "GET", f"{BASE}/212/%0Dab12/ids", [], 400, "invalid_tech_id"),
    ("tech between separators", "GET", f"{BASE}/212/%1FAB12%1E/ids", [], 400, "invalid_tech_id"),  # not ASCII space
    ("tech after no-break space", "GET", f"{BASE}/212/%C2%A0AB12/ids", [], 400, "invalid_tech_id"),
    ("tech with unicode", "GET", f"{BASE}/212/%C3%A9t%C3%A9/ids", [], 400, "invalid_tech_id"),
    ("tech with NUL", "GET", f"{BASE}/212/AB12%00/ids", [], 400, "invalid_tech_id"),
    ("tech with semicolon", "GET", f"{BASE}/212/ab;12/ids", [], 400, "invalid_tech_id"),
    ("tech with dash", "GET", f"{BASE}/212/ab-12/ids", [], 400, "invalid_tech_id"),
    ("33-char tech", "GET", f"{BASE}/212/{'A' * 33}/ids", [], 400, "invalid_tech_id"),
    ("1000-char tech", "GET", f"{BASE}/212/{'A' * 1000}/ids", [], 400, "invalid_tech_id"),
    ("tech with slash", "GET", f"{BASE}/212/ab/12/ids", [], 404, "Not Found"),
    ("missing tech", "GET", f"{BASE}/212/ids", [], 404, "Not Found"),
    ("missing ids", "GET", f"{BASE}/212/AB12", [], 404, "Not Found"),
    ("only club", "GET", f"{BASE}/212", [], 404, "Not Found"),
    ("extra segment", "GET", f"{BASE}/212/AB12/ids/extra", [], 404, "Not Found"),
    ("trailing slash", "GET", f"{BASE}/212/AB12/ids/", [], 404, "Not Found"),
    ("wrong case path", "GET", "/api/calldata/opencalls/212/AB12/ids", [], 404, "Not Found"),
    ("root", "GET", "/", [], 404, "Not Found"),
    ("POST", "POST", f"{BASE}/212/AB12/ids", [], 404, "Not Found"),
    ("PUT", "PUT", f"{BASE}/212/AB12/ids", [], 404, "Not Found"),
    ("DELETE", "DELETE", f"{BASE}/212/AB12/ids", [], 404, "Not Found"),
    ("HEAD", "HEAD", f"{BASE}/212/AB12/ids", [], 404, "Not Found"),
    ("unknown club", "GET", f"{BASE}/999/AB12/ids", [], 404, "unknown_club"),
    ("junk If-None-Match", "GET", f"{BASE}/212/AB12/ids", [("If-None-Match", "{{junk}}")], 200, None),
    ("long If-None-Match", "GET", f"{BASE}/212/AB12/ids", [("If-None-Match", '"x",' * 1500)], 200, None),
    ("huge header", "GET", f"{BASE}/212/AB12/ids", [("X-Junk", "x" * 12_000)], 431, "Request Header Fields Too Large"),
    ("many headers", "GET", f"{BASE}/212/AB12/ids", [(f"X-H{i}", "y" * 100) for i in range(120)], 431, None),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "status", "code"), [c[1:] for c in PATH_CASES], ids=[c[0] for c in PATH_CASES]
)
def test_malformed_requests_get_the_right_4xx_with_a_json_body(
    api: QueryApi, method: str, target: str, headers: list, status: int, code: str | None
) -> None:
    response = api.get(target, GOOD + headers, method=method)
    assert response.status == status
    body = response.json()
    if status == 200:
        assert isinstance(body, list)
    elif code is not None:
        assert code in (body.get("error"), body.get("message")), body
        assert isinstance(body.get("message"), str)


def now() -> int:
    return int(time.time())


TOKEN_CASES = [
    ("no header", [], 401, "missing"),
    ("empty header", [("Authorization", "")], 401, None),
    ("basic scheme", [("Authorization", "Basic dXNlcjpwYXNz")], 401, None),
    ("bearer without token", [("Authorization", "Bearer ")], 401, None),
    ("garbage", bearer("not-a-token"), 401, None),
    ("two segments", bearer("abc.def"), 401, None),
    ("bad base64", bearer("!!!.???.***"), 401, None),
    ("expired", bearer(SIGNER.sign(keys.claims(iat=now() - 7200, exp=now() - 3600))), 401, None),
    ("not yet valid", bearer(SIGNER.sign(keys.claims(nbf=now() + 3600))), 401, None),
    ("issued in the future", bearer(SIGNER.sign(keys.claims(iat=now() + 3600))), 401, None),
    ("wrong issuer", bearer(SIGNER.sign(keys.claims(iss="https://evil.example/"))), 401, None),
    ("issuer without slash", bearer(SIGNER.sign(keys.claims(iss=keys.ISSUER.rstrip("/")))), 401, None),
    ("wrong audience", bearer(SIGNER.sign(keys.claims(aud="https://cappi.clubassist.com"))), 401, None),
    ("unknown key", bearer(keys.rsa_key("kid-unknown").sign(keys.claims())), 401, None),
    ("forged signature", bearer(OTHER.sign(keys.claims())), 401, None),
    ("alg none", bearer(keys.unsigned({"alg": "none", "kid": "kid-1"}, keys.claims())), 401, None),
    (
        "HS256 with the public key",
        bearer(keys.hs256_with_secret({"alg": "HS256", "kid": "kid-1"}, keys.claims(), SIGNER.public_pem())),
        401,
        None,
    ),
    ("no scope", bearer(SIGNER.sign(keys.claims(scope="openid profile"))), 403, None),
    ("valid", GOOD, 200, None),
]


@pytest.mark.parametrize(("headers", "status", "reason"), [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES])
def test_every_token_case_through_the_gateway(api: QueryApi, headers: list, status: int, reason: str | None) -> None:
    response = api.get(f"{BASE}/212/AB12/ids", headers)
    assert response.status == status
    body = response.json()
    if status == 401:
        assert body == {"message": "Unauthorized"}
        assert response.header("www-authenticate").startswith("Bearer")
    elif status == 403:
        assert body == {"message": "Forbidden"}
        assert 'error="insufficient_scope"' in response.header("www-authenticate")
    else:
        assert body == ["8655R", "8679", "9999"]


def test_the_table_is_big_enough() -> None:
    assert len(PATH_CASES) + len(TOKEN_CASES) >= 30
    assert len([c for c in PATH_CASES if 400 <= c[4] < 500]) >= 30
