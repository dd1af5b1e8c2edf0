"""Test-only signing keys and token forgery for the JWT authorizer tests (never used outside tests)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

ISSUER = "https://stage-clubassist.auth0.com/"
AUDIENCE = "https://stagecappi.clubassist.com"
SCOPE = "read:callids"


@dataclass(frozen=True)
class RsaKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK; an `extra` of None removes that member."""
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        merged = {**data, "kid": self.kid, "use": "sig", "alg": "RS256", **extra}
        return {k: v for k, v in merged.items() if v is not None}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, alg: str = "RS256", **headers: Any) -> str:
        """A token signed by this key; `kid` defaults to this key's, pass kid=None to leave it out."""
        fields = {"kid": self.kid, **headers}
        fields = {k: v for k, v in fields.items() if v is not None}
        return jwt.encode(claims, self.private_key, algorithm=alg, headers=fields)

    def sign_raw(self, payload: dict[str, Any] | bytes, **headers: Any) -> str:
        """RS256 over whatever payload bytes or JSON, past PyJWT's own claim checks on encoding."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header = segment({"alg": "RS256", "typ": "JWT", "kid": self.kid, **headers})
        signing_input = (header + "." + b64url(body)).encode()
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)


def rsa_key(kid: str, bits: int = 2048) -> RsaKey:
    return RsaKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwks(*keys: RsaKey | dict[str, Any]) -> bytes:
    return json.dumps({"keys": [k.jwk() if isinstance(k, RsaKey) else k for k in keys]}).encode()


def claims(**overrides: Any) -> dict[str, Any]:
    """What the project's Auth0 client-credentials tokens carry, valid for a day from now."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "tester-app-1@clients",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 86_400,
        "scope": SCOPE,
        "gty": "client-credentials",
        "azp": "tester-app-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs256_with_secret(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token built by hand (PyJWT refuses a PEM as an HMAC secret, an attacker does not)."""
    signing_input = segment(header) + "." + segment(payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """`alg: none`: header, payload and an empty signature."""
    return segment(header) + "." + segment(payload) + "."
