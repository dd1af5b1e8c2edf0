"""The local JWT authorizer refuses and admits exactly what API Gateway's HTTP API JWT authorizer does."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import support.jwt_keys as K
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clock import Clock
from support.club_servers import closed_port, redirect, respond, serve, stall_after

from local.jwt_authorizer import (
    FORBIDDEN_BODY,
    UNAUTHORIZED_BODY,
    AuthorizerConfig,
    AuthorizerDecision,
    JwksCache,
    JwtAuthorizer,
    api_gateway_claims,
    parse_jwks,
    token_scopes,
)

LEEWAY = 10.0
COOLDOWN = 30.0
MAX_AGE = 3600.0
JWKS_PATH = "/.well-known/jwks.json"


def challenge(description: str, scope: str = K.SCOPE) -> str:
    return f'Bearer scope="{scope}" error="invalid_token" error_description="{description}"'


def assert_refused(decision: AuthorizerDecision, reason: str, description: str, status: int = 401) -> None:
    assert (decision.allowed, decision.status, decision.reason) == (False, status, reason)
    assert decision.body == (UNAUTHORIZED_BODY if status == 401 else FORBIDDEN_BODY)
    assert decision.headers == {"www-authenticate": challenge(description)}
    assert decision.claims is None
    assert decision.scopes is None


@dataclass
class FakeIssuer:
    """The issuer's JWKS endpoint as an injected fetch: what it serves, how often it was asked, whether it is up."""

    keys: list[Any]
    up: bool = True
    calls: list[str] = field(default_factory=list)
    delay_s: float = 0.0  # how long each answer takes
    document: bytes | None = None  # served instead of `keys` when set

    def __call__(self, uri: str) -> bytes:
        self.calls.append(uri)
        time.sleep(self.delay_s)
        if not self.up:
            raise ConnectionRefusedError("JWKS endpoint down")
        return self.document if self.document is not None else K.jwks(*self.keys)


@pytest.fixture(scope="session")
def keys() -> SimpleNamespace:
    k1 = K.rsa_key("k1")
    return SimpleNamespace(
        k1=k1,
        k2=K.rsa_key("k2"),
        impostor=K.rsa_key("k1"),  # another private key claiming k1's kid
        ec=K.ec_private_key(),
    )


@dataclass
class Env:
    authorizer: JwtAuthorizer
    issuer: FakeIssuer
    clock: Clock
    keys: SimpleNamespace

    def authorize(self, header: str | None) -> AuthorizerDecision:
        return self.authorizer.authorize(header)

    def bearer(self, **claims: Any) -> str:
        return "Bearer " + self.keys.k1.sign(K.claims(**claims))


def make_env(
    keys: SimpleNamespace, scopes: tuple[str, ...] = (K.SCOPE,), issuer: FakeIssuer | None = None, **config: Any
) -> Env:
    issuer = issuer or FakeIssuer([keys.k1])
    clock = Clock()
    cfg = AuthorizerConfig(
        K.ISSUER,
        K.AUDIENCE,
        scopes,
        leeway_s=LEEWAY,
        jwks_cooldown_s=COOLDOWN,
        jwks_max_age_s=MAX_AGE,
        **config,
    )
    return Env(JwtAuthorizer.from_config(cfg, fetch=issuer, clock=clock), issuer, clock, keys)


@pytest.fixture
def env(keys: SimpleNamespace) -> Env:
    return make_env(keys)


@pytest.fixture(scope="module")
def shared(keys: SimpleNamespace) -> Env:
    """One warm authorizer for the property tests (hypothesis does not mix with function-scoped fixtures)."""
    shared_env = make_env(keys)
    assert shared_env.authorize(shared_env.bearer()).allowed
    return shared_env


# --- the header ---


@pytest.mark.parametrize("header", [None, "", "   ", "\t"])
def test_no_token_gets_a_bare_bearer_challenge(env: Env, header: str | None) -> None:
    decision = env.authorize(header)
    assert (decision.allowed, decision.status, decision.reason) == (False, 401, "missing")
    assert decision.body == '{"message":"Unauthorized"}'
    assert decision.headers == {"www-authenticate": "Bearer"}
    assert env.issuer.calls == []


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",  # another scheme: the whole value is taken as the token
        "Bearer",
        "Bearer ",
        "not-a-token",
        "Bearer not-a-token",
        "Bearer aaa.bbb",  # two segments
        "Bearer a.b.c.d",  # four
        "Bearer a..b.",
        "bearer",
    ],
)
def test_wrong_number_of_segments(env: Env, header: str) -> None:
    assert_refused(env.authorize(header), "malformed", "token contains an invalid number of segments")


def test_segments_are_counted_on_a_real_token_too(env: Env) -> None:
    token = env.keys.k1.sign(K.claims())
    assert_refused(env.authorize("Bearer " + token + ".x"), "malformed", "token contains an invalid number of segments")
    head, payload, _sig = token.split(".")
    assert_refused(
        env.authorize(f"Bearer {head}.{payload}"), "malformed", "token contains an invalid number of segments"
    )


