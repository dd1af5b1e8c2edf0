"""Hostile bearer tokens against local mode's JWT authorizer, and through the emulated HTTP API in front of the
query Lambda: every one is refused with API Gateway's 401 and its JSON body, never a 500 or an exception, and no
header of the token makes the authorizer fetch anything but the configured JWKS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import support.jwt_keys as K
from support.club_servers import LoopbackServer, respond, serve
from support.query_support import query_api

from local.jwt_authorizer import ERROR, UNAUTHORIZED_BODY, AuthorizerConfig, JwtAuthorizer

JWKS_URI = K.ISSUER + ".well-known/jwks.json"
PATH = "/api/CallData/OpenCalls/212/AB12/ids"


@dataclass
class RecordingIssuer:
    """The issuer's JWKS as an injected fetch, recording every URL the authorizer asks for."""

    document: bytes
    calls: list[str] = field(default_factory=list)

    def __call__(self, uri: str) -> bytes:
        self.calls.append(uri)
        return self.document


@pytest.fixture(scope="module")
def keys() -> SimpleNamespace:
    return SimpleNamespace(k1=K.rsa_key("k1"), attacker=K.rsa_key("k1"), evil=K.rsa_key("evil"), ec=K.ec_private_key())


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[LoopbackServer]:
    """Where jku/x5u headers point: it must never be asked for anything."""
    with serve() as server:
        server.route("/jwks.json", respond(body=b'{"keys": []}'))
        yield server


@pytest.fixture
def issuer(keys: SimpleNamespace) -> RecordingIssuer:
    return RecordingIssuer(K.jwks(keys.k1))


@pytest.fixture
def authorizer(issuer: RecordingIssuer) -> JwtAuthorizer:
    return JwtAuthorizer.from_config(AuthorizerConfig(K.ISSUER, K.AUDIENCE, (K.SCOPE,)), fetch=issuer)


def with_literal(claim: str, literal: str) -> bytes:
    """Valid claims whose `claim` is written as raw JSON text (NaN, null...), as a forger would."""
    body = json.dumps(K.claims(**{claim: 0}))
    return body.replace(f'"{claim}": 0', f'"{claim}": {literal}').encode()


def pad(token: str, segment: int, padding: str = "==") -> str:
    parts = token.split(".")
    parts[segment] += padding
    return ".".join(parts)


