"""How a club snapshot is laid out in the table: shards by TechId, each zlib-compressed text cut into parts.

The domain (`cappi.domain.snapshot`) says what a snapshot is: one club's calls grouped by technician, in canonical
order, with a content hash. This module says how one is stored. DynamoDB charges writes by item size (1 KB units,
rounded up per item) and caps an item at 400 KB: one item per call would cost ~10,000 write units for the reference
feed, a few compressed shards cost ~1/1000 of the bytes' worth. A technician's calls always live in one shard
(chosen by a stable hash of the TechId), so a reader needs one shard to answer one query. A shard whose compressed
bytes exceed `MAX_PART_BYTES` is split into parts, so the item limit holds at any feed size, even for one technician
with a huge list.

A change of this encoding bumps `cappi.domain.snapshot.FORMAT_VERSION`: readers refuse versions in a format they do
not know, and the content hash carries the format, so every club's next poll writes a version in the new one.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from typing import Any

from cappi.domain.snapshot import ClubSnapshot

SHARD_TARGET_RAW_BYTES = 256 * 1024  # uncompressed bytes per shard we aim for
MAX_PART_BYTES = 350 * 1024  # compressed bytes per stored item, well under DynamoDB's 400 KB item limit

ShardKey = tuple[int, str, int]  # (club, version, shard): one shard of one version
Techs = dict[str, tuple[str, ...]]  # one decoded shard: TechId -> call IDs


def shard_of(tech_id: str, shard_count: int) -> int:
    """Which shard holds a (canonical) TechId. Stable across processes and Python versions."""
    return zlib.crc32(tech_id.encode()) % shard_count


def shard_count_for(snapshot: ClubSnapshot) -> int:
    raw_bytes = sum(len(t) + 2 + sum(len(c) + 1 for c in calls) for t, calls in snapshot.techs.items())
    return max(1, -(-raw_bytes // SHARD_TARGET_RAW_BYTES))


def _line(tech: str, calls: tuple[str, ...]) -> str:
    return f"{tech}\t{','.join(calls)}\n"


def encode_shards(snapshot: ClubSnapshot, shard_count: int | None = None) -> list[list[bytes]]:
    """Encode a snapshot as `shard_count` shards, each a list of parts (bytes) to store as separate items.

    A shard is zlib-compressed UTF-8 text, one technician per line: `TECH<TAB>call,call,...`.
    An empty shard is one empty part (b"") so that every shard exists and a reader can tell
    "no calls" from "not written".
    """
    count = shard_count or shard_count_for(snapshot)
    lines: list[list[str]] = [[] for _ in range(count)]
    for tech, calls in snapshot.techs.items():
        lines[shard_of(tech, count)].append(_line(tech, calls))
    shards: list[list[bytes]] = []
    for shard_lines in lines:
        blob = zlib.compress("".join(shard_lines).encode(), 6) if shard_lines else b""
        parts = [blob[i : i + MAX_PART_BYTES] for i in range(0, len(blob), MAX_PART_BYTES)] or [b""]
        shards.append(parts)
    return shards


def decode_shard(parts: list[bytes]) -> Techs:
    """Inverse of one entry of `encode_shards`: parts in order -> TechId -> call IDs.

    Raises zlib.error or UnicodeDecodeError when the bytes are not a shard (readers report the version as corrupt).
    """
    blob = b"".join(parts)
    if not blob:
        return {}
    result: Techs = {}
    for line in zlib.decompress(blob).decode().splitlines():
        tech, _, calls = line.partition("\t")
        result[tech] = tuple(calls.split(",")) if calls else ()
    return result


class PackedShard(Mapping[str, tuple[str, ...]]):
    """A decoded shard as a warm reader keeps it: its text (`TECH<TAB>call,call` lines, sorted by TechId), searched
    per lookup.

    A dict of tuples costs about 350 bytes a technician (some 875 KB for a club of 2,500 technicians), so a query
    container could not hold 1,000 clubs in 1 GB; the text costs about 40 (some 100 KB a club). Every
    `_EVERY`th line's TechId and offset are kept: a lookup bisects them, then searches the few lines between two of
    them (TechIds are letters and digits, so a line's start cannot be mistaken), about a microsecond at any size.
    """

    __slots__ = ("_keys", "_starts", "_text")
    _EVERY = 32

    def __init__(self, lines: list[bytes]) -> None:
        """`lines`: `TECH<TAB>calls` without newlines, sorted by TechId."""
        keys: list[bytes] = []
        starts: list[int] = []
        offset = 0
        for n, line in enumerate(lines):
            if n % self._EVERY == 0:
                keys.append(line[: line.index(b"\t")])
                starts.append(offset)
            offset += len(line) + 1
        # Every line starts after a newline, the first too: the offsets point at it.
        self._text = b"\n" + b"".join(line + b"\n" for line in lines)
        self._keys, self._starts = keys, starts

    @classmethod
    def of(cls, techs: Mapping[str, tuple[str, ...]]) -> PackedShard:
        return cls([f"{tech}\t{','.join(techs[tech])}".encode() for tech in sorted(techs)])

    def get(self, tech: str, default: Any = None) -> Any:  # the query's path: no KeyError raised and caught
        key = tech.encode()
        block = bisect_right(self._keys, key) - 1
        if block < 0:
            return default
        starts, text = self._starts, self._text
        end = starts[block + 1] + 1 if block + 1 < len(starts) else len(text)
        found = text.find(b"\n" + key + b"\t", starts[block], end)
        if found < 0:
            return default
        begin = found + len(key) + 2
        calls = text[begin : text.index(b"\n", begin)]
        return tuple(calls.decode().split(",")) if calls else ()

    def __getitem__(self, tech: str) -> tuple[str, ...]:
        found: tuple[str, ...] | None = self.get(tech)
        if found is None:
            raise KeyError(tech)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.unpacked())

    def __len__(self) -> int:
        return self._text.count(b"\n") - 1

    def unpacked(self) -> Techs:
        result: Techs = {}
        for line in self._text.decode().splitlines()[1:]:
            tech, _, calls = line.partition("\t")
            result[tech] = tuple(calls.split(",")) if calls else ()
        return result

    @property
    def nbytes(self) -> int:
        return len(self._text)