@pytest.mark.parametrize(
    "token",
    [
        "!!!.###.$$$",
        "..",  # three empty segments
        K.segment({"alg": "RS256", "kid": "k1"}) + ".e30.%%%",  # signature not base64url
        K.segment({"alg": "RS256", "kid": "k1"}) + ".@@@@.c2ln",
        "bm90IGpzb24.e30.c2ln",  # header is "not json"
        K.b64url(b"[1,2]") + ".e30.c2ln",  # header JSON but not an object
    ],
)
def test_undecodable_tokens_are_malformed(env: Env, token: str) -> None:
    assert_refused(env.authorize("Bearer " + token), "malformed", "token is malformed")


def test_a_payload_that_is_not_json_is_malformed_even_when_signed(env: Env) -> None:
    token = env.keys.k1.sign_raw(b"not json")
    assert_refused(env.authorize("Bearer " + token), "malformed", "token is malformed")


def test_a_bare_token_without_bearer_is_accepted_as_api_gateway_does(env: Env) -> None:
    token = env.keys.k1.sign(K.claims())
    decision = env.authorize(token)
    assert (decision.allowed, decision.status, decision.reason) == (True, 200, "ok")


def test_lower_case_bearer_is_not_stripped(env: Env) -> None:
    # Inferred, not observed: "Bearer " is matched as written, so "bearer x.y.z" is one malformed token.
    token = env.keys.k1.sign(K.claims())
    assert_refused(env.authorize("bearer " + token), "malformed", "token is malformed")


def test_surrounding_blanks_are_not_part_of_the_value(env: Env) -> None:
    assert env.authorize("  " + env.bearer() + " \t").allowed


def test_an_oversized_token_is_refused_before_any_decoding(env: Env) -> None:
    token = env.keys.k1.sign(K.claims(padding="x" * 11_000))
    assert_refused(env.authorize("Bearer " + token), "malformed", "token is malformed")


# --- algorithm and key ---


def test_alg_none_is_refused(env: Env) -> None:
    for alg in ("none", "None", "NONE"):
        token = K.unsigned({"alg": alg, "typ": "JWT", "kid": "k1"}, K.claims())
        assert_refused(env.authorize("Bearer " + token), "bad_algorithm", "signing method is invalid")


def test_hs256_signed_with_the_public_key_is_refused(env: Env) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    for secret in (env.keys.k1.public_pem(), json.dumps(env.keys.k1.jwk()).encode()):
        token = K.hs256_with_secret(header, K.claims(), secret)
        assert_refused(env.authorize("Bearer " + token), "bad_algorithm", "signing method is invalid")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS512"])
def test_other_rsa_algorithms_are_refused(env: Env, alg: str) -> None:
    token = env.keys.k1.sign(K.claims(), alg=alg)
    assert_refused(env.authorize("Bearer " + token), "bad_algorithm", "signing method is invalid")


def test_ec_tokens_are_refused(env: Env) -> None:
    token = jwt.encode(K.claims(), env.keys.ec, algorithm="ES256", headers={"kid": "k1"})
    assert_refused(env.authorize("Bearer " + token), "bad_algorithm", "signing method is invalid")


def test_a_token_without_alg_is_refused(env: Env) -> None:
    good = env.keys.k1.sign(K.claims())
    _head, payload, signature = good.split(".")
    token = K.segment({"typ": "JWT", "kid": "k1"}) + "." + payload + "." + signature
    assert_refused(env.authorize("Bearer " + token), "bad_algorithm", "signing method is invalid")


@pytest.mark.parametrize("kid", [None, "", 7, ["k1"]])
def test_a_kid_is_required(env: Env, kid: Any) -> None:
    good = env.keys.k1.sign(K.claims())
    _head, payload, signature = good.split(".")
    header = {"alg": "RS256", "typ": "JWT"} | ({} if kid is None else {"kid": kid})
    token = K.segment(header) + "." + payload + "." + signature
    assert_refused(
        env.authorize("Bearer " + token), "unknown_key", "the token's kid does not match any key of the issuer"
    )


def test_tampered_payload_fails_the_signature(env: Env) -> None:
    head, _payload, signature = env.keys.k1.sign(K.claims()).split(".")
    forged = K.segment(K.claims(sub="someone-else@clients"))
    assert_refused(env.authorize(f"Bearer {head}.{forged}.{signature}"), "bad_signature", "token signature is invalid")


def test_another_key_with_the_same_kid_fails_the_signature(env: Env) -> None:
    token = env.keys.impostor.sign(K.claims())
    assert_refused(env.authorize("Bearer " + token), "bad_signature", "token signature is invalid")


def test_a_truncated_signature_fails_the_signature(env: Env) -> None:
    head, payload, signature = env.keys.k1.sign(K.claims()).split(".")
    shorter = K.b64url(jwt.utils.base64url_decode(signature)[:-1])
    decision = env.authorize(f"Bearer {head}.{payload}.{shorter}")
    assert_refused(decision, "bad_signature", "token signature is invalid")


# --- time ---


def test_expired(env: Env) -> None:
    now = int(time.time())
    decision = env.authorize(env.bearer(iat=now - 7200, exp=now - 3600))
    assert_refused(decision, "expired", "token is expired")


