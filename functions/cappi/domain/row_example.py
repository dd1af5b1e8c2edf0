"""One rejected row as ops and clubs are shown it. A module of its own so that what reads poll records (the store,
the query and dispatch functions) does not load the feed parser and its decoder."""

from __future__ import annotations

from dataclasses import dataclass

CUT_MARK = "..."  # ends a value that was cut to fit an example
EXAMPLES_PER_REASON = 3  # rejected rows a source's last-poll record (and its head's body record) keeps per reason


@dataclass(frozen=True, slots=True)
class RowExample:
    """One rejected row: its position in `Result.Calls` (from 0) and the offending value as JSON text."""

    index: int
    value: str
