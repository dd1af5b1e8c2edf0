"""`parse_feed`: one feed document, parsed, validated and grouped, by the parser the caller names."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from cappi.domain.feed.outcome import MAX_REJECTED_RATIO, ParsedFeed, tolerated
from cappi.domain.feed.reference import parse as parse_reference


class Parser(enum.Enum):
    """Which parser reads a feed. Both give the same results (tests/unit/test_feed_fast_path.py)."""

    FAST = "fast"  # the fast path where it applies (a document of exactly the documented shape), else the reference
    REFERENCE = "reference"  # the reference alone: what the fast path is held to (tests, `bench/ingest.py`)


def parse_feed(
    body: bytes | str,
    club_ids: Iterable[int],
    *,
    max_rejected_ratio: float = MAX_REJECTED_RATIO,
    parser: Parser = Parser.FAST,
) -> ParsedFeed:
    """Parse, validate and group a feed for a source that owns `club_ids`. Raises FeedRejected, and nothing else.

    With Parser.FAST (what ingest uses), a feed of exactly the documented shape takes the fast path (`fast`,
    msgspec's typed decoding, imported at the first feed so the functions that never parse one do not load it). Any
    other document (extra fields, mixed spellings, bad rows of other types, anything that is not strict JSON) is read
    by the reference parser (`reference`), which also gives every whole-document rejection but `too_many_rejected`
    its code and message.
    """
    owned = frozenset(club_ids)
    parsed = None
    if parser is Parser.FAST:
        from cappi.domain.feed.fast import parse as parse_fast

        parsed = parse_fast(body, owned)
    if parsed is None:
        parsed = parse_reference(body, owned)
    return tolerated(parsed, max_rejected_ratio)
