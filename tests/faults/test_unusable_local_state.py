"""A kept snapshot table that parses but holds items the table refuses (local/state.py `KeptTable.restore`).

An older key layout, a non-numeric or malformed `expires_at`, a missing or mistyped key attribute: local mode must
not exit with a traceback on every start. The whole file is set aside next to itself (`snapshots.json.unreadable`)
with one warning line naming it and why, and the table starts clean, with nothing half restored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.aws import SNAPSHOT_TABLE

from local.state import TABLE_FILE, TABLE_FORMAT, KeptTable

FILLER = [{"pk": {"S": "SOURCE#filler"}, "sk": {"S": f"F#{i:03d}"}} for i in range(30)]  # > one batch of 25
HEAD = {"pk": {"S": "SOURCE#alpha"}, "sk": {"S": "HEAD"}, "clubs": {"M": {}}}


def bad_item(case: str) -> dict[str, Any]:
    items: dict[str, Callable[[], dict[str, Any]]] = {
        "older key layout": lambda: {"PK": {"S": "SOURCE#alpha"}, "SK": {"S": "HEAD"}},
        "non-numeric expires_at": lambda: {**HEAD, "sk": {"S": "V#1"}, "expires_at": {"N": "soon"}},
        "expires_at not an attribute value": lambda: {**HEAD, "sk": {"S": "V#2"}, "expires_at": 1893456000},
        "expires_at of another type": lambda: {**HEAD, "sk": {"S": "V#3"}, "expires_at": {"S": "1893456000"}},
        "missing key attribute": lambda: {"pk": {"S": "SOURCE#alpha"}, "clubs": {"M": {}}},
        "key attribute of another type": lambda: {"pk": {"N": "7"}, "sk": {"S": "HEAD"}},
        "not an item": lambda: ["pk", "sk"],  # type: ignore[dict-item]
        "an attribute value botocore refuses": lambda: {**HEAD, "sk": {"S": "V#4"}, "clubs": {"Q": 1}},
    }
    return items[case]()


CASES = [
    "older key layout",
    "non-numeric expires_at",
    "expires_at not an attribute value",
    "expires_at of another type",
    "missing key attribute",
    "key attribute of another type",
    "not an item",
    "an attribute value botocore refuses",
]


@pytest.mark.parametrize("case", CASES)
def test_an_item_the_table_refuses_sets_the_file_aside_and_starts_clean(
    dynamodb: Any, tmp_path: Path, case: str
) -> None:
    content = json.dumps({"format": TABLE_FORMAT, "items": [HEAD, *FILLER, bad_item(case)]})
    path = tmp_path / TABLE_FILE
    path.write_text(content)
    warnings: list[str] = []

    assert KeptTable(dynamodb, SNAPSHOT_TABLE, tmp_path, warnings.append).restore() == 0

    assert len(warnings) == 1, warnings
    assert str(path) in warnings[0] and "set aside" in warnings[0] and "\n" not in warnings[0]
    assert not path.exists()
    assert (tmp_path / (TABLE_FILE + ".unreadable")).read_text() == content
    assert dynamodb.scan(TableName=SNAPSHOT_TABLE, ConsistentRead=True)["Items"] == [], "nothing half restored"


def test_a_usable_file_is_restored_whole(dynamodb: Any, tmp_path: Path) -> None:
    (tmp_path / TABLE_FILE).write_text(json.dumps({"format": TABLE_FORMAT, "items": [HEAD, *FILLER]}))
    warnings: list[str] = []
    assert KeptTable(dynamodb, SNAPSHOT_TABLE, tmp_path, warnings.append).restore() == 1 + len(FILLER)
    assert warnings == []
    assert (tmp_path / TABLE_FILE).exists()
