"""The snapshot table's schema: key names, the key of each item, and `create_table` for tests and local mode
(the CDK stack in infra/storage.py defines the same table).

One table, keys `pk`/`sk`:

    SOURCE#<name>  HEAD                                    head: per club ID of the source, the version readers see
    SOURCE#<name>  POLL                                    the source's last poll: outcome, why, last success
    CLUB#212       V#<version>                             manifest: metadata and part sizes, written last
    CLUB#212       V#<version>#S#<shard:04d>#P#<part:03d>  one part of one shard's compressed bytes
    CLUB#212       V#<version>#D                           delta: what changed from the version it replaced
    INDEX          I#<slot:02d>                            readers' index: current pointers of the sources in a slot

The index (`cappi.adapters.dynamo.reader_index`) is a fixed number of items, so a reader refreshes every source with
one BatchGetItem whatever the registry's size; heads stay the writers' authority.

`version` starts with the zero-padded fetch time, so sort keys order versions by fetch time; the head has no TTL
attribute, so it outlives every version it names.
"""

from __future__ import annotations

import zlib
from typing import Any

from botocore.exceptions import ClientError

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "expires_at"
HEAD_SK = "HEAD"
POLL_SK = "POLL"
MAX_SHARDS = 9_999  # the sort key holds four digits of shard number
MAX_PARTS = 999  # ... and three of part number
INDEX_PK = "INDEX"
# Fixed: readers and writers must agree on a source's slot. A read costs every item's size rounded up to 4 KB, so
# 16 items of ~3.5 KB at 1,000 sources (entries of ~55 bytes) cost 8 read units where 32 of ~1.7 KB cost 16.
INDEX_SLOTS = 16
VERSION_HASH_CHARS = 12  # of a content hash, in a version's name
MAX_FETCHED_AT_MS = 10**13 - 1  # thirteen digits in the version name (until the year 2286)

DynamoClient = Any  # botocore builds the client class at runtime; there is no importable type without stubs


def source_key(source: str) -> str:
    return f"SOURCE#{source}"


def club_key(club_id: int) -> str:
    if not 0 <= club_id <= 999:
        raise ValueError(f"club id out of range: {club_id}")
    return f"CLUB#{club_id:03d}"


def version_name(fetched_at_ms: int, content_hash: str) -> str:
    """Sortable by fetch time; the hash prefix keeps two polls in the same millisecond apart."""
    if not 0 <= fetched_at_ms <= MAX_FETCHED_AT_MS:
        raise ValueError(f"fetch time out of range: {fetched_at_ms}")
    return f"{fetched_at_ms:013d}-{content_hash[:VERSION_HASH_CHARS]}"


def manifest_sk(version: str) -> str:
    return f"V#{version}"


def is_manifest_sk(sk: str) -> bool:
    return sk.startswith("V#") and "#" not in sk[2:]


def delta_sk(version: str) -> str:
    """The delta item written beside `version`: how it differs from the version it replaced."""
    return f"V#{version}#D"


def index_slot(source: str) -> int:
    """Which index item holds a source's entry: a stable hash of its name."""
    return zlib.crc32(source.encode()) % INDEX_SLOTS


def index_item_key(slot: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": INDEX_PK}, SK: {"S": f"I#{slot:02d}"}}


def shard_prefix(version: str, shard: int) -> str:
    return f"V#{version}#S#{shard:04d}#"


def part_sk(version: str, shard: int, part: int) -> str:
    return f"{shard_prefix(version, shard)}P#{part:03d}"


def source_item_key(source: str, sk: str) -> dict[str, dict[str, str]]:
    """The key of one of a source's items (its head or its last poll)."""
    return {PK: {"S": source_key(source)}, SK: {"S": sk}}


def item_key(club_id: int, sk: str) -> dict[str, dict[str, str]]:
    return {PK: {"S": club_key(club_id)}, SK: {"S": sk}}


def create_table(client: DynamoClient, table_name: str) -> None:
    """Create the snapshot table (on-demand, TTL on `expires_at`) and wait until it is active. Idempotent."""
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": PK, "AttributeType": "S"},
                {"AttributeName": SK, "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    ttl = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
    # Enabling twice is an error on AWS, and TTL can only be changed once per hour, so look first.
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
