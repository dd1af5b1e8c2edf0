"""What local mode keeps across restarts (local/state.py): the signing key and the snapshot table."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from support.aws import SNAPSHOT_TABLE
from support.stores import Stores, stores

from cappi.domain.publish import publish_source
from cappi.domain.snapshot import build_club_snapshot
from local.state import KEY_FILE, TABLE_FILE, KeptTable, discard, signing_key

FETCHED_AT_MS = int(time.time() * 1000)  # versions expire a while after their fetch: fetched now


def owner_only(path: Path) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_signing_key_is_kept_owner_only_and_reused(tmp_path: Path) -> None:
    warnings: list[str] = []
    key, reused = signing_key(tmp_path, warnings.append)
    assert not reused
    assert owner_only(tmp_path / KEY_FILE)
    again, reused = signing_key(tmp_path, warnings.append)
    assert reused
    assert again.private_numbers() == key.private_numbers()
    assert warnings == []


def test_an_unreadable_key_is_set_aside_and_replaced(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key")
    warnings: list[str] = []
    _key, reused = signing_key(tmp_path, warnings.append)
    assert not reused
    assert (tmp_path / (KEY_FILE + ".unreadable")).read_text() == "not a key"
    assert "set aside" in warnings[0]


def published(client: Any) -> Stores:
    store = stores(client, SNAPSHOT_TABLE)
    publish_source(
        store.writer, "alpha", [build_club_snapshot(212, {"AB12": [8679, "8655R"], "CD34": [1]})], FETCHED_AT_MS
    )
    return store


def test_the_table_round_trips_binary_shards_and_all(dynamodb: Any, tmp_path: Path) -> None:
    store = published(dynamodb)
    before = dynamodb.scan(TableName=SNAPSHOT_TABLE, ConsistentRead=True)["Items"]
    kept = KeptTable(dynamodb, SNAPSHOT_TABLE, tmp_path, print)
    assert kept.save() == len(before) > 2
    assert owner_only(tmp_path / TABLE_FILE)

    for item in before:
        dynamodb.delete_item(TableName=SNAPSHOT_TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    assert store.snapshots.head("alpha") is None
    assert kept.restore() == len(before)
    after = dynamodb.scan(TableName=SNAPSHOT_TABLE, ConsistentRead=True)["Items"]
    key = lambda item: (item["pk"]["S"], item["sk"]["S"])  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)
    head = store.snapshots.head("alpha")
    assert head is not None
    pointer = head.clubs[212]
    assert store.snapshots.read_shard(212, pointer.version, 0)["AB12"] == ("8655R", "8679")


def test_items_past_their_ttl_are_not_kept(dynamodb: Any, tmp_path: Path) -> None:
    published(dynamodb)
    items = dynamodb.scan(TableName=SNAPSHOT_TABLE, ConsistentRead=True)["Items"]
    with_ttl = [i for i in items if "expires_at" in i]
    assert with_ttl, "versions carry a TTL"
    latest = max(int(i["expires_at"]["N"]) for i in with_ttl)
    kept = KeptTable(dynamodb, SNAPSHOT_TABLE, tmp_path, print, clock=lambda: latest + 1)
    assert kept.save() == len(items) - len(with_ttl)  # heads and last polls have no TTL and are kept


def test_an_unreadable_table_file_is_set_aside_and_local_mode_starts_clean(dynamodb: Any, tmp_path: Path) -> None:
    for content in ("{not json", json.dumps({"format": 99, "items": []}), json.dumps([1, 2])):
        (tmp_path / TABLE_FILE).write_text(content)
        warnings: list[str] = []
        assert KeptTable(dynamodb, SNAPSHOT_TABLE, tmp_path, warnings.append).restore() == 0
        assert (tmp_path / (TABLE_FILE + ".unreadable")).read_text() == content
        assert "set aside" in warnings[0]
        assert not (tmp_path / TABLE_FILE).exists()


def test_a_failed_save_warns_and_keeps_the_last_good_file(tmp_path: Path) -> None:
    class Broken:
        def get_paginator(self, _name: str) -> Any:
            raise ConnectionError("moto went away")

    (tmp_path / TABLE_FILE).write_text("previous")
    warnings: list[str] = []
    KeptTable(Broken(), SNAPSHOT_TABLE, tmp_path, warnings.append).close()
    assert "moto went away" in warnings[0]
    assert (tmp_path / TABLE_FILE).read_text() == "previous"


def test_fresh_discards_the_key_and_the_table(tmp_path: Path) -> None:
    signing_key(tmp_path, print)
    (tmp_path / TABLE_FILE).write_text("{}")
    (tmp_path / "demo-clubs.json").write_text("{}")
    assert sorted(p.name for p in discard(tmp_path)) == sorted([KEY_FILE, TABLE_FILE])
    assert [p.name for p in tmp_path.iterdir()] == ["demo-clubs.json"]
