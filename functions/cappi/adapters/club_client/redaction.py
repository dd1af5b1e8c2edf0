"""Keeping secrets out of what the client emits: error messages, log lines, excerpts of server answers.

A `Redactor` lives for one fetch and learns each secret value the fetch handles; everything else here is
stateless and strips the places where credentials hide (URL user info and query, exception messages).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote_plus, urlsplit

_EXCERPT_CHARS = 200
_TAG = re.compile(r"<[^>]{0,1000}>")
_CREDENTIAL_WORD = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Control characters, and line/bidi overrides that could make a log line lie about what it says.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]|[\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Redactor:
    """The secret values of one fetch, and the removal of them from any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def protect(self, value: str) -> None:
        self._values.add(value)
        # The same value may come back percent-encoded (a form echo) or base64'd elsewhere.
        self._values.add(quote_plus(value))

    def clean(self, text: str) -> str:
        # Longest first, so a secret that contains another secret is removed whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value:
                text = text.replace(value, "[redacted]")
        return _CREDENTIAL_WORD.sub(r"\1 [redacted]", text)

    def excerpt(self, text: str, *, cut_short: bool) -> str:
        """A short, single-line, secret-free excerpt of what a server sent (an error page, usually).

        `cut_short`: the text is only the start of a longer body.
        """
        if cut_short and self._values:
            # A secret cut in half at the end of what was read would escape redaction; drop that tail.
            text = text[: max(0, len(text) - max(len(v) for v in self._values))]
        text = html.unescape(_TAG.sub(" ", self.clean(text)))
        text = " ".join(_UNPRINTABLE.sub(" ", text).split())
        # Cleaned again: stripping tags and entities can join a secret that markup had split.
        text = self.clean(text)
        if len(text) > _EXCERPT_CHARS:
            text = text[: _EXCERPT_CHARS - 1] + "\u2026"
        return text


def loggable_url(url: str) -> str:
    """scheme://host[:port]/path: no user info, query or fragment, which is where credentials hide."""
    # Not requests.utils.urldefragauth: it keeps the query string.
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def root_cause(exc: BaseException) -> str:
    """The innermost error's type and OS reason, without messages that might quote a request."""
    seen: set[int] = set()
    current: BaseException | None = exc
    innermost: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        innermost = current
        reason = getattr(current, "reason", None)
        nested = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = reason if isinstance(reason, BaseException) else nested or current.__cause__ or current.__context__
    if isinstance(innermost, OSError) and innermost.strerror:
        return f"{type(innermost).__name__}: {innermost.strerror}"
    return type(innermost).__name__
