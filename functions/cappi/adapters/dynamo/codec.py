"""Items <-> the domain's head and version types, in DynamoDB's low-level attribute-value format."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cappi.adapters.dynamo.cost import item_size
from cappi.adapters.dynamo.schema import (
    HEAD_SK,
    MAX_FETCHED_AT_MS,
    PK,
    POLL_SK,
    SK,
    TTL_ATTRIBUTE,
    item_key,
    manifest_sk,
    source_item_key,
)
from cappi.domain.heads import Head, Pointer, VersionRef

if TYPE_CHECKING:  # only ingest and tools read or write last polls and body records; queries skip these imports
    from cappi.domain.body_record import BodyRecord
    from cappi.domain.last_poll import LastPoll


def placeholders(*attributes: str) -> dict[str, str]:
    # Every attribute goes through a placeholder: several of ours (source, format) are DynamoDB reserved words.
    return {f"#{a}": a for a in attributes}


def number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def string(value: str) -> dict[str, str]:
    return {"S": value}


META_FIELDS = ("version", "content_hash", "fetched_at", "shard_count", "call_count", "tech_count", "source", "format")
MANIFEST_FIELDS = (PK, SK, *META_FIELDS, "parts", "part_bytes", TTL_ATTRIBUTE)


def encode_part_bytes(part_bytes: tuple[tuple[int, ...], ...]) -> str:
    return ";".join(",".join(str(n) for n in shard) for shard in part_bytes)


def decode_part_bytes(text: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(n) for n in shard.split(",")) for shard in text.split(";"))


def manifest_item(ref: VersionRef, source: str) -> dict[str, dict[str, Any]]:
    return {
        **item_key(ref.club_id, manifest_sk(ref.version)),
        "version": string(ref.version),
        "content_hash": string(ref.content_hash),
        "fetched_at": number(ref.fetched_at_ms),
        "shard_count": number(ref.shard_count),
        "call_count": number(ref.call_count),
        "tech_count": number(ref.tech_count),
        "source": string(source),
        "format": number(ref.format_version),
        "parts": string(",".join(str(n) for n in ref.parts)),
        "part_bytes": string(encode_part_bytes(ref.part_bytes)),
        TTL_ATTRIBUTE: number(ref.expires_at),
    }


def ref_from_manifest(club_id: int, item: Mapping[str, Any]) -> VersionRef:
    part_bytes = decode_part_bytes(item["part_bytes"]["S"])
    return VersionRef(
        club_id=club_id,
        version=item["version"]["S"],
        content_hash=item["content_hash"]["S"],
        fetched_at_ms=int(item["fetched_at"]["N"]),
        shard_count=int(item["shard_count"]["N"]),
        parts=tuple(int(n) for n in item["parts"]["S"].split(",")),
        call_count=int(item["call_count"]["N"]),
        tech_count=int(item["tech_count"]["N"]),
        expires_at=int(item[TTL_ATTRIBUTE]["N"]),
        part_bytes=part_bytes,
        format_version=int(item["format"]["N"]),
    )


# Short names inside the head's per-club maps keep the head small: one write unit for a few clubs.
ENTRY_NUMBERS = {
    "fetched_at_ms": "f",
    "checked_at_ms": "k",
    "shard_count": "n",
    "call_count": "c",
    "tech_count": "t",
    "format_version": "fmt",
    "data_expires_at": "x",
}
HELD = {"held_count": "hc", "held_fetched_at_ms": "hf"}


def head_item(
    source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer], body: BodyRecord | None = None
) -> dict[str, dict[str, Any]]:
    # Deliberately no TTL attribute: the head must outlive every version it names.
    entries: dict[str, Any] = {}
    for club_id, pointer in sorted(clubs.items()):
        entry: dict[str, Any] = {"v": string(pointer.version), "h": string(pointer.content_hash)}
        entry |= {short: number(getattr(pointer, name)) for name, short in ENTRY_NUMBERS.items()}
        if pointer.held_fetched_at_ms is not None:
            entry["hh"] = string(pointer.held_hash or "")
            entry |= {short: number(getattr(pointer, name) or 0) for name, short in HELD.items()}
        entries[str(club_id)] = {"M": entry}
    item: dict[str, dict[str, Any]] = {
        **source_item_key(source, HEAD_SK),
        "source": string(source),
        "fetched_at": number(fetched_at_ms),
        "clubs": {"M": entries},
    }
    if body is not None:
        item[BODY_ATTRIBUTE] = string(body.to_text())
    return item


BODY_ATTRIBUTE = "body"  # the head's BodyRecord, as compact JSON (read by ingest only)


def head_with_body(item: Mapping[str, Any]) -> Head:
    """The head with its BodyRecord (ingest); an unreadable record is no record: the next poll parses."""
    head = head_from_item(item)
    text = item.get(BODY_ATTRIBUTE, {}).get("S")
    if not text:
        return head
    from cappi.domain.body_record import BodyRecord

    try:
        body = BodyRecord.from_text(text)
    except (ValueError, KeyError, TypeError, AttributeError):
        return head
    return replace(head, body=body)


def head_from_item(item: Mapping[str, Any]) -> Head:
    """The head readers need: its pointers (the body record is left undecoded: `head_with_body`)."""
    source = item["source"]["S"]
    clubs: dict[int, Pointer] = {}
    for key, value in item["clubs"]["M"].items():
        entry = value["M"]
        numbers = {name: int(entry[short]["N"]) for name, short in ENTRY_NUMBERS.items()}
        held = "hf" in entry
        clubs[int(key)] = Pointer(
            club_id=int(key),
            version=entry["v"]["S"],
            content_hash=entry["h"]["S"],
            source=source,
            held_hash=entry["hh"]["S"] if held else None,
            held_count=int(entry["hc"]["N"]) if held else None,
            held_fetched_at_ms=int(entry["hf"]["N"]) if held else None,
            **numbers,
        )
    return Head(source=source, fetched_at_ms=int(item["fetched_at"]["N"]), clubs=clubs)


def apply_update(old: Mapping[str, Any], set_values: Mapping[str, Any], remove: tuple[str, ...] = ()) -> dict[str, Any]:
    """The item an UpdateItem leaves behind, so its cost can be computed from the larger of before and after."""
    new = {k: v for k, v in old.items() if k not in remove}
    new.update(set_values)
    return new


# A source's last poll: the fields ops filter on as attributes, the rest as one compact JSON document.
POLL_ITEM_LIMIT = 1024  # bytes: one write unit


def poll_values(poll: LastPoll) -> dict[str, dict[str, Any]]:
    """The attributes an UpdateItem sets for `poll`, cut to fit one write unit: examples go first, then the
    error message is shortened."""
    document: dict[str, Any] = {
        "duration_s": poll.duration_s,
        "error_code": poll.error_code,
        "error": poll.error,
        "http_status": poll.http_status,
        "rows": poll.rows,
        "accepted": poll.accepted,
        "rejected": poll.rejected,
        "examples": {r: [[e.index, e.value] for e in kept] for r, kept in poll.examples.items()},
        "warnings": poll.warnings,
        "held_clubs": list(poll.held_clubs),
    }
    for keep in (len(max(poll.examples.values(), key=len, default=())), 1, 0):
        document["examples"] = {r: [[e.index, e.value] for e in kept[:keep]] for r, kept in poll.examples.items()}
        values = _poll_attributes(poll, document)
        if _poll_item_size(poll, values) <= POLL_ITEM_LIMIT:
            return values
    document["examples"] = {}
    for _ in range(4):  # JSON escaping makes the cut approximate; a few rounds always fit
        values = _poll_attributes(poll, document)
        excess = _poll_item_size(poll, values) - POLL_ITEM_LIMIT
        if excess <= 0 or not document["error"]:
            return values
        error = document["error"].encode()
        document["error"] = error[: max(0, len(error) - excess - 8)].decode(errors="ignore") + "..."
    return _poll_attributes(poll, document)


def _poll_attributes(poll: LastPoll, document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    values = {
        "source": string(poll.source),
        "status": string(poll.status),
        "fetched_at": number(poll.fetched_at_ms),
        "poll": string(json.dumps(document, separators=(",", ":"), ensure_ascii=False)),
    }
    if poll.last_success_ms is not None:
        values["last_success"] = number(poll.last_success_ms)
    return values


def _poll_item_size(poll: LastPoll, values: Mapping[str, Any]) -> int:
    key = source_item_key(poll.source, POLL_SK)
    # The item may hold an older last_success that this update leaves in place: count it as the widest number.
    return item_size({**key, "last_success": number(MAX_FETCHED_AT_MS), **values})


def last_poll_from_item(item: Mapping[str, Any]) -> LastPoll:
    from cappi.domain.last_poll import LastPoll
    from cappi.domain.row_example import RowExample

    document = json.loads(item["poll"]["S"])
    return LastPoll(
        source=item["source"]["S"],
        status=item["status"]["S"],
        fetched_at_ms=int(item["fetched_at"]["N"]),
        duration_s=float(document["duration_s"]),
        error_code=document.get("error_code"),
        error=document.get("error"),
        http_status=document.get("http_status"),
        rows=int(document.get("rows", 0)),
        accepted=int(document.get("accepted", 0)),
        rejected={str(k): int(v) for k, v in document.get("rejected", {}).items()},
        examples={
            str(r): tuple(RowExample(int(i), str(v)) for i, v in kept)
            for r, kept in document.get("examples", {}).items()
        },
        warnings={str(k): int(v) for k, v in document.get("warnings", {}).items()},
        held_clubs=tuple(int(c) for c in document.get("held_clubs", ())),
        last_success_ms=int(item["last_success"]["N"]) if "last_success" in item else None,
    )
