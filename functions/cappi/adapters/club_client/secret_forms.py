"""Every form in which a secret can come back from a club, found in any text and mapped back to where it stands.

A club that echoes a credential rarely echoes it as sent: a PHP page writes `/` as `\\/`, .NET writes `+` as
`\\u002B`, an HTML error page writes entities, a form echo percent-encodes (with `+` for a space), a basic
credential comes back as base64, and a framework may do two of these at once (JSON escapes inside HTML). Listing
encoded copies of a secret cannot keep up (each character may be escaped on its own, in either hex case), so the
text is decoded instead: `spans` decodes it layer by layer (JSON string escapes, HTML entities, percent-encoding,
each in one pass), keeping for every decoded character the stretch of the original text it came from, looks for
each secret in every layer, and answers the original stretches to remove. Base64 is not decodable in place (where
a secret starts inside a base64 run depends on what precedes it), so each secret's base64 is looked for instead,
at each of the three alignments it can have inside a longer run, in both alphabets; a hit removes the whole run.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from html.entities import html5

# Decoding rounds per layer stack: enough for JSON inside HTML inside a URL, and bounded whatever the text holds.
_MAX_LAYERS = 4
_ESCAPE = re.compile(
    r"\\u(?P<hi>[dD][89abAB][0-9a-fA-F]{2})\\u(?P<lo>[dD][c-fC-F][0-9a-fA-F]{2})"  # a JSON surrogate pair
    r"|\\u(?P<u>[0-9a-fA-F]{4})"
    r"|\\(?P<c>[\"\\/bfnrt])"
    r"|&\#(?P<dec>[0-9]{1,8});?"
    r"|&\#[xX](?P<hex>[0-9a-fA-F]{1,7});?"
    r"|&(?P<name>[A-Za-z][A-Za-z0-9]{0,31};?)"
    r"|(?P<pct>(?:%[0-9a-fA-F]{2})+)"
    r"|(?P<plus>\+)"
)
_JSON_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAYBE_ENCODED = re.compile(r"[\\&%+]")
# An escape cut off by the end of what was read: its secret character cannot be decoded yet.
_INCOMPLETE_ESCAPE = re.compile(r"(?:\\(?:u[0-9a-fA-F]{0,3})?|%[0-9a-fA-F]?|&#?[xX]?[0-9A-Za-z]{0,32})\Z")
_BASE64_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
# Below this many bytes a secret's base64 is looked for only whole: fragments that short would match by chance.
_MIN_FRAGMENT_SECRET_BYTES = 6


@dataclass(frozen=True)
class Patterns:
    """What to look for, for one secret: its value, and the base64 fragments every encoding of it contains."""

    value: str
    base64: tuple[str, ...]

    @classmethod
    def of(cls, value: str) -> Patterns:
        return cls(value, base64_fragments(value))


@dataclass(frozen=True)
class _View:
    """A (partly) decoded text; character i came from original[starts[i]:ends[i]]."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]


def spans(text: str, secrets: list[Patterns]) -> list[tuple[int, int]]:
    """The stretches of `text` that hold a secret in any of its forms, merged and in order."""
    found: list[tuple[int, int]] = []
    for view in _views(text):
        for secret in secrets:
            found.extend(_occurrences(view, secret.value, extend=False))
            for fragment in secret.base64:
                found.extend(_occurrences(view, fragment, extend=True))
    return _merged(found)


def partial_tail_start(text: str, secrets: list[Patterns]) -> int:
    """Where a secret cut off by the end of `text` (a body read only in part) starts; len(text) when none is.

    An escape cut in half counts as the start of a secret, whichever character it was going to be.
    """
    # An escape cut off in the original text decodes to something else (`&#9` of `&#99;` is a tab): drop it first.
    cut = len(text)
    while (incomplete := _INCOMPLETE_ESCAPE.search(text, 0, cut)) and incomplete.start() < cut:
        cut = incomplete.start()
    for view in _views(text[:cut]):
        end = len(view.text)
        if (incomplete := _INCOMPLETE_ESCAPE.search(view.text)) and incomplete.start() < end:
            end = incomplete.start()  # one cut off in a decoded layer (`\u0026#9`)
            cut = min(cut, view.starts[end])
        for pattern in (p for s in secrets for p in (s.value, *s.base64)):
            for size in range(min(len(pattern) - 1, end), 0, -1):
                if view.text.endswith(pattern[:size], 0, end):
                    cut = min(cut, view.starts[end - size])
                    break
    return cut


def base64_fragments(value: str) -> tuple[str, ...]:
    """Substrings that any base64 text holding `value`'s UTF-8 bytes contains, in the standard and URL-safe
    alphabets: for each of the three offsets the value can start at in a run, the characters it alone decides."""
    data = value.encode("utf-8", "surrogatepass")
    if len(data) < _MIN_FRAGMENT_SECRET_BYTES:
        whole = base64.b64encode(data).decode("ascii").rstrip("=")
        return tuple({whole, whole.translate(_URL_SAFE)}) if len(whole) >= 4 else ()
    fragments = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        first = (8 * offset + 5) // 6  # the characters before mix in the preceding bytes
        last = 8 * (offset + len(data)) // 6  # the one after mixes in the following bytes
        fragment = encoded[first:last]
        fragments |= {fragment, fragment.translate(_URL_SAFE)}
    return tuple(sorted(fragments))


