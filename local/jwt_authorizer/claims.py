"""What a token's claims say, read as API Gateway reads them (NumericDates, scopes) and written as it hands them
to the Lambda (`requestContext.authorizer.jwt.claims`: every value a string)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

# The last second of year 9999. A later "date" is no issuer's intent, and golang-jwt (which API Gateway's wording
# follows) overflows converting it; an earlier one than 1970 neither. Both are refused as malformed.
MAX_NUMERIC_DATE: Final = 253_402_300_799
TIME_CLAIMS: Final = ("exp", "nbf", "iat")


def numeric_date(value: Any) -> int | float | None:
    """`value` when it is a NumericDate (RFC 7519 section 2) CAPPI accepts, else None.

    A JSON number only: not a string of digits, not a boolean (`bool` is an `int` in Python), null, array or
    object. NaN and infinities (which Python's JSON parser lets through) and values outside 0..MAX_NUMERIC_DATE
    fail the range test; it compares without converting, so a 400-digit integer costs nothing either.
    """
    if type(value) not in (int, float):
        return None
    return value if 0 <= value <= MAX_NUMERIC_DATE else None


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return json.dumps(value)  # JSON has no such numbers; PyJWT's parser lets them through as NaN/Infinity
    # Shortest round-trip digits, no exponent, no trailing ".0": 1e20 -> "100000000000000000000", 1.0 -> "1".
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _claim_text(value: Any, *, nested: bool = False) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item, nested=True) for item in value) + "]"
    if value is None and nested:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def api_gateway_claims(payload: Mapping[str, Any]) -> dict[str, str]:
    """The token's claims as `requestContext.authorizer.jwt.claims`: every value a string.

    Strings as they are, numbers as decimal text (`1700000000`), booleans `true`/`false`, arrays as
    `[a b c]` (so `aud: ["x", "y"]` arrives as `"[x y]"` and a club list `[212, 213]` as `"[212 213]"`),
    objects as compact JSON, null-valued claims left out.
    """
    return {str(name): _claim_text(value) for name, value in payload.items() if value is not None}


def _scope_list(value: Any) -> list[str]:
    # RFC 6749: space-delimited; some issuers (Okta's and Azure's `scp`) send a JSON array instead.
    if isinstance(value, str):
        return [s for s in value.split(" ") if s]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str) and s]
    return []


def token_scopes(payload: Mapping[str, Any]) -> list[str]:
    """The scopes a token grants: its `scope` claim, then any further ones from `scp`, in order, once each."""
    scopes: list[str] = []
    for name in ("scope", "scp"):
        for scope in _scope_list(payload.get(name)):
            if scope not in scopes:
                scopes.append(scope)
    return scopes
