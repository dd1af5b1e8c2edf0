"""Items <-> the domain's head and version types, in DynamoDB's low-level attribute-value format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cappi.adapters.dynamo.schema import HEAD_SK, PK, SK, TTL_ATTRIBUTE, item_key, manifest_sk, source_key
from cappi.domain.heads import Head, Pointer, VersionRef


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


def head_item(source: str, fetched_at_ms: int, clubs: Mapping[int, Pointer]) -> dict[str, dict[str, Any]]:
    # Deliberately no TTL attribute: the head must outlive every version it names.
    entries: dict[str, Any] = {}
    for club_id, pointer in sorted(clubs.items()):
        entry: dict[str, Any] = {"v": string(pointer.version), "h": string(pointer.content_hash)}
        entry |= {short: number(getattr(pointer, name)) for name, short in ENTRY_NUMBERS.items()}
        if pointer.held_fetched_at_ms is not None:
            entry["hh"] = string(pointer.held_hash or "")
            entry |= {short: number(getattr(pointer, name) or 0) for name, short in HELD.items()}
        entries[str(club_id)] = {"M": entry}
    return {
        PK: string(source_key(source)),
        SK: string(HEAD_SK),
        "source": string(source),
        "fetched_at": number(fetched_at_ms),
        "clubs": {"M": entries},
    }


def head_from_item(item: Mapping[str, Any]) -> Head:
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
