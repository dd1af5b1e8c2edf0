"""One fetch in progress: which source, how many attempts so far, its deadline and the secrets it has seen.

Everything a fetch reports goes through here, so every error and log field is stamped the same way and every
message is redacted on its way out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cappi.adapters.club_client.deadline import Deadline
from cappi.adapters.club_client.errors import FeedFetchError
from cappi.adapters.club_client.redaction import Redactor, loggable_url
from cappi.domain.registry import ClubSource


@dataclass
class FetchRun:
    source: ClubSource
    deadline: Deadline
    attempts: int = 0
    redactor: Redactor = field(default_factory=Redactor)

    def error(self, code: str, message: str, status: int | None = None) -> FeedFetchError:
        return FeedFetchError(
            code,
            f"source {self.source.name!r}: {self.redactor.clean(message)}",
            status=status,
            attempts=self.attempts,
        )

    def log_fields(self, url: str, status: int | None, outcome: str) -> dict[str, object]:
        """The structured fields of a log line about this fetch (the `extra` of logging calls)."""
        return {
            "club_source": self.source.name,
            "url": loggable_url(url),
            "status": status,
            "attempt": self.attempts,
            "elapsed_s": round(self.deadline.elapsed(), 3),
            "outcome": outcome,
        }
