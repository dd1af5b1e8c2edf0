"""Reading a source's secret and checking it can serve as the credential its auth type needs.

Each value read is registered with the fetch's Redactor before anything else happens to it, so no later
error or log line can quote it.
"""

from __future__ import annotations

import json
import re

from cappi.adapters.club_client.fetch_run import FetchRun
from cappi.adapters.secrets import SecretNotFound, SecretSource
from cappi.domain.registry import ClubAuth

# Visible ASCII: what a bearer token or API key may hold (requests' own header check lets inner spaces through).
HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
# One PEM block of each kind; an encrypted key is refused, as nothing could supply its passphrase.
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>(?:RSA |EC )?PRIVATE KEY)-----\s[A-Za-z0-9+/=\s]+-----END (?P=kind)-----"
)


class SecretReader:
    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets

    def secret(self, auth: ClubAuth, run: FetchRun) -> str:
        """The value of `auth.secret`, without surrounding whitespace."""
        name = auth.secret
        if not name:
            raise run.error("secret_missing", f"auth type {auth.type!r} names no secret")
        try:
            value = self._secrets.get(name)
        except SecretNotFound as missing:
            raise run.error("secret_missing", str(missing)) from None  # names the secret (and its parameter)
        except Exception as exc:
            # The value was never obtained, so the error cannot quote it.
            reason = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise run.error(
                "secret_missing", f"secret {name!r} could not be read: {type(exc).__name__} {reason}"
            ) from None
        if not isinstance(value, str) or not value.strip():
            raise run.error("secret_missing", f"secret {name!r} is empty")
        run.redactor.protect(value)
        # Secrets written with `echo` or from a file often end in a newline, which no header may carry.
        value = value.strip()
        run.redactor.protect(value)
        return value

    def header_value(self, auth: ClubAuth, run: FetchRun) -> str:
        """The secret as it goes into a header as is (a bearer token, an API key)."""
        value = self.secret(auth, run)
        if not HEADER_TOKEN.fullmatch(value):
            raise run.error(
                "secret_missing",
                f"secret {auth.secret!r} holds characters that cannot be sent in an HTTP header (visible ASCII only)",
            )
        return value

    def user_and_password(self, auth: ClubAuth, run: FetchRun) -> tuple[str, str]:
        """The secret as `user:password` or as JSON with username and password."""
        value = self.secret(auth, run)
        unusable = run.error(
            "secret_missing",
            f"secret {auth.secret!r} is not 'user:password' or a JSON object with username and password",
        )
        if value.startswith("{"):
            fields = _string_fields(_json_or_none(value), "username", "password")
            if fields is None:
                raise unusable
            user, password = fields
        else:
            user, sep, password = value.partition(":")
            if not sep:
                raise unusable
        if not user or ":" in user or any(c in user + password for c in "\r\n\0"):
            raise unusable
        return user, password

    def certificate_and_key(self, auth: ClubAuth, run: FetchRun) -> tuple[str, str]:
        """The secret as JSON with a PEM `certificate` (chain) and its unencrypted PEM private `key`."""
        value = self.secret(auth, run)
        # Names the fields, never quotes them: the message must not carry any of the PEM text.
        unusable = run.error(
            "secret_missing",
            f"secret {auth.secret!r} is not a JSON object with a PEM 'certificate' and an unencrypted PEM 'key'",
        )
        parsed = _json_or_none(value)
        for pem in parsed.values() if isinstance(parsed, dict) else ():
            if isinstance(pem, str) and pem.strip():  # protected before any check can fail and quote them
                run.redactor.protect(pem)
                run.redactor.protect(pem.strip())
        fields = _string_fields(parsed, "certificate", "key")
        if fields is None:
            raise unusable
        certificate, key = fields
        if not PEM_CERTIFICATE.search(certificate) or not PEM_PRIVATE_KEY.search(key):
            raise unusable
        # A PEM line alone would escape whole-value redaction; the key's lines are the ones that matter.
        for line in key.splitlines():
            if len(line.strip()) >= 16:
                run.redactor.protect(line.strip())
        return certificate.strip() + "\n", key.strip() + "\n"


def _json_or_none(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return None


def _string_fields(parsed: object, *names: str) -> tuple[str, ...] | None:
    """The named string fields of a parsed JSON-object secret, or None when it is not one or lacks any of them."""
    if not isinstance(parsed, dict):
        return None
    fields = [field for name in names if isinstance(field := parsed.get(name), str)]
    return tuple(fields) if len(fields) == len(names) else None
