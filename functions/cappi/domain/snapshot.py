"""Snapshots: one club's open calls at one fetch, grouped by technician, in canonical order, and hashed.

This is what a snapshot is and when two are the same; how one is stored (shards by TechId, compression, parts under
DynamoDB's item limit) is the store's business (`cappi.adapters.dynamo.shards`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cappi.domain.ids import call_id_sort_key

# The stored format of snapshots. Bump it when the store's encoding changes: stored versions carry it (readers refuse
# formats they do not know) and it seeds the content hash, so every club's next poll writes its version anew
# instead of counting as unchanged.
FORMAT_VERSION = 1


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


def _natural_order(group: Iterable[int | str]) -> tuple[str, ...]:
    """One tech's distinct call IDs as strings, in natural order (`call_id_sort_key`).

    Numeric call IDs (ints: the common case) sort as they are, which is their natural order, and are written out
    once sorted; quoted ones ("8655R") go through the sort key. A 1,000,000-call feed spent most of its snapshot
    building in that key and the strings it compared.
    """
    distinct = group if isinstance(group, set | frozenset) else set(group)
    try:
        ordered = sorted(distinct)
    except TypeError:  # ints and strings together
        ordered = []
    if ordered and type(ordered[0]) is int:  # sorted without a TypeError: all ints
        return tuple(map(str, ordered))
    return tuple(sorted({str(c) for c in distinct}, key=call_id_sort_key))


def build_club_snapshot(club_id: int, grouped: Mapping[str, Iterable[int | str]]) -> ClubSnapshot:
    """Build a snapshot from TechId -> call IDs (ints for numeric IDs, strings for quoted ones).

    The content hash covers the club ID and every (tech, call) pair in canonical order, so two polls with the same
    open calls hash the same whatever order or duplication the club's feed used.
    """
    techs: dict[str, tuple[str, ...]] = {}
    lines: list[str] = [f"cappi-snapshot-v{FORMAT_VERSION}\tclub={club_id}\n"]
    for tech in sorted(grouped):
        calls = _natural_order(grouped[tech])
        if not calls:
            continue
        techs[tech] = calls
        lines.append(_canonical_line(tech, calls))
    # One hash over the lines joined: the same digest as line by line, without a call per tech.
    digest = hashlib.sha256("".join(lines).encode())
    return ClubSnapshot(
        club_id=club_id,
        techs=techs,
        content_hash=digest.hexdigest(),
        call_count=len(set().union(*techs.values())),
        tech_count=len(techs),
    )
