"""The club registry loader: typed sources, and errors that name the file, the source and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cappi.domain.registry import ClubAuth, RegistryError, load_registry, parse_registry

REPO = Path(__file__).resolve().parents[2]


def source(**overrides: object) -> dict:
    base = {
        "name": "aaa-example",
        "club_ids": [212, 213],
        "base_url": "https://calls.example-club.org",
        "auth": {"type": "bearer", "secret": "cappi/stage/clubs/aaa-example"},
        "headers": {"Ident": "ClubAssist", "User-Agent": "API Services B2B Partners"},
        "enabled": True,
    }
    base.update(overrides)
    return base


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "clubs.json"
    path.write_text(json.dumps(data))
    return path


def problems_of(tmp_path: Path, *sources: dict) -> list[str]:
    path = write(tmp_path, {"sources": list(sources)})
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


def test_design_example_loads_into_typed_objects(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, {"sources": [source()]}))
    (club,) = registry.sources
    assert club.name == "aaa-example"
    assert club.club_ids == frozenset({212, 213})
    assert club.feed_url == "https://calls.example-club.org/service/calls/status"
    assert club.auth == ClubAuth(type="bearer", secret="cappi/stage/clubs/aaa-example")
    assert club.headers["Ident"] == "ClubAssist"
    assert registry.club_ids == frozenset({212, 213})
    assert registry.secret_names == ("cappi/stage/clubs/aaa-example",)
    assert registry.source("aaa-example") is club


def test_base_url_with_trailing_slash_and_path() -> None:
    registry = parse_registry({"sources": [source(base_url="https://x.org/api/")]})
    assert registry.sources[0].feed_url == "https://x.org/api/service/calls/status"


def test_all_auth_types(tmp_path: Path) -> None:
    sources = [
        source(name="a", club_ids=[1], auth={"type": "none"}),
        source(name="b", club_ids=[2], auth={"type": "basic", "secret": "s/b"}),
        source(name="c", club_ids=[3], auth={"type": "api_key", "header": "X-Api-Key", "secret": "s/c"}),
        source(
            name="d",
            club_ids=[4],
            auth={
                "type": "oauth2_client_credentials",
                "token_url": "https://login.club.org/oauth/token",
                "client_id": "cappi",
                "secret": "s/d",
                "scope": "calls:read",
            },
        ),
        {"name": "e", "club_ids": [5], "base_url": "http://127.0.0.1:8080"},
    ]
    registry = load_registry(write(tmp_path, {"sources": sources}))
    assert [s.auth.type for s in registry.sources] == ["none", "basic", "api_key", "oauth2_client_credentials", "none"]
    assert registry.sources[4].enabled is True
    assert registry.secret_names == ("s/b", "s/c", "s/d")


def test_disabled_sources_are_kept_but_not_enabled() -> None:
    registry = parse_registry({"sources": [source(), source(name="off", club_ids=[5], enabled=False)]})
    assert [s.name for s in registry.enabled_sources] == ["aaa-example"]
    assert 5 in registry.club_ids


def test_duplicate_names(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, source(), source(club_ids=[5]))
    assert problems == ["source 'aaa-example' (sources[1]): field 'name': duplicate of sources[0]"]


def test_club_id_claimed_by_two_sources(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, source(), source(name="other", club_ids=[213, 300]))
    assert problems == [
        "source 'other' (sources[1]): field 'club_ids': club 213 is already claimed by source 'aaa-example'"
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://calls.example.org", "https"),
        ("ftp://calls.example.org", "https"),
        ("calls.example.org", "https"),
        ("https://", "https"),
        ("https://user:pw@x.org", "credentials"),
        ("https://x.org/?token=1", "query"),
        ("https://x.org:99999", "valid URL"),
        ("", "non-empty"),
        (None, "non-empty"),
    ],
)
def test_bad_urls(tmp_path: Path, url: object, why: str) -> None:
    (problem,) = problems_of(tmp_path, source(base_url=url))
    assert problem.startswith("source 'aaa-example' (sources[0]): field 'base_url': ")
    assert why in problem


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000", "http://localhost:1", "http://[::1]:80", "http://127.9.9.9"])
def test_plain_http_allowed_for_loopback_only(url: str) -> None:
    assert parse_registry({"sources": [source(base_url=url)]}).sources[0].base_url == url


def test_unknown_auth_type(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, source(auth={"type": "digest", "secret": "x"}))
    assert "field 'auth.type': unknown auth type 'digest'" in problem
    assert "source 'aaa-example'" in problem


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "bearer"}, "auth.secret"),
        ({"type": "basic", "secret": ""}, "auth.secret"),
        ({"type": "api_key", "secret": "s"}, "auth.header"),
        ({"type": "oauth2_client_credentials", "secret": "s", "client_id": "c"}, "auth.token_url"),
    ],
)
def test_missing_auth_fields(tmp_path: Path, auth: dict, field: str) -> None:
    (problem,) = problems_of(tmp_path, source(auth=auth))
    assert f"field '{field}': missing" in problem


def test_missing_secret_name_says_so(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, source(auth={"type": "bearer"}))
    assert "missing secret name" in problem


def test_secret_value_in_registry_is_refused(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, source(auth={"type": "none", "token": "abc"}))
    assert problems == ["source 'aaa-example' (sources[0]): field 'auth.token': not used by auth type 'none'"]
    problems = problems_of(tmp_path, source(headers={"Authorization": "Bearer abc"}))
    assert "credentials belong in the auth block" in problems[0]


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        source(name="Bad Name!", club_ids=[]),
        source(name="ok", club_ids=[1000], enabled="yes", extra=1),
    )
    assert any("sources[0]: field 'name'" in p for p in problems)
    assert any("sources[0]: field 'club_ids'" in p for p in problems)
    assert any("source 'ok' (sources[1]): field 'club_ids'" in p for p in problems)
    assert any("field 'enabled'" in p for p in problems)
    assert any("field 'extra': unknown field" in p for p in problems)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read file"):
        load_registry(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(RegistryError, match=r"bad\.json: invalid club registry"):
        load_registry(bad)
    with pytest.raises(RegistryError, match='"sources" array'):
        parse_registry([])


def test_source_lookup_names_the_registry() -> None:
    registry = parse_registry({"sources": [source()]}, "clubs/stage.json")
    with pytest.raises(KeyError, match=r"clubs/stage.json: no club source named 'nope'"):
        registry.source("nope")


@pytest.mark.parametrize("path", sorted((REPO / "clubs").glob("*.json")), ids=lambda p: p.name)
def test_committed_registries_are_valid(path: Path) -> None:
    assert load_registry(path).sources


# --- mtls: a client certificate, optionally with a header credential ---


def test_mtls_without_a_header_credential() -> None:
    registry = parse_registry({"sources": [source(auth={"type": "mtls", "secret": "s/cert"})]})
    assert registry.sources[0].auth == ClubAuth(type="mtls", secret="s/cert")
    assert registry.sources[0].auth.header_auth is None
    assert registry.secret_names == ("s/cert",)


def test_mtls_with_a_null_header_credential_is_the_same_as_none() -> None:
    registry = parse_registry({"sources": [source(auth={"type": "mtls", "secret": "s/cert", "header_auth": None})]})
    assert registry.sources[0].auth == ClubAuth(type="mtls", secret="s/cert")


@pytest.mark.parametrize(
    ("header_auth", "expected"),
    [
        ({"type": "bearer", "secret": "s/token"}, ClubAuth(type="bearer", secret="s/token")),
        ({"type": "basic", "secret": "s/token"}, ClubAuth(type="basic", secret="s/token")),
        (
            {"type": "api_key", "secret": "s/token", "header": "X-Api-Key"},
            ClubAuth(type="api_key", secret="s/token", header="X-Api-Key"),
        ),
    ],
)
def test_mtls_with_a_header_credential(header_auth: dict, expected: ClubAuth) -> None:
    auth = {"type": "mtls", "secret": "s/cert", "header_auth": header_auth}
    registry = parse_registry({"sources": [source(auth=auth)]})
    assert registry.sources[0].auth == ClubAuth(type="mtls", secret="s/cert", header_auth=expected)
    assert registry.secret_names == ("s/cert", "s/token")


def test_mtls_secrets_are_listed_once_when_shared() -> None:
    auth = {"type": "mtls", "secret": "s/cert", "header_auth": {"type": "bearer", "secret": "s/shared"}}
    registry = parse_registry(
        {
            "sources": [
                source(auth=auth),
                source(name="other", club_ids=[300], auth={"type": "bearer", "secret": "s/shared"}),
            ]
        }
    )
    assert registry.secret_names == ("s/cert", "s/shared")


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"type": "mtls"}, "field 'auth.secret': missing secret name (required by auth type 'mtls')"),
        ({"type": "mtls", "secret": ""}, "field 'auth.secret': missing secret name (required by auth type 'mtls')"),
        ({"type": "mtls", "secret": "bad secret!"}, "field 'auth.secret': not a valid secret name"),
        # Each secret is the SSM parameter "/" + its name: what Parameter Store refuses, the registry refuses.
        ({"type": "mtls", "secret": "/cappi/x"}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "cappi//x"}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "cappi/x@club"}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "AWS/x"}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "ssm-x"}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "/".join("p" * 16)}, "field 'auth.secret': not a valid secret name"),
        ({"type": "mtls", "secret": "s", "header": "X-Key"}, "field 'auth.header': not used by auth type 'mtls'"),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "oauth2_client_credentials", "secret": "t"}},
            "field 'auth.header_auth.type': unknown auth type 'oauth2_client_credentials' "
            "(expected one of bearer, basic, api_key)",
        ),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "mtls", "secret": "t"}},
            "field 'auth.header_auth.type': unknown auth type 'mtls'",
        ),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "none"}},
            "field 'auth.header_auth.type': unknown auth type 'none'",
        ),
        ({"type": "mtls", "secret": "s", "header_auth": "bearer"}, "field 'auth.header_auth': must be an object"),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "bearer"}},
            "field 'auth.header_auth.secret': missing secret name (required by auth type 'bearer')",
        ),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "api_key", "secret": "t"}},
            "field 'auth.header_auth.header': missing (required by auth type 'api_key')",
        ),
        (
            {"type": "mtls", "secret": "s", "header_auth": {"type": "bearer", "secret": "t", "token": "abc"}},
            "field 'auth.header_auth.token': not used by auth type 'bearer'",
        ),
        (
            {"type": "bearer", "secret": "s", "header_auth": {"type": "bearer", "secret": "t"}},
            "field 'auth.header_auth': not used by auth type 'bearer'",
        ),
    ],
)
def test_invalid_mtls_entries(tmp_path: Path, auth: dict, expected: str) -> None:
    (problem,) = problems_of(tmp_path, source(auth=auth))
    assert problem.startswith("source 'aaa-example' (sources[0]): ")
    assert expected in problem


def test_mtls_header_credential_header_may_not_be_set_in_headers(tmp_path: Path) -> None:
    auth = {"type": "mtls", "secret": "s", "header_auth": {"type": "api_key", "secret": "t", "header": "X-Key"}}
    (problem,) = problems_of(tmp_path, source(auth=auth, headers={"x-key": "abc"}))
    assert problem == (
        "source 'aaa-example' (sources[0]): field 'headers.x-key': credentials belong in the auth block, not in headers"
    )


@pytest.mark.parametrize("name", ["cappi/stage/clubs/aaa-example", "a", "x.y_z-1/B2", "/".join("p" * 15), "awx/ok"])
def test_secret_names_parameter_store_accepts_are_valid(name: str) -> None:
    registry = parse_registry(
        {
            "sources": [
                {
                    "name": "a",
                    "club_ids": [1],
                    "base_url": "https://a.example",
                    "auth": {"type": "bearer", "secret": name},
                }
            ]
        }
    )
    assert registry.secret_names == (name,)
