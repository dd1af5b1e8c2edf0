"""Preflight: the JWT authorizer's issuer, whose OpenID discovery document must name exactly the same issuer (API
Gateway compares `iss` byte for byte) and point at a key set that answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cli.cloudformation import resources
from cli.findings import FAIL, OK, WARN, Finding
from cli.preflight.context import Context

HTTP_TIMEOUT_S = 5.0


def check_issuer(ctx: Context) -> list[Finding]:
    authorizers = [
        (lid, jwt)
        for lid, _, p in resources(ctx.template, "AWS::ApiGatewayV2::Authorizer")
        if isinstance(jwt := p.get("JwtConfiguration"), dict)
    ]
    if not authorizers:
        return [Finding("issuer", WARN, "the template has no JWT authorizer: nothing checks tokens before the API.")]
    findings = []
    for logical_id, jwt in authorizers:
        findings.extend(_check_one_issuer(ctx, logical_id, jwt))
    return findings


def _check_one_issuer(ctx: Context, logical_id: str, jwt: dict[str, Any]) -> list[Finding]:
    issuer, audience = ctx.name(jwt, "Issuer"), jwt.get("Audience")
    where = f"`issuer` under {ctx.settings}"
    if not issuer:
        return [Finding("issuer", WARN, f"authorizer {logical_id}'s issuer is not a plain string: not checked.")]
    if not isinstance(audience, list) or not audience:
        fix = f"set `audience` under {ctx.settings}."
        return [Finding("issuer", FAIL, f"authorizer {logical_id} requires no audience.", fix)]
    url = f"{issuer if issuer.endswith('/') else issuer + '/'}.well-known/openid-configuration"
    shape = (
        f"set {where} to the tenant's domain as Auth0 shows it (newer tenants are TENANT.REGION.auth0.com), with "
        f"https:// and the trailing slash"
    )
    document, problem = _get_json(ctx.http, url)
    if problem:
        return [Finding("issuer", FAIL, f"the trusted issuer {issuer} does not answer: {url} {problem}.", shape + ".")]
    if not isinstance(document, dict):
        return [Finding("issuer", FAIL, f"{url} is not a JSON object: not an OpenID issuer.", shape + ".")]
    served = document.get("issuer")
    if served != issuer:
        hint = ""
        configured_host, served_host = urlsplit(issuer).hostname or "", urlsplit(str(served)).hostname or ""
        if _region_variant(configured_host, served_host):
            hint = f" (the tenant's domain has a region part: {served_host}, not {configured_host})"
        return [
            Finding(
                "issuer",
                FAIL,
                f"the tenant names its issuer {served!r}, the stack trusts {issuer!r}{hint}: API Gateway compares "
                f"a token's `iss` with it byte for byte, so it would refuse every token (401).",
                f"set `issuer` under {ctx.settings} to {served!r}, exactly as the tenant names it.",
            )
        ]
    jwks_uri = document.get("jwks_uri")
    parts = urlsplit(jwks_uri) if isinstance(jwks_uri, str) else None
    issuer_parts = urlsplit(issuer)
    https = parts is not None and (
        parts.scheme == "https" or (_is_loopback(issuer_parts.hostname) and parts.scheme == issuer_parts.scheme)
    )
    if not isinstance(jwks_uri, str) or parts is None or not https or parts.hostname != issuer_parts.hostname:
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's jwks_uri {jwks_uri!r} is not an https URL on {issuer_parts.hostname}: API Gateway "
                f"could not fetch its signing keys.",
                f"check the tenant; {shape}.",
            )
        ]
    keys, problem = _get_json(ctx.http, jwks_uri)
    found = keys.get("keys") if isinstance(keys, dict) else None
    if problem or not isinstance(found, list) or not found:
        detail = problem or "no key in it"
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's key set {jwks_uri} is unusable: {detail}.",
                f"check the tenant's signing keys (Auth0: Settings > Signing Keys); {shape}.",
            )
        ]
    if not any(isinstance(k, dict) and k.get("kty") == "RSA" for k in found):
        return [
            Finding(
                "issuer",
                FAIL,
                f"the issuer's key set {jwks_uri} has no RSA key: API Gateway's JWT authorizer verifies RS256 only.",
                "sign the API's tokens with RS256 (Auth0: the API's settings, Signing Algorithm).",
            )
        ]
    return [
        Finding(
            "issuer",
            OK,
            f"{issuer} names itself exactly so and serves {len(found)} key(s) at {jwks_uri}; audience "
            f"{', '.join(map(str, audience))}.",
        )
    ]


def _get_json(http: Any, url: str) -> tuple[Any, str]:
    """(document, "") or (None, what went wrong)."""
    try:
        response = http.get(url, timeout=HTTP_TIMEOUT_S, allow_redirects=False, headers={"Accept": "application/json"})
    except Exception as exc:  # requests' connection errors, timeouts, invalid URLs
        return None, f"could not be fetched ({type(exc).__name__})"
    if response.status_code != 200:
        return None, f"answered HTTP {response.status_code}"
    try:
        return response.json(), ""
    except ValueError:
        kind = response.headers.get("Content-Type", "no Content-Type")
        return None, f"answered something that is not JSON ({kind})"


def _region_variant(configured: str, served: str) -> bool:
    """True when two hosts differ by one label after the first: `tenant.auth0.com` vs `tenant.us.auth0.com`."""
    a, b = configured.split("."), served.split(".")
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return short[0] == long[0] and short[1:] == long[2:]


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")
