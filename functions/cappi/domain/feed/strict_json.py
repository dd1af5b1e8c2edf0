"""Reading a feed's bytes as JSON, strictly where Python's `json` is lenient, because whatever it lets through ends
up in the snapshot or the ingest Lambda's stack: UTF-8 only, no NaN/Infinity (RFC 8259 has no such numbers),
nesting bounded by MAX_DEPTH (checked on the bytes before `json` recurses, see `_nesting_exceeds`), and repeated
keys seen rather than silently resolved to the last value (`REPEATS_DECODER`, `Repeated`). Every decoding failure
is a whole-document FeedRejected. Used by the reference parser; the fast path leaves every document it is not sure
of to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from cappi.domain.feed.outcome import MAX_DEPTH, NOT_JSON, TOO_DEEP, FeedRejected


def load_json(body: bytes | str) -> object:
    """The document as Python values, decoded as strictly as `parse_feed` does (repeated keys: the last wins)."""
    text, _structure = read(body)
    return loads(text, DECODER)


# Bytes that carry a document's structure: string quotes, brackets and name separators. Everything else is dropped
# by one C-speed `bytes.translate` before the nesting check.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}:')
_ONE_BRACKET_KIND = bytes.maketrans(b"{}", b"[]")
_STRING = re.compile(rb'"[^"]*"')


def read(body: bytes | str) -> tuple[str, bytes]:
    """The body as text, and its structural bytes (quotes, brackets and colons, escapes taken out).

    Refuses what is not UTF-8 (RFC 8259 section 8.1: `json.loads` would also guess UTF-16 and UTF-32, and let
    encoded surrogates through) and what nests deeper than MAX_DEPTH, before `json` recurses into it.
    """
    if isinstance(body, str):
        text = body.removeprefix("\ufeff")
        raw = text.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(body).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is harmless
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            raise FeedRejected(NOT_JSON, f"the feed is not UTF-8 text{hint}: {_short(exc)}") from None
    if not text.strip(" \t\r\n"):
        raise FeedRejected(NOT_JSON, "the feed body is empty")
    if b"\\" in raw:
        # Inside strings `\\` and `\"` are the only escapes holding a quote or a backslash; outside strings a
        # backslash is a syntax error `json` stops at, so what it reaches is still read right.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE)
    if _nesting_exceeds(_brackets_outside_strings(structure), MAX_DEPTH):
        raise FeedRejected(TOO_DEEP, f"the feed nests arrays or objects more than {MAX_DEPTH} deep")
    return text, structure


def _brackets_outside_strings(structure: bytes) -> bytes:
    """The brackets of `structure` that are not inside a string, all as `[` and `]` (the kind does not matter
    for depth; `json` reports a mismatch itself)."""
    quotes_and_brackets = structure.translate(None, b":")
    # With no bracket in any string, quotes come in adjacent pairs (`""` for each string), and only then: at the
    # first bracket inside a string, the run of quotes before it starts and ends with an opening quote.
    if quotes_and_brackets.count(b'""') * 2 != quotes_and_brackets.count(b'"'):
        quotes_and_brackets = _STRING.sub(b"", quotes_and_brackets).partition(b'"')[0]  # unterminated: to the end
    return quotes_and_brackets.translate(_ONE_BRACKET_KIND, b'"')


def _nesting_exceeds(brackets: bytes, limit: int) -> bool:
    """Whether `brackets` (only `[` and `]`) nest deeper than `limit`, or would take `json` deeper before it
    fails on them.

    Each `replace` takes out the innermost level everywhere at C speed (a feed's 100,000 rows go in the first),
    so the loop runs at most `limit + 1` times, however long or deep the input.
    """
    for level in range(limit + 1):
        if not brackets:
            return False
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            # Unmatched brackets (`]]..[[`, a truncated or broken body): `json` descends at most into the levels
            # taken out so far plus the unclosed `[`, then fails; not too deep if that stays within the limit.
            return level + brackets.count(b"[") > limit
        brackets = inner_removed
    return True


class _NotJsonNumber(ValueError):
    """NaN, Infinity or -Infinity: Python's `json` accepts them, RFC 8259 section 6 does not."""


def _refuse_constant(name: str) -> object:
    raise _NotJsonNumber(f"{name} is not a JSON number (RFC 8259)")


class Repeated(dict):
    """A JSON object that gave a key more than once. `json` keeps the last value; `names` keeps every key as the
    text gave them, so the row or the document can be rejected as ambiguous instead of read one arbitrary way."""

    __slots__ = ("names",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.names = [name for name, _value in pairs]

    def repeats(self, lowered: Collection[str]) -> bool:
        """Whether a name of `lowered` (lower case) is given twice, exactly or in another casing."""
        given = [name.lower() for name in self.names if name.lower() in lowered]
        return len(given) != len(set(given))


def _keep_repeats(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else Repeated(pairs)


DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# About 40% slower than DECODER (a Python call per object): used only when repeated keys are possible.
REPEATS_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_keep_repeats)


def loads(text: str, decoder: json.JSONDecoder) -> object:
    try:
        return decoder.decode(text)
    except _NotJsonNumber as exc:
        raise FeedRejected(NOT_JSON, f"the feed is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if text[:1] == "<":
            hint = " (it looks like an HTML or XML page)"
        elif "\x00" in text[:4]:
            hint = " (it looks like UTF-16 or UTF-32; CAPPI reads UTF-8)"
        raise FeedRejected(NOT_JSON, f"the feed is not valid JSON{hint}: {_short(exc)}") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits (4300)
        raise FeedRejected(NOT_JSON, f"the feed holds a number too long to read: {_short(exc)}") from None
    except RecursionError:  # not expected past the nesting check; kept so no decoding failure escapes
        raise FeedRejected(TOO_DEEP, "the feed nests arrays or objects too deep to read") from None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
