"""`cappi calls CLUB TECH [--at TIME]`: what was open for a technician now, or at a past moment still kept
(support's "what was open for tech X at 10:20?"), with the snapshot version and fetch time it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cappi.adapters.snapshot_reader import SnapshotReader
from cappi.domain.heads import OpenCalls
from cappi.domain.query import MalformedRequest, parse_path
from cli.target import Target, TargetError


def parse_time(text: str) -> int:
    """Epoch ms from an ISO 8601 time (`2026-12-01T10:20`, `...Z`, `...+01:00`; no zone means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TargetError(f"--at wants an ISO 8601 time such as 2026-12-01T10:20Z, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def open_calls(target: Target, club: str, tech: str, at_ms: int | None) -> tuple[int, str, OpenCalls | None]:
    """(club ID, canonical tech ID, the answer or None when nothing is kept for that club at that moment)."""
    try:
        club_id, tech_id = parse_path(club, tech)
    except MalformedRequest as exc:
        raise TargetError(exc.message) from None
    if club_id not in target.registry.club_ids:
        raise TargetError(f"no registered source serves club {club_id}")
    if at_ms is None:
        return (
            club_id,
            tech_id,
            SnapshotReader(target.snapshots, target.registry.sources_by_club).open_calls(club_id, tech_id),
        )
    return club_id, tech_id, target.history.open_calls_as_of(club_id, tech_id, at_ms)


def calls_document(club_id: int, tech_id: str, at_ms: int | None, found: OpenCalls | None) -> dict[str, Any]:
    def iso(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")

    return {
        "club_id": club_id,
        "tech_id": tech_id,
        "at": iso(at_ms),
        "found": found is not None,
        "call_ids": list(found.call_ids) if found else [],
        "version": found.version if found else None,
        "fetched_at": iso(found.fetched_at_ms) if found else None,
        "checked_at": iso(found.checked_at_ms) if found else None,
    }