def test_not_yet_valid(env: Env) -> None:
    decision = env.authorize(env.bearer(nbf=int(time.time()) + 3600))
    assert_refused(decision, "not_yet_valid", "token is not valid yet")


def test_issued_in_the_future(env: Env) -> None:
    now = int(time.time())
    decision = env.authorize(env.bearer(iat=now + 3600, exp=now + 7200))
    assert_refused(decision, "issued_in_future", "token used before issued")


def test_missing_exp(env: Env) -> None:
    assert_refused(env.authorize(env.bearer(exp=None)), "missing_claim", "token is missing required claim: exp")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_that_is_not_a_number_is_malformed(env: Env, claim: str) -> None:
    assert_refused(env.authorize(env.bearer(**{claim: "soon"})), "malformed", "token is malformed")


# "soon" above fails PyJWT's int() by luck; these passed it. RFC 7519 section 2: a NumericDate is a JSON number.
NOT_NUMERIC_DATES = [
    pytest.param(lambda now: str(now + 3600), id="digits-string"),
    pytest.param(lambda now: f"{now + 3600}.0", id="decimal-string"),
    pytest.param(lambda _now: True, id="true"),
    pytest.param(lambda _now: False, id="false"),
    pytest.param(lambda now: [now + 3600], id="list"),
    pytest.param(lambda now: {"at": now + 3600}, id="object"),
    pytest.param(lambda _now: -1, id="negative"),
    pytest.param(lambda _now: 10**30, id="huge-int"),
    pytest.param(lambda _now: 1e308, id="huge-float"),
]


@pytest.mark.parametrize("make", NOT_NUMERIC_DATES)
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_that_is_not_a_numeric_date_is_malformed(env: Env, claim: str, make: Any) -> None:
    now = int(time.time())
    token = env.keys.k1.sign_raw(K.claims(**{claim: make(now)}))
    assert_refused(env.authorize("Bearer " + token), "malformed", "token is malformed")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "null"])
@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_time_claim_of_nan_infinity_or_null_is_malformed(env: Env, claim: str, literal: str) -> None:
    # Python's JSON parser (PyJWT's) reads NaN and Infinity; a forger writes them as bytes.
    body = json.dumps(K.claims(**{claim: 0})).replace(f'"{claim}": 0', f'"{claim}": {literal}').encode()
    assert_refused(env.authorize("Bearer " + env.keys.k1.sign_raw(body)), "malformed", "token is malformed")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_an_exp_of_nan_or_infinity_is_malformed(env: Env, literal: str) -> None:
    body = json.dumps(K.claims(exp=0)).replace('"exp": 0', f'"exp": {literal}').encode()
    assert_refused(env.authorize("Bearer " + env.keys.k1.sign_raw(body)), "malformed", "token is malformed")


def test_a_null_exp_is_a_missing_claim(env: Env) -> None:
    body = json.dumps(K.claims(exp=0)).replace('"exp": 0', '"exp": null').encode()
    decision = env.authorize("Bearer " + env.keys.k1.sign_raw(body))
    assert_refused(decision, "missing_claim", "token is missing required claim: exp")


def test_fractional_numeric_dates_are_numeric_dates(env: Env) -> None:
    now = time.time()
    assert env.authorize(env.bearer(iat=now - 0.5, nbf=now - 0.25, exp=now + 3600.5)).allowed
    assert env.authorize(env.bearer(iat=now - 7200.5, exp=now - 3600.5)).reason == "expired"


def test_leeway_boundaries(env: Env) -> None:
    # 3 s either side of the leeway: enough margin for a slow machine between signing and checking.
    now = int(time.time())
    inside, outside = int(LEEWAY) - 3, int(LEEWAY) + 3
    assert env.authorize(env.bearer(iat=now - 100, exp=now - inside)).allowed
    assert env.authorize(env.bearer(iat=now - 100, exp=now - outside)).reason == "expired"
    assert env.authorize(env.bearer(nbf=now + inside)).allowed
    assert env.authorize(env.bearer(nbf=now + outside)).reason == "not_yet_valid"
    assert env.authorize(env.bearer(iat=now + inside)).allowed
    assert env.authorize(env.bearer(iat=now + outside)).reason == "issued_in_future"


# --- issuer and audience ---


@pytest.mark.parametrize(
    "iss",
    [
        "https://stage-clubassist.auth0.com",  # the trailing slash matters
        "https://prod-clubassist.auth0.com/",
        "https://STAGE-clubassist.auth0.com/",
        "https://stage-clubassist.auth0.com/ ",
        ["https://stage-clubassist.auth0.com/"],
        None,
    ],
)
def test_wrong_issuer(env: Env, iss: Any) -> None:
    token = env.keys.k1.sign_raw(K.claims(iss=iss))  # PyJWT will not encode a non-string iss; a forger will
    assert_refused(env.authorize("Bearer " + token), "wrong_issuer", "the token does not have a valid issuer")


@pytest.mark.parametrize(
    "aud",
    [
        "https://cappi.clubassist.com",
        "https://stagecappi.clubassist.com/",
        ["https://cappi.clubassist.com", "https://stage-clubassist.auth0.com/userinfo"],
        [],
        "",
        7,
    ],
)
def test_wrong_audience(env: Env, aud: Any) -> None:
    decision = env.authorize(env.bearer(aud=aud))
    assert_refused(decision, "wrong_audience", "the token does not have a valid audience")