Forge = Callable[[SimpleNamespace, str], str]  # (keys, elsewhere URL) -> the Authorization header value
NOW = int(time.time())
HOSTILE: list[tuple[str, Forge]] = [
    # time claims that are not NumericDates, or not ones any issuer means
    *(
        (
            f"{claim}-{name}",
            lambda k, _u, claim=claim, value=value: "Bearer " + k.k1.sign_raw(K.claims(**{claim: value})),
        )
        for claim in ("exp", "nbf", "iat")
        for name, value in (
            ("digit-string", str(NOW + 3600)),
            ("true", True),
            ("false", False),
            ("list", [NOW + 3600]),
            ("object", {"t": NOW + 3600}),
            ("huge-float", 1e308),
            ("huge-int", 10**30),
            ("negative", -1),
        )
    ),
    *(
        (
            f"{claim}-{literal if len(literal) < 10 else str(len(literal)) + '-digits'}",
            lambda k, _u, claim=claim, literal=literal: "Bearer " + k.k1.sign_raw(with_literal(claim, literal)),
        )
        for claim in ("exp", "nbf", "iat")
        for literal in ("NaN", "Infinity", "-Infinity", "null", "1e400", "9" * 400)
    ),
    ("exp-past", lambda k, _u: "Bearer " + k.k1.sign(K.claims(iat=NOW - 7200, exp=NOW - 3600))),
    # algorithms
    ("alg-none", lambda k, _u: "Bearer " + K.unsigned({"alg": "none", "kid": "k1"}, K.claims())),
    ("alg-None", lambda k, _u: "Bearer " + K.unsigned({"alg": "None", "kid": "k1"}, K.claims())),
    (
        "alg-none-with-signature",
        lambda k, _u: "Bearer " + K.unsigned({"alg": "none", "kid": "k1"}, K.claims()) + "c2ln",
    ),
    ("alg-missing", lambda k, _u: "Bearer " + K.unsigned({"kid": "k1"}, K.claims()) + "c2ln"),
    ("alg-list", lambda k, _u: "Bearer " + k.k1.sign_raw(K.claims(), alg=["RS256"])),
    (
        "alg-confusion-hs256-public-key",
        lambda k, _u: "Bearer " + K.hs256_with_secret({"alg": "HS256", "kid": "k1"}, K.claims(), k.k1.public_pem()),
    ),
    ("alg-rs512", lambda k, _u: "Bearer " + k.k1.sign(K.claims(), alg="RS512")),
    ("alg-ps256", lambda k, _u: "Bearer " + k.k1.sign(K.claims(), alg="PS256")),
    ("alg-es256", lambda k, _u: "Bearer " + jwt.encode(K.claims(), k.ec, algorithm="ES256", headers={"kid": "k1"})),
    ("impostor-key-same-kid", lambda k, _u: "Bearer " + k.attacker.sign(K.claims())),
    # kid injections
    *(
        (f"kid-{name}", lambda k, _u, kid=kid: "Bearer " + k.evil.sign_raw(K.claims(), kid=kid))
        for name, kid in (
            ("path-traversal", "../../x"),
            ("path-traversal-to-real", "../k1"),
            ("absolute-path", "/etc/passwd"),
            ("nul", "k1\x00"),
            ("nul-prefix", "\x00k1"),
            ("very-long", "k" * 6000),
            ("sql", "' OR '1'='1"),
            ("url", "https://attacker.example/jwks.json"),
            ("trailing-space", "k1 "),
            ("empty", ""),
            ("number", 1),
            ("list", ["k1"]),
            ("object", {"kid": "k1"}),
            ("null", None),
        )
    ),
    # headers that name other keys: never fetched, never trusted
    ("jku-elsewhere", lambda k, url: "Bearer " + k.evil.sign_raw(K.claims(), kid="evil", jku=url)),
    ("x5u-elsewhere", lambda k, url: "Bearer " + k.evil.sign_raw(K.claims(), kid="evil", x5u=url)),
    ("jku-with-real-kid", lambda k, url: "Bearer " + k.attacker.sign_raw(K.claims(), jku=url)),
    ("jwk-embedded", lambda k, _u: "Bearer " + k.attacker.sign_raw(K.claims(), jwk=k.attacker.jwk())),
    ("x5c-embedded", lambda k, _u: "Bearer " + k.attacker.sign_raw(K.claims(), x5c=["MIIBIjANBgkqhkiG9w0BAQ"])),
    # critical extensions
    ("crit-unknown", lambda k, _u: "Bearer " + k.k1.sign_raw(K.claims(), crit=["exp"])),
    ("crit-not-a-list", lambda k, _u: "Bearer " + k.k1.sign_raw(K.claims(), crit="exp")),
    ("crit-empty", lambda k, _u: "Bearer " + k.k1.sign_raw(K.claims(), crit=[])),
    ("crit-b64-false", lambda k, _u: "Bearer " + k.k1.sign_raw(K.claims(), crit=["b64"], b64=False)),
    # not one JWS
    ("nested-jwt", lambda k, _u: "Bearer " + k.k1.sign_raw(k.k1.sign(K.claims()).encode(), cty="JWT")),
    ("payload-array", lambda k, _u: "Bearer " + k.k1.sign_raw(b"[1, 2]")),
    ("payload-deeply-nested", lambda k, _u: "Bearer " + k.k1.sign_raw(b"[" * 3000 + b"]" * 3000)),
    ("payload-not-utf8", lambda k, _u: "Bearer " + k.k1.sign_raw(b'{"exp": "\xff"}')),
    (
        "jwe-five-segments",
        lambda _k, _u: "Bearer " + ".".join([K.segment({"alg": "RSA-OAEP", "enc": "A256GCM"}), "a", "b", "c", "d"]),
    ),
    ("two-tokens", lambda k, _u: "Bearer " + k.k1.sign(K.claims()) + " " + k.k1.sign(K.claims())),
    # encodings
    ("padded-signature", lambda k, _u: "Bearer " + pad(k.k1.sign(K.claims()), 2)),
    ("padded-header", lambda k, _u: "Bearer " + pad(k.k1.sign(K.claims()), 0)),
    ("single-pad", lambda k, _u: "Bearer " + pad(k.k1.sign(K.claims()), 2, "=")),
    (
        "standard-base64-alphabet",
        lambda k, _u: "Bearer " + k.k1.sign(K.claims()).replace("-", "+").replace("_", "/") + "+/",
    ),
    ("garbage-segments", lambda _k, _u: "Bearer !!!.$$$.%%%"),
    ("non-ascii", lambda _k, _u: "Bearer ä.ö.ü"),
    ("control-characters", lambda k, _u: "Bearer " + k.k1.sign(K.claims()).replace(".", "\x00.", 1)),
    ("space-inside", lambda k, _u: "Bearer " + k.k1.sign(K.claims()).replace(".", " .", 1)),
    ("empty-segments", lambda _k, _u: "Bearer .."),
    ("header-not-json", lambda _k, _u: "Bearer " + K.b64url(b"{not json") + ".e30.c2ln"),
    ("header-deeply-nested", lambda _k, _u: "Bearer " + K.b64url(b"[" * 5000) + ".e30.c2ln"),
    ("huge-token", lambda k, _u: "Bearer " + k.k1.sign(K.claims(pad="x" * 20_000))),
    ("huge-garbage", lambda _k, _u: "Bearer " + "A" * 1_000_000 + ".B.C"),
]


