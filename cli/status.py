"""`cappi status`'s rows: the states and their words live in `cappi.domain.source_status`, shared with local mode's
`/status` page, so the command and the page say the same thing."""

from cappi.domain.source_status import (
    DISABLED,
    FAILING,
    NEVER_POLLED,
    OK,
    PROBLEMS,
    STALE,
    HeadReads,
    PollReads,
    SourceStatus,
    registry_status,
    source_status,
)

__all__ = [
    "DISABLED",
    "FAILING",
    "NEVER_POLLED",
    "OK",
    "PROBLEMS",
    "STALE",
    "HeadReads",
    "PollReads",
    "SourceStatus",
    "registry_status",
    "source_status",
]