def test_missing_audience(env: Env) -> None:
    decision = env.authorize(env.bearer(aud=None))
    assert_refused(decision, "wrong_audience", "the token does not have a valid audience")


def test_audience_in_a_list_is_accepted(env: Env) -> None:
    decision = env.authorize(env.bearer(aud=["https://stage-clubassist.auth0.com/userinfo", K.AUDIENCE]))
    assert decision.allowed
    assert decision.claims is not None
    assert decision.claims["aud"] == f"[https://stage-clubassist.auth0.com/userinfo {K.AUDIENCE}]"


def test_client_id_stands_in_for_a_missing_aud_only(env: Env) -> None:
    # AWS: client_id is checked only when aud is absent; with both, aud decides.
    assert env.authorize(env.bearer(aud=None, client_id=K.AUDIENCE)).allowed
    assert env.authorize(env.bearer(aud="https://other", client_id=K.AUDIENCE)).reason == "wrong_audience"
    assert env.authorize(env.bearer(aud=None, client_id="someone-else")).reason == "wrong_audience"


def test_any_of_several_configured_audiences(keys: SimpleNamespace) -> None:
    env = make_env(keys)
    env.authorizer = JwtAuthorizer(
        AuthorizerConfig(K.ISSUER, ("https://a.example", K.AUDIENCE), (K.SCOPE,)), env.authorizer.jwks
    )
    assert env.authorize(env.bearer()).allowed
    assert env.authorize(env.bearer(aud="https://a.example")).allowed
    assert env.authorize(env.bearer(aud="https://b.example")).reason == "wrong_audience"


# --- scopes ---


def test_token_without_the_scope_is_forbidden(env: Env) -> None:
    for scope in (None, "", "openid", "read:callid", "READ:CALLIDS", "read:callids:extra"):
        decision = env.authorize(env.bearer(scope=scope))
        assert (decision.allowed, decision.status, decision.reason) == (False, 403, "insufficient_scope")
        assert decision.body == '{"message":"Forbidden"}'
        assert decision.headers == {
            "www-authenticate": 'Bearer scope="read:callids" error="insufficient_scope" '
            'error_description="expected scopes: [read:callids]"'
        }
        assert (decision.claims, decision.scopes) == (None, None)


def test_scope_among_others_is_allowed(env: Env) -> None:
    decision = env.authorize(env.bearer(scope="openid  read:callids profile"))
    assert decision.allowed
    assert decision.scopes == ["openid", "read:callids", "profile"]
    assert decision.claims is not None
    assert decision.claims["scope"] == "openid  read:callids profile"


def test_scp_is_read_as_well(env: Env) -> None:
    assert env.authorize(env.bearer(scope=None, scp=["openid", K.SCOPE])).scopes == ["openid", K.SCOPE]
    assert env.authorize(env.bearer(scope=None, scp=K.SCOPE)).allowed
    assert env.authorize(env.bearer(scope="openid", scp=[K.SCOPE])).scopes == ["openid", K.SCOPE]


def test_any_one_of_several_route_scopes_will_do(keys: SimpleNamespace) -> None:
    env = make_env(keys, scopes=("read:callids", "admin:all"))
    assert env.authorize(env.bearer(scope="admin:all")).allowed
    decision = env.authorize(env.bearer(scope="openid"))
    assert decision.headers["www-authenticate"] == (
        'Bearer scope="read:callids admin:all" error="insufficient_scope" '
        'error_description="expected scopes: [read:callids admin:all]"'
    )
    expired = env.authorize(env.bearer(exp=int(time.time()) - 3600))
    assert expired.headers["www-authenticate"] == challenge("token is expired", scope="read:callids admin:all")


def test_a_route_without_scopes_passes_scopes_as_none(keys: SimpleNamespace) -> None:
    env = make_env(keys, scopes=())
    decision = env.authorize(env.bearer(scope=None))
    assert (decision.allowed, decision.scopes) == (True, None)
    assert env.authorize(env.bearer()).scopes is None  # even when the token has scopes, as API Gateway does
    refused = env.authorize(env.bearer(aud="https://other"))
    assert refused.headers == {"www-authenticate": challenge("the token does not have a valid audience", scope="")}


# --- the success case: claims as the Lambda sees them ---


