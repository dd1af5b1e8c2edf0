"""One fetch in progress: which source, how many attempts so far, its deadline and the secrets it has seen.

Everything a fetch reports goes through here, so every error and log field is stamped the same way and every
message and URL is redacted on its way out (`error`, `where`, `log_fields`).

It also keeps the moment the fetch first asked the club for its list (`sent_at_ms`, wall clock): the poll is
stamped with it, so of two overlapping polls the one that asked later wins, whatever either's retries, redirects
or slowness (DESIGN.md section 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cappi.adapters.club_client.deadline import Deadline
from cappi.adapters.club_client.errors import FeedFetchError
from cappi.adapters.club_client.redaction import Redactor
from cappi.domain.registry import ClubSource


@dataclass
class FetchRun:
    source: ClubSource
    deadline: Deadline
    attempts: int = 0
    redactor: Redactor = field(default_factory=Redactor)
    wall_clock: Callable[[], float] = time.time
    sent_at_ms: int | None = None  # when the first feed request went out; None until one has

    def mark_sent(self) -> None:
        """Record that a feed request is about to go out; only the first one of the fetch counts.

        The first, not the one whose answer is used: a club's list is as of when it was asked, and the poll's
        order among overlapping polls must not depend on how often or how slowly the club made it ask again.
        Token and secret lookups come before it and do not count: they do not ask the club for its list.
        """
        if self.sent_at_ms is None:
            self.sent_at_ms = int(self.wall_clock() * 1000)

    def error(self, code: str, message: str, status: int | None = None) -> FeedFetchError:
        return FeedFetchError(
            code,
            f"source {self.source.name!r}: {self.redactor.clean(message)}",
            status=status,
            attempts=self.attempts,
            sent_at_ms=self.sent_at_ms,
        )

    def where(self, url: str) -> str:
        """A URL as this fetch may show it anywhere: no user info, query or fragment, no secret in the path."""
        return self.redactor.url(url)

    def log_fields(self, url: str, status: int | None, outcome: str) -> dict[str, object]:
        """The structured fields of a log line about this fetch (the `extra` of logging calls)."""
        return {
            "club_source": self.source.name,
            "url": self.where(url),
            "status": status,
            "attempt": self.attempts,
            "elapsed_s": round(self.deadline.elapsed(), 3),
            "outcome": outcome,
        }
