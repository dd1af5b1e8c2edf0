"""Keeping secrets out of what the client emits: error messages, log lines, excerpts of server answers.

A `Redactor` lives for one fetch and learns each secret value the fetch handles. It is the one redaction path:
URLs leave the client only as `Redactor.url` renders them (user info, query and fragment dropped, then every known
secret replaced: a club may redirect to a path that holds the bearer secret), and messages and excerpts only as
`clean`/`excerpt` leave them. A secret is found in every form a club may echo it in (raw, percent-encoded, as
HTML entities, in JSON string escapes, as base64, and layers of these: see secret_forms). As a backstop that holds
whatever a call site forgets, `RedactingFilter` sits on the club client's logger and on urllib3's: while a fetch
runs (`Redactor.active`), every record those loggers emit, its message, arguments and extra fields, goes through
the fetch's redactor before any handler sees it.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

from cappi.adapters.club_client.secret_forms import Patterns, partial_tail_start, spans

_EXCERPT_CHARS = 200
_TAG = re.compile(r"<[^>]{0,1000}>")
_CREDENTIAL_WORD = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Control characters, and line/bidi overrides that could make a log line lie about what it says.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]|[\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Redactor:
    """The secret values of one fetch, and the removal of them from any text."""

    def __init__(self) -> None:
        self._secrets: dict[str, Patterns] = {}

    def protect(self, value: str) -> None:
        # Only the value: its encoded forms (percent-encoded as a URL path or form echo carries it, escaped in
        # JSON or HTML, in base64) are found by decoding the text it may stand in (secret_forms).
        if value and value not in self._secrets:
            self._secrets[value] = Patterns.of(value)

    def url(self, raw: str) -> str:
        """The only form in which the client lets a URL out (log lines, errors, results)."""
        return self.clean(loggable_url(raw))

    @contextmanager
    def active(self) -> Iterator[None]:
        """While the block runs, RedactingFilter cleans this thread's club client and urllib3 log records."""
        token = _ACTIVE.set((*_ACTIVE.get(), self))
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def clean(self, text: str, *, cut_short: bool = False) -> str:
        """The text with every known secret, in any form it may take, replaced by `[redacted]`.

        `cut_short`: the text was cut from a longer one, so a secret cut off at its end goes too (even one cut
        inside an escape, whichever character that was going to be).
        """
        if cut_short and self._secrets:
            text = text[: partial_tail_start(text, list(self._secrets.values()))]
        if self._secrets:
            # Overlapping and nested finds are merged, so a secret that contains another is removed whole.
            pieces, position = [], 0
            for start, end in spans(text, list(self._secrets.values())):
                pieces += [text[position:start], "[redacted]"]
                position = end
            text = "".join([*pieces, text[position:]])
        return _CREDENTIAL_WORD.sub(r"\1 [redacted]", text)

    def excerpt(self, text: str, *, cut_short: bool) -> str:
        """A short, single-line, secret-free excerpt of what a server sent (an error page, usually).

        `cut_short`: the text is only the start of a longer body.
        """
        # A secret cut in half at the end of what was read would escape redaction: `cut_short` drops that tail.
        text = html.unescape(_TAG.sub(" ", self.clean(text, cut_short=cut_short)))
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


# The redactors of the fetches running in this context (one, unless fetches nest).
_ACTIVE: ContextVar[tuple[Redactor, ...]] = ContextVar("cappi_club_client_redactors", default=())
# The attributes every LogRecord has; anything else on a record is an `extra` field and is cleaned too.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Where a fetch's URLs and headers can reach a log record: the client's own lines, and urllib3's request lines
# (urllib3.connectionpool logs each request's path at DEBUG). Filters on a logger do not apply to its children.
REDACTED_LOGGERS = ("cappi.club_client", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


class RedactingFilter(logging.Filter):
    """Cleans every record with the redactors of the fetches active in the emitting context."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = _ACTIVE.get()
        if not redactors:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = _scrub(message, redactors), None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, _scrub(value, redactors))
        return True


def _scrub(text: str, redactors: tuple[Redactor, ...]) -> str:
    for redactor in redactors:
        text = redactor.clean(text)
    return text


def install_log_redaction() -> None:
    """Put RedactingFilter on every logger of REDACTED_LOGGERS (once; called when the client is imported)."""
    for name in REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