def test_valid_token_yields_api_gateway_claims(env: Env) -> None:
    now = int(time.time())
    token = env.keys.k1.sign(
        K.claims(
            iat=now,
            exp=now + 86_400,
            scope="openid read:callids",
            **{"https://cappi.clubassist.com/clubs": [212, 213]},
            ratio=0.5,
            verified=True,
            roles=["tech", "lead"],
            meta={"b": 2, "a": "x"},
            nothing=None,
        )
    )
    decision = env.authorize("Bearer " + token)
    assert (decision.allowed, decision.status, decision.reason, decision.body, decision.headers) == (
        True,
        200,
        "ok",
        "",
        {},
    )
    assert decision.scopes == ["openid", "read:callids"]
    assert decision.claims == {
        "iss": "https://stage-clubassist.auth0.com/",
        "sub": "tester-app-1@clients",
        "aud": "https://stagecappi.clubassist.com",
        "iat": str(now),
        "exp": str(now + 86_400),
        "scope": "openid read:callids",
        "gty": "client-credentials",
        "azp": "tester-app-1",
        "https://cappi.clubassist.com/clubs": "[212 213]",
        "ratio": "0.5",
        "verified": "true",
        "roles": "[tech lead]",
        "meta": '{"a":"x","b":2}',
    }
    assert all(isinstance(v, str) for v in decision.claims.values())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (0, "0"),
        (-3, "-3"),
        (12345678901234567890, "12345678901234567890"),
        (1.0, "1"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"),
        (True, "true"),
        (False, "false"),
        ([], "[]"),
        (["a"], "[a]"),
        (["a", "b c"], "[a b c]"),
        ([1, 2.5, True, None], "[1 2.5 true null]"),
        ([["x", "y"], "z"], "[[x y] z]"),
        ({"k": [1, None]}, '{"k":[1,null]}'),
        ({"ü": "é"}, '{"ü":"é"}'),
    ],
)
def test_claim_rendering(value: Any, text: str) -> None:
    assert api_gateway_claims({"c": value}) == {"c": text}


def test_null_claims_are_left_out() -> None:
    assert api_gateway_claims({"a": None, "b": "x"}) == {"b": "x"}


def test_token_scopes() -> None:
    assert token_scopes({}) == []
    assert token_scopes({"scope": " a  b a "}) == ["a", "b"]
    assert token_scopes({"scope": 7, "scp": ["c", 1, "", "a"]}) == ["c", "a"]


# --- the key cache ---


def test_keys_are_fetched_once_and_reused(env: Env) -> None:
    for _ in range(20):
        assert env.authorize(env.bearer()).allowed
    assert len(env.issuer.calls) == 1
    assert env.issuer.calls == ["https://stage-clubassist.auth0.com/.well-known/jwks.json"]
    assert env.authorizer.jwks.fetches == 1


def test_unknown_kid_refetches_once_then_cooldown_holds_back_a_flood(env: Env) -> None:
    assert env.authorize(env.bearer()).allowed
    assert env.authorizer.jwks.fetches == 1
    env.clock.advance(COOLDOWN + 1)
    for _ in range(100):
        token = env.keys.k1.sign(K.claims(), kid=uuid.uuid4().hex)
        decision = env.authorize("Bearer " + token)
        assert_refused(decision, "unknown_key", "the token's kid does not match any key of the issuer")
    assert env.authorizer.jwks.fetches == 2  # one refetch for the first unknown kid, none for the other 99
    env.clock.advance(COOLDOWN - 1)
    env.authorize("Bearer " + env.keys.k1.sign(K.claims(), kid="still-unknown"))
    assert env.authorizer.jwks.fetches == 2
    assert env.authorize(env.bearer()).allowed  # known keys keep working meanwhile


def test_unknown_kid_right_after_a_fetch_waits_for_the_cooldown(env: Env) -> None:
    token = "Bearer " + env.keys.k2.sign(K.claims())
    assert env.authorize(token).reason == "unknown_key"  # the first fetch happens here: k2 is not published
    assert env.authorizer.jwks.fetches == 1
    assert env.authorize(token).reason == "unknown_key"
    assert env.authorizer.jwks.fetches == 1


def test_key_rotation_is_picked_up_after_the_cooldown(env: Env) -> None:
    assert env.authorize(env.bearer()).allowed
    env.issuer.keys = [env.keys.k1, env.keys.k2]  # the issuer publishes its next key
    rotated = "Bearer " + env.keys.k2.sign(K.claims())
    env.clock.advance(COOLDOWN / 2)
    assert env.authorize(rotated).reason == "unknown_key"  # too soon after the last fetch
    env.clock.advance(COOLDOWN / 2)
    assert env.authorize(rotated).allowed
    assert env.authorizer.jwks.fetches == 2
    env.issuer.keys = [env.keys.k2]  # the old key is retired
    env.clock.advance(MAX_AGE)
    assert env.authorize(rotated).allowed
    assert env.authorize(env.bearer()).reason == "unknown_key"
    assert env.authorizer.jwks.fetches == 3


