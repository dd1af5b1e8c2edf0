"""Snapshots: one club's open calls at one fetch, grouped by technician, hashed and cut into shards.

Why shards: DynamoDB charges writes by item size (1 KB units, rounded up per item) and caps an item at 400 KB.
One item per call would cost ~10,000 write units for the reference feed; a few compressed shards cost ~1/1000 of the
bytes' worth. A technician's calls always live in one shard (chosen by a stable hash of the TechId), so a reader
needs one shard to answer one query. A shard whose compressed bytes exceed `MAX_PART_BYTES` is split into parts,
so the item limit holds at any feed size, even for one technician with a huge list.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cappi.domain.ids import call_id_sort_key

SHARD_TARGET_RAW_BYTES = 256 * 1024  # uncompressed bytes per shard we aim for
MAX_PART_BYTES = 350 * 1024  # compressed bytes per stored item, well under DynamoDB's 400 KB item limit
FORMAT_VERSION = 1  # bump when the shard encoding changes; readers refuse formats they do not know


@dataclass(frozen=True, slots=True)
class ClubSnapshot:
    """The open calls of one club ID at one fetch. `techs` maps canonical TechId -> call IDs in natural order."""

    club_id: int
    techs: Mapping[str, tuple[str, ...]]
    content_hash: str
    call_count: int  # distinct call IDs
    tech_count: int

    def open_call_ids(self, tech_id: str) -> tuple[str, ...]:
        return self.techs.get(tech_id, ())


def _canonical_line(tech: str, calls: tuple[str, ...]) -> str:
    return f"{tech}\t{','.join(calls)}\n"


def build_club_snapshot(club_id: int, grouped: Mapping[str, Iterable[int | str]]) -> ClubSnapshot:
    """Build a snapshot from TechId -> call IDs (ints for numeric IDs, strings for quoted ones).

    The content hash covers the club ID and every (tech, call) pair in canonical order, so two polls with the same
    open calls hash the same whatever order or duplication the club's feed used.
    """
    techs: dict[str, tuple[str, ...]] = {}
    distinct: set[str] = set()
    digest = hashlib.sha256(f"cappi-snapshot-v{FORMAT_VERSION}\tclub={club_id}\n".encode())
    for tech in sorted(grouped):
        calls = tuple(sorted({str(c) for c in grouped[tech]}, key=call_id_sort_key))
        if not calls:
            continue
        techs[tech] = calls
        distinct.update(calls)
        digest.update(_canonical_line(tech, calls).encode())
    return ClubSnapshot(
        club_id=club_id,
        techs=techs,
        content_hash=digest.hexdigest(),
        call_count=len(distinct),
        tech_count=len(techs),
    )


def shard_of(tech_id: str, shard_count: int) -> int:
    """Which shard holds a (canonical) TechId. Stable across processes and Python versions."""
    return zlib.crc32(tech_id.encode()) % shard_count


def shard_count_for(snapshot: ClubSnapshot) -> int:
    raw_bytes = sum(len(t) + 2 + sum(len(c) + 1 for c in calls) for t, calls in snapshot.techs.items())
    return max(1, -(-raw_bytes // SHARD_TARGET_RAW_BYTES))


def encode_shards(snapshot: ClubSnapshot, shard_count: int | None = None) -> list[list[bytes]]:
    """Encode a snapshot as `shard_count` shards, each a list of parts (bytes) to store as separate items.

    A shard is zlib-compressed UTF-8 text, one technician per line: `TECH<TAB>call,call,...`.
    An empty shard is one empty part (b"") so that every shard exists and a reader can tell
    "no calls" from "not written".
    """
    count = shard_count or shard_count_for(snapshot)
    lines: list[list[str]] = [[] for _ in range(count)]
    for tech, calls in snapshot.techs.items():
        lines[shard_of(tech, count)].append(_canonical_line(tech, calls))
    shards: list[list[bytes]] = []
    for shard_lines in lines:
        blob = zlib.compress("".join(shard_lines).encode(), 6) if shard_lines else b""
        parts = [blob[i : i + MAX_PART_BYTES] for i in range(0, len(blob), MAX_PART_BYTES)] or [b""]
        shards.append(parts)
    return shards


def decode_shard(parts: list[bytes]) -> dict[str, tuple[str, ...]]:
    """Inverse of one entry of `encode_shards`: parts in order -> TechId -> call IDs."""
    blob = b"".join(parts)
    if not blob:
        return {}
    result: dict[str, tuple[str, ...]] = {}
    for line in zlib.decompress(blob).decode().splitlines():
        tech, _, calls = line.partition("\t")
        result[tech] = tuple(calls.split(",")) if calls else ()
    return result
