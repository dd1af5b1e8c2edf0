"""The local token issuer answers as Auth0's client-credentials endpoint does, and its tokens verify with its JWKS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from local.clients import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ClientsFileError,
    LocalClient,
    demo_clients,
    load_clients,
)
from local.issuer import TokenIssuer, routes

ISSUER = "http://127.0.0.1:3000/"
AUDIENCE = "http://127.0.0.1:3000"
CLUB_CLAIM = "https://cappi.clubassist.com/clubs"
NOW = 1_700_000_000

CLUB_CLIENT = LocalClient("club-212-app", "s3cret-212", clubs=(212, 213))
OTHER_API_CLIENT = LocalClient("other-api-app", "s3cret-other", audiences=("https://other.example",))
TWO_SCOPE_CLIENT = LocalClient("two-scope-app", "s3cret-two", scopes=("read:callids", "read:stats"))


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    # One RSA key for the whole module: generating it is the slow part.
    clients = [*demo_clients(), CLUB_CLIENT, OTHER_API_CLIENT, TWO_SCOPE_CLIENT]
    return TokenIssuer(ISSUER, AUDIENCE, clients, clock=lambda: NOW + 0.7)


def document_request(**overrides: Any) -> dict[str, Any]:
    body = {
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post_json(issuer: TokenIssuer, **overrides: Any) -> tuple[int, dict]:
    return issuer.token(json.dumps(document_request(**overrides)).encode(), "application/json")


def verify(issuer: TokenIssuer, token: str, audience: str = AUDIENCE) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: jwt.PyJWK(k) for k in issuer.jwks()["keys"]}
    return jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},  # the issuer's clock is fixed in the past
    )


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- success ---


def test_document_request_gets_the_documents_response_shape(issuer: TokenIssuer) -> None:
    status, body = post_json(issuer)
    assert status == 200
    assert list(body) == ["access_token", "scope", "expires_in", "token_type"]
    assert body["scope"] == "read:callids"
    assert body["expires_in"] == 86400
    assert body["token_type"] == "Bearer"


def test_token_claims_are_auth0s_client_credentials_claims(issuer: TokenIssuer) -> None:
    _, body = post_json(issuer)
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == issuer.jwks()["keys"][0]["kid"] == issuer.kid
    claims = verify(issuer, body["access_token"])
    assert claims == {
        "iss": ISSUER,
        "sub": f"{DEMO_CLIENT_ID}@clients",
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 86400,
        "azp": DEMO_CLIENT_ID,
        "scope": "read:callids",
        "gty": "client-credentials",
    }
    assert isinstance(claims["aud"], str)


def test_form_encoded_request_is_accepted(issuer: TokenIssuer) -> None:
    form = urlencode(document_request()).encode()
    status, body = issuer.token(form, "application/x-www-form-urlencoded; charset=utf-8")
    assert status == 200
    assert verify(issuer, body["access_token"])["azp"] == DEMO_CLIENT_ID


def test_json_sent_with_curls_default_form_type_is_read_as_json(issuer: TokenIssuer) -> None:
    status, _ = issuer.token(json.dumps(document_request()).encode(), "application/x-www-form-urlencoded")
    assert status == 200


def test_basic_authorization_header_carries_the_client_credentials(issuer: TokenIssuer) -> None:
    form = urlencode({"grant_type": "client_credentials", "audience": AUDIENCE}).encode()
    status, body = issuer.token(form, "application/x-www-form-urlencoded", basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert status == 200
    assert verify(issuer, body["access_token"])["sub"] == f"{DEMO_CLIENT_ID}@clients"


def test_basic_authorization_with_a_wrong_secret_is_401(issuer: TokenIssuer) -> None:
    form = urlencode({"grant_type": "client_credentials"}).encode()
    status, body = issuer.token(form, "application/x-www-form-urlencoded", basic(DEMO_CLIENT_ID, "nope"))
    assert (status, body) == (401, {"error": "access_denied", "error_description": "Unauthorized"})


def test_missing_audience_gets_the_default_audience(issuer: TokenIssuer) -> None:
    status, body = post_json(issuer, audience=None)
    assert status == 200
    assert verify(issuer, body["access_token"])["aud"] == AUDIENCE


def test_club_claim_only_for_club_scoped_clients(issuer: TokenIssuer) -> None:
    _, demo = post_json(issuer)
    assert CLUB_CLAIM not in verify(issuer, demo["access_token"])
    _, scoped = post_json(issuer, client_id=CLUB_CLIENT.client_id, client_secret=CLUB_CLIENT.client_secret)
    claims = verify(issuer, scoped["access_token"])
    assert claims[CLUB_CLAIM] == [212, 213]
    payload = json.loads(base64.urlsafe_b64decode(scoped["access_token"].split(".")[1] + "=="))
    assert payload[CLUB_CLAIM] == [212, 213]  # a JSON array of integers, as the query's claim reader expects


def test_client_with_its_own_audience(issuer: TokenIssuer) -> None:
    creds = {"client_id": OTHER_API_CLIENT.client_id, "client_secret": OTHER_API_CLIENT.client_secret}
    status, body = post_json(issuer, audience="https://other.example", **creds)
    assert status == 200
    assert verify(issuer, body["access_token"], "https://other.example")["aud"] == "https://other.example"


def test_requested_scope_narrows_the_token(issuer: TokenIssuer) -> None:
    creds = {"client_id": TWO_SCOPE_CLIENT.client_id, "client_secret": TWO_SCOPE_CLIENT.client_secret}
    _, full = post_json(issuer, **creds)
    assert full["scope"] == "read:callids read:stats"
    _, narrow = post_json(issuer, scope="read:stats", **creds)
    assert narrow["scope"] == "read:stats"
    assert verify(issuer, narrow["access_token"])["scope"] == "read:stats"
    status, body = post_json(issuer, scope="write:callids", **creds)
    assert status == 403
    assert body == {"error": "access_denied", "error_description": "Client has not been granted scopes: write:callids"}


def test_client_without_scopes_gets_a_token_without_scope() -> None:
    bare = LocalClient("no-scope", "pw-no-scope", scopes=())
    issuer = TokenIssuer(ISSUER, AUDIENCE, [bare])
    status, body = issuer.token(
        json.dumps(
            {"client_id": "no-scope", "client_secret": "pw-no-scope", "grant_type": "client_credentials"}
        ).encode(),
        "application/json",
    )
    assert status == 200
    assert "scope" not in body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert "scope" not in claims
    assert claims["exp"] - claims["iat"] == 86400


# --- refusals ---


@pytest.mark.parametrize(
    ("overrides", "status", "error", "description"),
    [
        ({"client_secret": "wrong"}, 401, "access_denied", "Unauthorized"),
        ({"client_id": "nobody"}, 401, "access_denied", "Unauthorized"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "Unsupported grant type: password"),
        ({"grant_type": None}, 400, "invalid_request", "Missing required parameter: grant_type"),
        ({"client_id": None}, 400, "invalid_request", "Missing required parameter: client_id"),
        ({"client_secret": None}, 400, "invalid_request", "Missing required parameter: client_secret"),
        ({"client_secret": ""}, 400, "invalid_request", "Missing required parameter: client_secret"),
        ({"audience": 5}, 400, "invalid_request", "Invalid parameter audience: expected a string"),
    ],
)
def test_refusals_are_shaped_like_auth0s(
    issuer: TokenIssuer, overrides: dict, status: int, error: str, description: str
) -> None:
    assert post_json(issuer, **overrides) == (status, {"error": error, "error_description": description})


def test_wrong_secret_and_unknown_client_are_indistinguishable(issuer: TokenIssuer) -> None:
    assert post_json(issuer, client_secret="wrong") == post_json(issuer, client_id="nobody")


def test_audience_the_client_has_no_grant_for_is_403(issuer: TokenIssuer) -> None:
    status, body = post_json(issuer, audience="https://cappi.clubassist.com")
    assert status == 403
    assert body["error"] == "access_denied"
    assert body["error_description"].startswith('Client is not authorized to access "https://cappi.clubassist.com".')
    # It says which audience it expected, not Auth0's advice to create a client grant (misleading here).
    assert f'This issuer expects the audience "{issuer.audience}" for this client' in body["error_description"]
    assert "client-grant" not in body["error_description"]
    # A client granted only another API may not ask for the default one either.
    creds = {"client_id": OTHER_API_CLIENT.client_id, "client_secret": OTHER_API_CLIENT.client_secret}
    assert post_json(issuer, **creds)[0] == 403


def test_credentials_are_checked_before_the_audience(issuer: TokenIssuer) -> None:
    # Otherwise the 403 would tell a caller without credentials which audiences exist.
    assert post_json(issuer, client_secret="wrong", audience="https://elsewhere")[0] == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"", "application/json"),
        (b"grant_type=client_credentials&grant_type=password", "application/x-www-form-urlencoded"),
        (b"client_id=a&&", "application/x-www-form-urlencoded"),
        (b"client_id=x", "text/plain"),
    ],
)
def test_malformed_bodies_are_invalid_request(issuer: TokenIssuer, body: bytes, content_type: str) -> None:
    status, answer = issuer.token(body, content_type)
    assert status == 400
    assert answer["error"] == "invalid_request"


def test_basic_header_and_body_must_agree(issuer: TokenIssuer) -> None:
    form = urlencode({"grant_type": "client_credentials", "client_id": CLUB_CLIENT.client_id}).encode()
    status, body = issuer.token(form, "application/x-www-form-urlencoded", basic(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert (status, body["error"]) == (400, "invalid_request")
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc"):
        assert issuer.token(b"grant_type=client_credentials", None, header)[0] == 400


def test_errors_never_echo_the_secret(issuer: TokenIssuer) -> None:
    for overrides in ({"client_secret": "wrong-secret-xyz"}, {"client_secret": "wrong-secret-xyz", "audience": "a"}):
        _, body = post_json(issuer, **overrides)
        assert "wrong-secret-xyz" not in json.dumps(body)


def test_long_or_unprintable_echoes_are_cut(issuer: TokenIssuer) -> None:
    _, body = post_json(issuer, grant_type="x\n" + "y" * 500)
    assert "\n" not in body["error_description"]
    assert len(body["error_description"]) < 260


# --- discovery and routes ---


def test_jwks_publishes_one_rs256_signing_key(issuer: TokenIssuer) -> None:
    (key,) = issuer.jwks()["keys"]
    assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (key["kty"], key["use"], key["alg"], key["e"]) == ("RSA", "sig", "RS256", "AQAB")
    assert jwt.PyJWK(key).key.key_size == 2048


def test_openid_configuration(issuer: TokenIssuer) -> None:
    config = issuer.openid_configuration()
    assert config["issuer"] == ISSUER
    assert config["token_endpoint"] == "http://127.0.0.1:3000/oauth/token"
    assert config["jwks_uri"] == "http://127.0.0.1:3000/.well-known/jwks.json"
    assert config["grant_types_supported"] == ["client_credentials"]
    assert set(config["token_endpoint_auth_methods_supported"]) == {"client_secret_post", "client_secret_basic"}
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "read:callids" in config["scopes_supported"]
    assert CLUB_CLAIM in config["claims_supported"]


def test_routes_serve_the_three_endpoints(issuer: TokenIssuer) -> None:
    table = routes(issuer)
    assert set(table) == {
        ("POST", "/oauth/token"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/.well-known/openid-configuration"),
    }
    status, headers, body = table[("POST", "/oauth/token")](
        json.dumps(document_request()).encode(), {"content-type": "application/json"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body)["token_type"] == "Bearer"

    status, headers, body = table[("POST", "/oauth/token")](
        b"grant_type=client_credentials",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic(DEMO_CLIENT_ID, "x")},
    )
    assert (status, json.loads(body)["error"], headers["Cache-Control"]) == (401, "access_denied", "no-store")

    status, _, body = table[("GET", "/.well-known/jwks.json")](b"", {})
    assert (status, json.loads(body)) == (200, issuer.jwks())
    status, _, body = table[("GET", "/.well-known/openid-configuration")](b"", {})
    assert (status, json.loads(body)["issuer"]) == (200, ISSUER)


def test_local_jwt_authorizer_accepts_the_issuers_tokens() -> None:
    # The gateway's verifier and this issuer must agree, or `make run`'s printed curl ends in a 401.
    from local.jwt_authorizer import AuthorizerConfig, JwksCache, JwtAuthorizer

    issuer = TokenIssuer(ISSUER, AUDIENCE, [*demo_clients(), CLUB_CLIENT])
    jwks = JwksCache(issuer.jwks_uri, fetch=lambda _uri: json.dumps(issuer.jwks()).encode())
    authorizer = JwtAuthorizer(
        AuthorizerConfig(issuer=ISSUER, audience=AUDIENCE, required_scopes=("read:callids",)), jwks
    )
    _, body = issuer.token(
        json.dumps(document_request(client_id=CLUB_CLIENT.client_id, client_secret=CLUB_CLIENT.client_secret)).encode(),
        "application/json",
    )
    decision = authorizer.authorize("Bearer " + body["access_token"])
    assert decision.allowed
    assert decision.claims is not None
    assert decision.claims["azp"] == CLUB_CLIENT.client_id
    assert decision.claims[CLUB_CLAIM] == "[212 213]"


def test_constructor_rules() -> None:
    with pytest.raises(ValueError, match="must end with '/'"):
        TokenIssuer("http://127.0.0.1:3000", AUDIENCE, demo_clients())
    with pytest.raises(ValueError, match="unique"):
        TokenIssuer(ISSUER, AUDIENCE, [*demo_clients(), *demo_clients()])


def test_demo_clients_are_one_unscoped_client() -> None:
    (client,) = demo_clients()
    assert client.client_id == DEMO_CLIENT_ID
    assert client.scopes == ("read:callids",)
    assert client.clubs is None
    assert client.audiences is None
    assert DEMO_CLIENT_SECRET not in repr(client)


# --- the clients file ---


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "clients.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_clients_reads_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "comment": "local testers",
            "clients": [
                {"client_id": "app-a", "client_secret": "pw-a"},
                {
                    "client_id": "app-b",
                    "client_secret": "pw-b",
                    "scopes": ["read:callids", "read:stats"],
                    "clubs": [212, 213],
                    "audiences": ["http://127.0.0.1:3000", "https://other.example"],
                },
            ],
        },
    )
    assert load_clients(path) == [
        LocalClient("app-a", "pw-a"),
        LocalClient(
            "app-b",
            "pw-b",
            scopes=("read:callids", "read:stats"),
            clubs=(212, 213),
            audiences=("http://127.0.0.1:3000", "https://other.example"),
        ),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{nope", "not valid JSON"),
        ([], 'an object with a "clients" array'),
        ({"clients": []}, '"clients" is empty'),
        ({"clients": [], "extra": 1}, "unknown top-level field(s): extra"),
        ({"clients": ["x"]}, "clients[0]: must be an object"),
        ({"clients": [{"client_secret": "pw"}]}, "clients[0]: field 'client_id'"),
        ({"clients": [{"client_id": "a b", "client_secret": "pw"}]}, "clients[0]: field 'client_id'"),
        ({"clients": [{"client_id": "a"}]}, "client 'a' (clients[0]): field 'client_secret'"),
        ({"clients": [{"client_id": "a", "client_secret": 5}]}, "field 'client_secret'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "scopes": "read:callids"}]}, "field 'scopes'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "scopes": ["a b"]}]}, "field 'scopes'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "clubs": [1000]}]}, "field 'clubs'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "clubs": ["212"]}]}, "field 'clubs'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "clubs": [True]}]}, "field 'clubs'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "clubs": [1, 1]}]}, "lists a club ID twice"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "audiences": []}]}, "field 'audiences'"),
        ({"clients": [{"client_id": "a", "client_secret": "pw", "role": "x"}]}, "field 'role': unknown field"),
        (
            {"clients": [{"client_id": "a", "client_secret": "pw"}, {"client_id": "a", "client_secret": "pw2"}]},
            "client 'a' (clients[1]): field 'client_id': duplicate of clients[0]",
        ),
    ],
)
def test_load_clients_errors_name_the_file_and_the_field(tmp_path: Path, data: object, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ClientsFileError) as caught:
        load_clients(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_load_clients_reports_every_problem_at_once_without_quoting_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"clients": [{"client_id": "a", "client_secret": "pw\nsecret-value", "clubs": [-1]}, {"client_id": ""}]},
    )
    with pytest.raises(ClientsFileError) as caught:
        load_clients(path)
    assert len(caught.value.problems) == 4
    assert "secret-value" not in str(caught.value)


def test_load_clients_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClientsFileError, match="cannot read file"):
        load_clients(tmp_path / "absent.json")
