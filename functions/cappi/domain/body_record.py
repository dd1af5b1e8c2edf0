"""What a source's head remembers of the feed body it reflects, so that an unchanged poll need not parse it again.

A poll that publishes or confirms every club of its source (no sudden drop held back) stores, beside the head's
pointers, a `BodyRecord`: the SHA-256 of the body as fetched, a fingerprint of everything else the parse outcome
depends on (`parse_context`: the source's club IDs, the snapshot format, the validation rules and the rejected-row
tolerance), the response's HTTP validators (`ETag`, `Last-Modified`) and the counts the poll reported (rows,
accepted, rejected by reason with the examples a last-poll record keeps (`EXAMPLES_PER_REASON`), warnings, duplicates).

The next poll whose body has the same digest under the same context, or whose club answers 304 Not Modified to the
validators, would parse to the same snapshots with the same content hashes, so it takes the head's pointers as
they are and confirms them (`cappi.domain.poll`): the same outcome, the same counts, without parsing or building a
snapshot. Whatever else could change the outcome (a held drop pending, a club ID added or removed, a new format or
rule) makes the record unusable, and the poll parses as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cappi.domain.row_example import EXAMPLES_PER_REASON, RowExample

# Bump when a change to the feed rules (cappi.domain.feed, cappi.domain.ids) can give a body another outcome: every
# stored record then stops matching and each source's next poll parses its body again.
PARSE_RULES_VERSION = 1
MAX_VALIDATOR_CHARS = 200  # a longer ETag or Last-Modified is not kept (nor sent back)


def body_digest(body: bytes) -> str:
    """The body's SHA-256 (measured: about twice as fast as BLAKE2b here, 31 ms for 56 MB)."""
    return hashlib.sha256(body).hexdigest()


def parse_context(club_ids: Iterable[int], *, snapshot_format: int, max_rejected_ratio: float) -> str:
    """A short fingerprint of what, beside the body, decides a poll's outcome."""
    text = (
        f"rules={PARSE_RULES_VERSION};format={snapshot_format};tolerance={max_rejected_ratio!r};"
        f"clubs={','.join(str(c) for c in sorted(club_ids))}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def validator(value: object) -> str | None:
    """An ETag or Last-Modified value as a response gave it, if it is one that may be sent back as it is."""
    if not isinstance(value, str) or not value or len(value) > MAX_VALIDATOR_CHARS:
        return None
    if not value.isascii() or not value.isprintable():
        return None
    return value


@dataclass(frozen=True, slots=True)
class BodyRecord:
    digest: str  # body_digest of the body the head reflects
    context: str  # parse_context under which it was parsed
    rows: int
    accepted: int
    duplicates: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)
    examples: Mapping[str, tuple[RowExample, ...]] = field(default_factory=dict)
    body_bytes: int = 0
    etag: str | None = None
    last_modified: str | None = None

    @property
    def has_validators(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def with_validators(self, etag: str | None, last_modified: str | None) -> BodyRecord:
        return replace(self, etag=validator(etag), last_modified=validator(last_modified))

    def to_text(self) -> str:
        document: dict[str, Any] = {"d": self.digest, "c": self.context, "r": self.rows, "a": self.accepted}
        optional = {
            "u": self.duplicates,
            "j": dict(self.rejected),
            "w": dict(self.warnings),
            "x": {r: [[e.index, e.value] for e in kept] for r, kept in self.examples.items() if kept},
            "b": self.body_bytes,
            "e": self.etag,
            "m": self.last_modified,
        }
        document |= {key: value for key, value in optional.items() if value}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> BodyRecord:
        data = json.loads(text)
        return cls(
            digest=str(data["d"]),
            context=str(data["c"]),
            rows=int(data["r"]),
            accepted=int(data["a"]),
            duplicates=int(data.get("u", 0)),
            rejected={str(k): int(v) for k, v in data.get("j", {}).items()},
            warnings={str(k): int(v) for k, v in data.get("w", {}).items()},
            examples={
                str(r): tuple(RowExample(int(i), str(v)) for i, v in kept) for r, kept in data.get("x", {}).items()
            },
            body_bytes=int(data.get("b", 0)),
            etag=validator(data.get("e")),
            last_modified=validator(data.get("m")),
        )


def kept_examples(examples: Mapping[str, Iterable[RowExample]]) -> dict[str, tuple[RowExample, ...]]:
    return {reason: tuple(list(kept)[:EXAMPLES_PER_REASON]) for reason, kept in examples.items()}