def test_concurrent_unknown_kids_share_one_fetch(keys: SimpleNamespace) -> None:
    # Each fetch takes long enough for every thread to arrive while it is under way.
    env = make_env(keys, issuer=FakeIssuer([keys.k1], delay_s=0.05))
    tokens = ["Bearer " + keys.k1.sign(K.claims(), kid=f"random-{i}") for i in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        reasons = set(pool.map(lambda t: env.authorize(t).reason, tokens))
    assert reasons == {"unknown_key"}
    assert env.authorizer.jwks.fetches == 1
    assert env.authorize(env.bearer()).allowed


def test_keys_are_refetched_after_max_age(env: Env) -> None:
    assert env.authorize(env.bearer()).allowed
    env.clock.advance(MAX_AGE - 1)
    assert env.authorize(env.bearer()).allowed
    assert env.authorizer.jwks.fetches == 1
    env.clock.advance(1)
    assert env.authorize(env.bearer()).allowed
    assert env.authorizer.jwks.fetches == 2


def test_jwks_endpoint_down_is_an_unknown_key_not_an_error(env: Env) -> None:
    env.issuer.up = False
    for _ in range(5):
        decision = env.authorize(env.bearer())
        assert_refused(decision, "unknown_key", "the token's kid does not match any key of the issuer")
    assert (env.authorizer.jwks.fetches, env.authorizer.jwks.fetch_failures) == (1, 1)
    assert env.authorizer.jwks.last_error == "ConnectionRefusedError: JWKS endpoint down"
    env.issuer.up = True
    env.clock.advance(COOLDOWN)
    assert env.authorize(env.bearer()).allowed
    assert env.authorizer.jwks.last_error is None


def test_a_failed_refetch_keeps_the_old_keys(env: Env) -> None:
    assert env.authorize(env.bearer()).allowed
    env.issuer.up = False
    env.clock.advance(MAX_AGE + 1)
    for _ in range(3):
        assert env.authorize(env.bearer()).allowed
    assert (env.authorizer.jwks.fetches, env.authorizer.jwks.fetch_failures) == (2, 1)


@pytest.mark.parametrize("document", [b"<html>oops</html>", b"{}", b'{"keys": {}}', b"[]", b"\xff"])
def test_a_document_that_is_not_a_jwks_keeps_the_old_keys(env: Env, document: bytes) -> None:
    assert env.authorize(env.bearer()).allowed
    env.issuer.document = document
    env.clock.advance(MAX_AGE)
    assert env.authorize(env.bearer()).allowed
    assert env.authorizer.jwks.fetch_failures == 1


def test_only_rsa_signing_keys_are_taken(keys: SimpleNamespace) -> None:
    k1, k2 = keys.k1, keys.k2
    document = K.jwks(
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "x", "y": "y"},
        k1.jwk(kid="enc", use="enc"),
        k1.jwk(kid="rs512", alg="RS512"),
        k1.jwk(kid="no-alg-no-use", alg=None, use=None),
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        "not a key",
        k1,
        k2.jwk(kid="k1"),  # a later duplicate must not shadow the first k1
    )
    parsed = parse_jwks(document)
    assert sorted(parsed) == ["k1", "no-alg-no-use"]
    env = make_env(keys)
    env.issuer.keys = [k1, k2.jwk(kid="k1")]
    assert env.authorize(env.bearer()).allowed


def test_nothing_escapes_authorize(env: Env) -> None:
    def broken(_kid: str) -> None:
        raise RuntimeError("cache exploded")

    env.authorizer.jwks.get = broken  # type: ignore[method-assign]
    decision = env.authorize(env.bearer())
    assert_refused(decision, "error", "token is unverifiable")


# --- the verified-token cache: the signature is checked once per token, everything else on every request ---


