"""What a feed would change for testers, against what they see now: per club, the calls opened and closed (counts
first, then technicians with example call IDs), and whether the drop guard would hold the change back.

`published_now(snapshots, source)` reads the versions readers see now (through anything shaped like
`cappi.adapters.dynamo.shard_source.DynamoShardSource`); `plan(body, club_ids, published)` is plain data from
there, decided by the domain's own rule (`cappi.domain.publish.club_outcome`). `cappi check-feed --source S --plan`
prints it (`cli.feed_render.plan_text`) and local mode's pages render it. Importing this module loads no AWS SDK;
values from the feed (TechIds, call IDs) stay raw here, for each renderer to escape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cappi.domain import feed
from cappi.domain.heads import Pointer
from cappi.domain.ids import call_id_sort_key
from cappi.domain.publish import DROP_GUARD_MIN_CALLS, DROP_GUARD_RATIO, Outcome, club_outcome, drop_guard_applies
from cappi.domain.snapshot import build_club_snapshot

EXAMPLE_TECHS = 10  # technicians shown per club, those with the most changes first
EXAMPLE_CALLS = 5  # call IDs shown per technician and direction


@dataclass(frozen=True)
class PublishedClub:
    """One club as readers see it now: its head entry, and TechId -> call IDs of that version."""

    pointer: Pointer
    techs: Mapping[str, tuple[str, ...]]


def published_now(snapshots: Any, source: str) -> dict[int, PublishedClub]:
    """Each club of `source` as readers see it now (a club never published is absent). `snapshots`: heads and shards
    as the query reads them (`head`, `read_shards`, `read_shard`)."""
    head = snapshots.head(source)
    if head is None:
        return {}
    found: dict[int, PublishedClub] = {}
    for club, pointer in sorted(head.clubs.items()):
        keys = [(club, pointer.version, shard) for shard in range(pointer.shard_count)]
        shards = snapshots.read_shards(keys)
        techs: dict[str, tuple[str, ...]] = {}
        for key in keys:
            shard = shards.get(key)
            techs.update(shard if shard is not None else snapshots.read_shard(club, pointer.version, key[2]))
        found[club] = PublishedClub(pointer, techs)
    return found


def plan(body: bytes, club_ids: frozenset[int], published: Mapping[int, PublishedClub]) -> dict[str, Any]:
    """What polling this body now would do to each club of a source owning `club_ids` (JSON-ready)."""
    try:
        parsed = feed.parse_feed(body, club_ids)
    except feed.FeedRejected as exc:
        clubs = [_unchanged(club, published.get(club)) for club in sorted(club_ids)]
        summary = f"nothing would change: the feed would be rejected ({exc.code}), testers keep the list they see now"
        return {"would": "reject", "summary": summary, "clubs": clubs}
    clubs = [_club(club, parsed.by_club[club], published.get(club)) for club in sorted(parsed.by_club)]
    held = [c["club_id"] for c in clubs if c["outcome"] == Outcome.HELD.value]
    changed = [
        f"{c['club_id']}{' (its first list)' if c['calls_now'] is None else ''}"
        for c in clubs
        if c["outcome"] == Outcome.PUBLISHED.value
    ]
    if held:
        would, summary = "hold", f"the drop guard would hold club{'s' if len(held) > 1 else ''} {_ids(held)}"
    elif changed:
        would, summary = (
            "publish",
            f"testers would see new lists for club{'s' if len(changed) > 1 else ''} {_ids(changed)}",
        )
    else:
        would, summary = "publish", "nothing would change: testers already see these lists"
    return {"would": would, "summary": summary, "clubs": clubs}


def _ids(clubs: list[Any]) -> str:
    return ", ".join(map(str, clubs))


def _unchanged(club: int, current: PublishedClub | None) -> dict[str, Any]:
    calls = current.pointer.call_count if current else 0
    techs = current.pointer.tech_count if current else 0
    return {
        "club_id": club,
        "outcome": "rejected",
        "calls_now": calls if current else None,
        "calls_after": calls if current else None,
        "techs_now": techs if current else None,
        "opened": 0,
        "closed": 0,
        "techs_changed": 0,
        "techs_new": 0,
        "techs_gone": 0,
        "drop_guard": "not reached: the feed is rejected as a whole",
        "technicians": [],
    }


def _club(club: int, grouped: Mapping[str, set[int | str]], current: PublishedClub | None) -> dict[str, Any]:
    snapshot = build_club_snapshot(club, grouped)
    outcome = club_outcome(current.pointer if current else None, snapshot)
    now = current.techs if current else {}
    after = snapshot.techs
    technicians: list[dict[str, Any]] = []
    for tech in sorted(set(now) | set(after)):
        before, then = set(now.get(tech, ())), set(after.get(tech, ()))
        opened = sorted(then - before, key=call_id_sort_key)
        closed = sorted(before - then, key=call_id_sort_key)
        if opened or closed:
            technicians.append(
                {"tech_id": tech, "opened": opened, "closed": closed, "new": not before, "gone": not then}
            )
    technicians.sort(key=lambda t: (-(len(t["opened"]) + len(t["closed"])), t["tech_id"]))
    return {
        "club_id": club,
        "outcome": outcome.value,
        "calls_now": current.pointer.call_count if current else None,
        "calls_after": snapshot.call_count,
        "techs_now": current.pointer.tech_count if current else None,
        "techs_after": snapshot.tech_count,
        "opened": sum(len(t["opened"]) for t in technicians),
        "closed": sum(len(t["closed"]) for t in technicians),
        "techs_changed": len(technicians),
        "techs_new": sum(t["new"] for t in technicians),
        "techs_gone": sum(t["gone"] for t in technicians),
        "drop_guard": _guard_words(outcome, current, snapshot.call_count),
        "technicians": [
            {**t, "opened": t["opened"][:EXAMPLE_CALLS], "closed": t["closed"][:EXAMPLE_CALLS],
             "opened_count": len(t["opened"]), "closed_count": len(t["closed"])}
            for t in technicians[:EXAMPLE_TECHS]
        ],
    }  # fmt: skip


def _guard_words(outcome: Outcome, current: PublishedClub | None, calls: int) -> str:
    rule = f"a fall below {DROP_GUARD_RATIO:.0%} of a published list of {DROP_GUARD_MIN_CALLS}+ calls"
    if outcome is Outcome.HELD and current is not None:  # HELD needs a published list
        return (
            f"holds it: {calls} calls where {current.pointer.call_count} are published is {rule}; testers keep "
            "today's list until the next poll confirms the drop"
        )
    if (
        outcome is Outcome.PUBLISHED
        and current is not None
        and current.pointer.held_fetched_at_ms is not None
        and drop_guard_applies(current.pointer.call_count, calls)
    ):
        return "confirms the drop held at the previous poll: this poll would publish it"
    return f"does not apply (it holds {rule})"