_URL_SAFE = str.maketrans("+/", "-_")


def _views(text: str) -> list[_View]:
    raw = _View(text, tuple(range(len(text))), tuple(range(1, len(text) + 1)))
    views = [raw]
    if not _MAYBE_ENCODED.search(text):
        return views
    # Two stacks: `+` as itself (JSON, HTML, a URL path) and `+` as a space (a form or query string).
    for plus_is_space in (False, True):
        current = raw
        for _ in range(_MAX_LAYERS):
            decoded = _decode_once(current, plus_is_space=plus_is_space)
            if decoded is None:
                break
            views.append(decoded)
            current = decoded
    return views


def _decode_once(view: _View, *, plus_is_space: bool) -> _View | None:
    """One layer of JSON escapes, HTML entities and percent-encoding off the view; None when nothing changed."""
    text, starts, ends = view.text, view.starts, view.ends
    out: list[str] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    changed = False

    def emit(chars: str, first: int, last: int) -> None:
        """Decoded `chars`, all from the view's characters first..last-1."""
        for char in chars:
            out.append(char)
            out_starts.append(starts[first])
            out_ends.append(ends[last - 1])

    def keep(first: int, last: int) -> None:
        out.extend(text[first:last])
        out_starts.extend(starts[first:last])
        out_ends.extend(ends[first:last])

    position = 0
    for match in _ESCAPE.finditer(text):
        keep(position, match.start())
        position = match.end()
        decoded = _decoded(match, plus_is_space=plus_is_space, literal=ends[match.start()] - starts[match.start()] == 1)
        if decoded is None:
            keep(match.start(), match.end())
            continue
        changed = True
        for chars, first, last in decoded:
            if chars is None:
                keep(match.start() + first, match.start() + last)
            else:
                emit(chars, match.start() + first, match.start() + last)
    keep(position, len(text))
    return _View("".join(out), tuple(out_starts), tuple(out_ends)) if changed else None


# (decoded characters or None to keep them as they are, first, last): offsets into the match
_Piece = tuple[str | None, int, int]


def _decoded(match: re.Match[str], *, plus_is_space: bool, literal: bool) -> list[_Piece] | None:
    size = match.end() - match.start()
    groups = match.groupdict()
    if groups["hi"] is not None:
        high, low = int(groups["hi"], 16), int(groups["lo"], 16)
        return [(chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), 0, size)]
    if groups["u"] is not None:
        return [(chr(int(groups["u"], 16)), 0, size)]
    if groups["c"] is not None:
        return [(_JSON_SHORT[groups["c"]], 0, size)]
    if groups["dec"] is not None or groups["hex"] is not None:
        code = int(groups["dec"], 10) if groups["dec"] is not None else int(groups["hex"], 16)
        if code > 0x10FFFF:
            return None
        # As the server meant it: a browser shows &#0; as U+FFFD, but the echoed secret held U+0000.
        return [(chr(code), 0, size)]
    if groups["name"] is not None:
        return _entity(groups["name"])
    if groups["pct"] is not None:
        return _percent(match.group())
    # A `+` that stood in the original text: a `+` decoded from `%2B` or `\u002B` is a plus, not a space.
    return [(" ", 0, 1)] if plus_is_space and literal else None


def _entity(name: str) -> list[_Piece] | None:
    if name in html5:
        return [(html5[name], 0, len(name) + 1)]
    bare = name.rstrip(";")
    # As browsers (and html.unescape) read them: a few old entities need no `;`, the longest such prefix counts.
    for size in range(len(bare), 1, -1):
        if bare[:size] in html5:
            return [(html5[bare[:size]], 0, size + 1), (None, size + 1, len(name) + 1)]
    return None


def _percent(run: str) -> list[_Piece] | None:
    """%XX bytes as UTF-8; a byte that starts no valid sequence is kept as written."""
    data = bytes.fromhex(run.replace("%", ""))
    pieces: list[_Piece] = []
    index = 0
    while index < len(data):
        lead = data[index]
        length = 1 if lead < 0x80 else 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4
        try:
            char = data[index : index + length].decode("utf-8")
        except UnicodeDecodeError:
            pieces.append((None, 3 * index, 3 * index + 3))
            index += 1
            continue
        pieces.append((char, 3 * index, 3 * (index + length)))
        index += length
    return pieces


def _occurrences(view: _View, pattern: str, *, extend: bool) -> list[tuple[int, int]]:
    """Original stretches of each occurrence of `pattern` in the view; `extend` widens one to its base64 run."""
    if not pattern:
        return []
    text = view.text
    found = []
    at = text.find(pattern)
    while at >= 0:
        first, last = at, at + len(pattern)
        if extend:
            while first > 0 and text[first - 1] in _BASE64_RUN:
                first -= 1
            while last < len(text) and (text[last] in _BASE64_RUN or text[last] == "="):
                last += 1
        found.append((view.starts[first], view.ends[last - 1]))
        at = text.find(pattern, at + 1)
    return found


def _merged(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