def test_a_token_is_signature_checked_once_then_served_from_the_cache(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[bytes] = []
    verify = jwt.algorithms.RSAAlgorithm.verify

    def counted(self: Any, msg: bytes, key: Any, sig: bytes) -> bool:
        checks.append(msg)
        return verify(self, msg, key, sig)

    monkeypatch.setattr(jwt.algorithms.RSAAlgorithm, "verify", counted)
    token = env.bearer()
    decisions = [env.authorize(token) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert len(checks) == 1
    assert (env.authorizer.verified.hits, env.authorizer.verified.misses) == (4, 1)
    assert all(d.claims == decisions[0].claims and d.scopes == [K.SCOPE] for d in decisions)
    assert env.authorize("Bearer " + env.keys.k1.sign(K.claims(sub="another-app@clients"))).allowed
    assert len(checks) == 2  # another token, another check


def test_a_cached_token_that_expires_is_refused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    token = env.bearer(iat=int(now), exp=int(now) + 60)
    assert env.authorize(token).allowed
    monkeypatch.setattr(time, "time", lambda: now + 60 + LEEWAY + 1)
    assert_refused(env.authorize(token), "expired", "token is expired")
    assert env.authorizer.verified.hits == 1  # refused from the cached payload: the time is checked every time


def test_a_cached_token_not_yet_valid_becomes_valid_on_time(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    token = env.bearer(nbf=int(now) + 120)
    assert_refused(env.authorize(token), "not_yet_valid", "token is not valid yet")
    monkeypatch.setattr(time, "time", lambda: now + 120)
    assert env.authorize(token).allowed
    assert env.authorizer.verified.hits == 1


def test_a_tampered_token_is_never_served_from_the_cache(env: Env) -> None:
    token = env.keys.k1.sign(K.claims())
    assert env.authorize("Bearer " + token).allowed
    for index, char in enumerate(token):
        replacement = "A" if char != "A" else "B"
        if char == ".":
            continue  # a segment count change is refused before any cache could matter
        decision = env.authorize("Bearer " + token[:index] + replacement + token[index + 1 :])
        assert not decision.allowed, index
        assert (decision.status, decision.reason != "error") == (401, True)
    for extra in (token + "A", token[:-1], " " + token + "x", token.replace(".", "..", 1)):
        assert not env.authorize("Bearer " + extra).allowed
    assert env.authorize("Bearer " + token).allowed
    assert len(env.authorizer.verified) == 1  # refusals are not kept


def test_a_rotated_key_set_drops_every_cached_token(env: Env) -> None:
    token = env.bearer()
    assert env.authorize(token).allowed
    # The issuer replaces its key under the same kid: the cached check was made with a key no longer published.
    env.issuer.keys = [env.keys.impostor]
    env.clock.advance(MAX_AGE)
    assert_refused(env.authorize(token), "bad_signature", "token signature is invalid")
    assert env.authorizer.jwks.fetches == 2
    assert len(env.authorizer.verified) == 0
    replacement = "Bearer " + env.keys.impostor.sign(K.claims())
    assert env.authorize(replacement).allowed


def test_a_refetch_drops_the_cache_even_with_the_same_keys(env: Env) -> None:
    token = env.bearer()
    assert env.authorize(token).allowed
    assert len(env.authorizer.verified) == 1
    assert env.authorizer.jwks.refresh()
    assert env.authorize(token).allowed
    assert (env.authorizer.verified.hits, env.authorizer.verified.misses) == (0, 2)  # checked again after the fetch


def test_a_retired_key_refuses_its_cached_tokens(env: Env) -> None:
    env.issuer.keys = [env.keys.k1, env.keys.k2]
    old, new = env.bearer(), "Bearer " + env.keys.k2.sign(K.claims())
    assert env.authorize(old).allowed and env.authorize(new).allowed
    env.issuer.keys = [env.keys.k2]
    env.clock.advance(MAX_AGE)
    assert env.authorize(old).reason == "unknown_key"
    assert env.authorize(new).allowed


def test_the_cache_is_bounded(keys: SimpleNamespace) -> None:
    env = make_env(keys)
    env.authorizer = JwtAuthorizer(env.authorizer.config, env.authorizer.jwks, verified_tokens=2)
    tokens = ["Bearer " + keys.k1.sign(K.claims(sub=f"app-{i}@clients")) for i in range(3)]
    assert all(env.authorize(t).allowed for t in tokens)
    assert len(env.authorizer.verified) == 2
    assert env.authorize(tokens[2]).allowed and env.authorize(tokens[1]).allowed
    assert env.authorizer.verified.hits == 2
    assert env.authorize(tokens[0]).allowed  # the least recently used one was dropped: checked again
    assert env.authorizer.verified.misses == 4


def test_configuration_checks_run_on_cached_tokens_too(env: Env) -> None:
    for claims, reason in [
        ({"iss": "https://elsewhere.example/"}, "wrong_issuer"),
        ({"aud": "https://another.api"}, "wrong_audience"),
        ({"scope": "openid"}, "insufficient_scope"),
    ]:
        token = env.bearer(**claims)
        assert [env.authorize(token).reason for _ in range(3)] == [reason] * 3
    assert env.authorizer.verified.hits == 6


def test_a_caller_changing_its_decision_does_not_change_the_cache(env: Env) -> None:
    token = env.bearer()
    first = env.authorize(token)
    assert first.claims is not None and first.scopes is not None
    first.claims["sub"] = "someone-else@clients"
    first.scopes.append("admin:everything")
    again = env.authorize(token)
    assert again.claims is not None and again.claims["sub"] == "tester-app-1@clients"
    assert again.scopes == [K.SCOPE]


def test_the_cache_is_shared_safely_by_threads(keys: SimpleNamespace) -> None:
    env = make_env(keys)
    env.authorizer = JwtAuthorizer(env.authorizer.config, env.authorizer.jwks, verified_tokens=8)
    subs = [f"app-{i}@clients" for i in range(16)]  # twice the cache's size: entries come and go meanwhile
    tokens = ["Bearer " + keys.k1.sign(K.claims(sub=sub)) for sub in subs]
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(env.authorize, tokens * 20))
    assert [d.claims["sub"] if d.claims else d.reason for d in decisions] == subs * 20
    assert len(env.authorizer.verified) == 8


# --- a real JWKS endpoint on loopback ---


@pytest.fixture
def jwks_server() -> Iterator[Any]:
    with serve() as server:
        yield server


def loopback_authorizer(server: Any, **cache: Any) -> tuple[JwtAuthorizer, str]:
    issuer = server.base_url + "/"
    config = AuthorizerConfig(issuer, K.AUDIENCE, (K.SCOPE,), jwks_cooldown_s=COOLDOWN)
    return JwtAuthorizer.from_config(config, **cache), issuer


def test_keys_come_from_a_real_jwks_endpoint(jwks_server: Any, keys: SimpleNamespace) -> None:
    jwks_server.route(JWKS_PATH, respond(200, K.jwks(keys.k1, keys.k2)))
    authorizer, issuer = loopback_authorizer(jwks_server)
    for key in (keys.k1, keys.k2, keys.k1):
        decision = authorizer.authorize("Bearer " + key.sign(K.claims(iss=issuer)))
        assert decision.allowed, decision
    assert len(jwks_server.requests_to(JWKS_PATH)) == 1
    assert authorizer.jwks.kids == ("k1", "k2")


@pytest.mark.parametrize(
    ("responder", "error"),
    [
        (lambda _server: respond(500, b"{}"), "HTTP Error 500"),
        (lambda _server: respond(404, b"no"), "HTTP Error 404"),
        (lambda server: redirect(server.url("/moved")), "HTTP Error 302"),
        (lambda _server: respond(200, b" " * (300 * 1024)), "too large"),
        (lambda _server: respond(200, b"<html>"), "JSONDecodeError"),
    ],
)
def test_a_bad_jwks_endpoint_means_unknown_key(
    jwks_server: Any, keys: SimpleNamespace, responder: Callable[[Any], Any], error: str
) -> None:
    jwks_server.route(JWKS_PATH, responder(jwks_server))
    jwks_server.route("/moved", respond(200, K.jwks(keys.k1)))
    authorizer, issuer = loopback_authorizer(jwks_server)
    decision = authorizer.authorize("Bearer " + keys.k1.sign(K.claims(iss=issuer)))
    assert_refused(decision, "unknown_key", "the token's kid does not match any key of the issuer")
    assert error in (authorizer.jwks.last_error or "")
    assert jwks_server.requests_to("/moved") == []  # a redirect is not followed


def test_a_stalled_jwks_endpoint_times_out(jwks_server: Any, keys: SimpleNamespace) -> None:
    jwks_server.route(JWKS_PATH, stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"))
    authorizer, issuer = loopback_authorizer(jwks_server, timeout_s=0.3)
    started = time.monotonic()
    decision = authorizer.authorize("Bearer " + keys.k1.sign(K.claims(iss=issuer)))
    assert decision.reason == "unknown_key"
    assert time.monotonic() - started < 2
    assert authorizer.jwks.fetch_failures == 1


def test_nothing_listening_means_unknown_key(keys: SimpleNamespace) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}/"
    authorizer = JwtAuthorizer.from_config(AuthorizerConfig(issuer, K.AUDIENCE, (K.SCOPE,)))
    decision = authorizer.authorize("Bearer " + keys.k1.sign(K.claims(iss=issuer)))
    assert_refused(decision, "unknown_key", "the token's kid does not match any key of the issuer")
    assert "Connection refused" in (authorizer.jwks.last_error or "")


# --- configuration ---


def test_config_defaults() -> None:
    config = AuthorizerConfig(K.ISSUER, K.AUDIENCE, (K.SCOPE,))
    assert config.jwks_uri == "https://stage-clubassist.auth0.com/.well-known/jwks.json"
    assert config.audience == config.audiences == (K.AUDIENCE,)
    assert 5 <= config.leeway_s <= 30
    assert AuthorizerConfig("http://127.0.0.1:3000", "x").jwks_uri == "http://127.0.0.1:3000/.well-known/jwks.json"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"audience": ()},
        {"audience": ""},
        {"required_scopes": ("read callids",)},
        {"required_scopes": ('read"',)},
        {"required_scopes": ("",)},
        {"jwks_uri": "http://issuer.example/.well-known/jwks.json"},
        {"jwks_uri": "file:///etc/passwd"},
        {"leeway_s": -1},
        {"jwks_cooldown_s": float("nan")},
    ],
)
def test_config_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AuthorizerConfig(**{"issuer": K.ISSUER, "audience": K.AUDIENCE} | kwargs)