def hostile_ids() -> list[str]:
    return [name for name, _forge in HOSTILE]


def test_the_table_has_no_duplicate_names() -> None:
    assert len(set(hostile_ids())) == len(HOSTILE)


@pytest.mark.parametrize(("name", "forge"), HOSTILE, ids=hostile_ids())
def test_each_hostile_token_is_refused_with_a_401_and_a_json_body(
    name: str,
    forge: Forge,
    keys: SimpleNamespace,
    authorizer: JwtAuthorizer,
    issuer: RecordingIssuer,
    elsewhere: LoopbackServer,
) -> None:
    url = elsewhere.base_url + "/jwks.json"
    decision = authorizer.authorize(forge(keys, url))

    assert (decision.allowed, decision.status) == (False, 401), decision.reason
    assert decision.reason != ERROR  # refused on purpose, not by the catch-all after an unexpected exception
    assert decision.body == UNAUTHORIZED_BODY
    assert json.loads(decision.body) == {"message": "Unauthorized"}
    assert decision.headers["www-authenticate"].startswith("Bearer")
    assert decision.claims is None
    assert set(issuer.calls) <= {JWKS_URI}  # jku, x5u, kid URLs: never fetched
    assert elsewhere.seen == []


def test_a_good_token_still_passes(keys: SimpleNamespace, authorizer: JwtAuthorizer) -> None:
    assert authorizer.authorize("Bearer " + keys.k1.sign(K.claims())).allowed


def test_every_hostile_token_gets_api_gateways_401_through_the_http_api(
    keys: SimpleNamespace, authorizer: JwtAuthorizer, elsewhere: LoopbackServer
) -> None:
    url = elsewhere.base_url + "/jwks.json"
    with query_api(authorizer=authorizer) as api:
        assert api.get(PATH, [("Authorization", "Bearer " + keys.k1.sign(K.claims()))]).status == 200
        answers: dict[str, Any] = {}
        for name, forge in HOSTILE:
            header = forge(keys, url)
            if any(c in header for c in "\x00\r\n"):
                continue  # not a header value HTTP can carry; the decision test above covers it
            response = api.get(PATH, [("Authorization", header)])
            answers[name] = (response.status, response.json(), response.header("content-type"))
    # Past API Gateway's 10 KB limit on the request head, the front door answers 431 before any authorizer runs.
    expected = {name: (431, {"message": "Request Header Fields Too Large"}) for name in ("huge-token", "huge-garbage")}
    wrong = {
        name: answer
        for name, answer in answers.items()
        if answer[:2] != expected.get(name, (401, {"message": "Unauthorized"}))
    }
    assert wrong == {}
    assert all(
        content_type and content_type.startswith("application/json") for _s, _b, content_type in answers.values()
    )