def test_the_default_fetcher_only_speaks_https_or_loopback_http() -> None:
    with pytest.raises(ValueError, match="https"):
        JwksCache("http://issuer.example/.well-known/jwks.json")
    JwksCache("fake://anything", fetch=lambda _uri: b"")  # an injected fetch decides for itself


# --- properties ---


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.none(), st.text(), st.text().map(lambda t: "Bearer " + t), st.binary().map(repr)))
def test_arbitrary_headers_never_raise_and_never_pass(shared: Env, header: str | None) -> None:
    decision = shared.authorize(header)
    assert not decision.allowed
    assert decision.status == 401
    assert decision.reason != "error"  # every refusal is a foreseen one, not a swallowed exception
    assert decision.body == UNAUTHORIZED_BODY
    assert decision.headers["www-authenticate"].startswith("Bearer")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_character_change_to_a_valid_token_is_refused(shared: Env, data: st.DataObject) -> None:
    token = shared.keys.k1.sign(K.claims())
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "))
    if replacement == token[index]:
        return
    decision = shared.authorize("Bearer " + token[:index] + replacement + token[index + 1 :])
    assert not decision.allowed
    assert (decision.status, decision.reason != "error") == (401, True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku"]), st.text(max_size=8)),
    payload=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(), max_size=6),
    signature=st.binary(max_size=300),
)
def test_forged_tokens_never_pass(
    shared: Env, header: dict[str, Any], payload: dict[str, Any], signature: bytes
) -> None:
    token = K.segment(header) + "." + K.segment({**K.claims(), **payload}) + "." + K.b64url(signature)
    decision = shared.authorize("Bearer " + token)
    assert not decision.allowed
    assert (decision.status, decision.reason != "error") == (401, True)
