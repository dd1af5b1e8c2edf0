"""What local mode keeps across restarts, under CAPPI_STATE_DIR: the issuer's signing key and the snapshot table.

- `issuer-key.pem`: the local token issuer's RSA key (owner-only), so a token obtained before a restart still
  verifies after it (same `kid`), as long as the issuer URL (the port) stays the same.
- `snapshots.json`: every item of the local snapshot table (heads, versions, last polls), saved after each poll
  and at shutdown, and put back before the first poll of the next start, so queries answer 200 from the kept
  snapshots at once instead of 503 until the clubs have been polled again. Items whose TTL has passed are
  dropped, as DynamoDB's TTL would drop them. A publish (a write naming a head) is saved before any reader can
  see it: `DurableHeads` holds the table's requests while the write and the save run, so a crash at any moment
  never serves an older list after the restart than readers were served before it.

`--fresh` (or CAPPI_FRESH=1) discards both before starting. A file that cannot be read, or a table file holding
an item the table refuses (an older key layout, a malformed `expires_at`, a missing key), is set aside whole with
one warning and local mode starts clean: the state is a convenience, never a reason not to start.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cappi.adapters.dynamo.schema import HEAD_SK, INDEX_PK, PK, SK, TTL_ATTRIBUTE

KEY_FILE = "issuer-key.pem"
TABLE_FILE = "snapshots.json"
TABLE_FORMAT = 1
BATCH = 25  # BatchWriteItem's limit
KEPT_HEADER = "X-Cappi-Kept"  # on the kept table's own requests, which pass `DurableHeads` without waiting
REFUSALS = frozenset({"ValidationException", "SerializationException"})  # the table refusing what it is given
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def discard(state_dir: Path) -> list[Path]:
    """Remove the kept state (`--fresh`); returns what was removed."""
    removed = []
    for name in (KEY_FILE, TABLE_FILE):
        path = state_dir / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, readable by the owner only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # ... and so is the rename
    finally:
        os.close(directory)


def _set_aside(path: Path, warn: Callable[[str], None], why: str) -> None:
    aside = path.with_name(path.name + ".unreadable")
    os.replace(path, aside)
    warn(f"{path} {why}: set aside as {aside.name}, starting without it")


class KeyFileError(Exception):
    """The kept signing key is not this user's to use: local mode stops with this one-line message (exit 2)."""


MAX_KEY_FILE = 64 * 1024  # a 4096-bit PEM key is about 3.3 KB


def signing_key(state_dir: Path, warn: Callable[[str], None]) -> tuple[rsa.RSAPrivateKey, bool]:
    """The issuer's key kept in `state_dir`, or a new one saved there; True when an existing key was reused.

    A kept key readable by group or others is made owner-only (0600) with a warning before it is used (the file
    is local mode's own: it made it so); one owned by another user raises `KeyFileError`. The file is opened once,
    without following a symlink, and checked and fixed through that descriptor. A new key is written owner-only
    from the first byte (`write_private`)."""
    path = state_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        fd = -1
    except OSError as exc:  # a symlink (ELOOP), no permission...
        _set_aside(path, warn, f"is not a readable private key ({type(exc).__name__})")
        fd = -1
    if fd >= 0:
        with os.fdopen(fd, "rb") as kept:
            key = _kept_key(path, kept, warn)
        if key is not None:
            return key, True
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(path, pem)
    return key, False


def _kept_key(path: Path, kept: Any, warn: Callable[[str], None]) -> rsa.RSAPrivateKey | None:
    """The RSA key in the open file `kept`, made owner-only if it was not; None when it was set aside."""
    info = os.fstat(kept.fileno())
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise KeyFileError(
            f"{path} belongs to another user (uid {info.st_uid}): local mode will not sign tokens with it; "
            "remove it, or start with --fresh"
        )
    if not stat.S_ISREG(info.st_mode):
        _set_aside(path, warn, "is not a regular file")
        return None
    try:
        key = serialization.load_pem_private_key(kept.read(MAX_KEY_FILE + 1), password=None)
    except (OSError, ValueError, TypeError) as exc:
        _set_aside(path, warn, f"is not a readable private key ({type(exc).__name__})")
        return None
    if not (isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048):
        _set_aside(path, warn, "is not an RSA key of 2048 bits or more")
        return None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.fchmod(kept.fileno(), 0o600)
        warn(
            f"{path} was readable by others (mode {mode:04o}): made owner-only (chmod 600); "
            "start with --fresh for a new key if anyone else could have read it"
        )
    return key


def _encode(value: Any) -> Any:
    """DynamoDB JSON as boto3's low-level client returns it, with binary values as base64 text."""
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class Unusable(Exception):
    """A kept item the table refuses, or that this version's table never holds (why, in one line)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usable(item: Any) -> dict[str, Any]:
    """`item` if it can be put back as saved; the table checks the keys, this the rest of what it lets through."""
    if not isinstance(item, dict):
        raise Unusable(f"an item that is a {type(item).__name__}, not a map of attributes")
    if TTL_ATTRIBUTE in item:
        ttl = item[TTL_ATTRIBUTE]
        if not isinstance(ttl, dict) or set(ttl) != {"N"} or not isinstance(ttl["N"], str):
            raise Unusable(f"{TTL_ATTRIBUTE} is not a number attribute: {_one_line(repr(ttl))[:80]}")
        try:
            if not math.isfinite(float(ttl["N"])):
                raise ValueError
        except ValueError:
            raise Unusable(f"{TTL_ATTRIBUTE} is not a number: {ttl['N'][:40]!r}") from None
    return item


def _expired(item: dict[str, Any], now_s: float) -> bool:
    ttl = item.get(TTL_ATTRIBUTE, {}).get("N")
    return ttl is not None and float(ttl) < now_s


def kept_client(client: Any) -> Any:
    """`client` (boto3 DynamoDB) with KEPT_HEADER on every request: the kept table's own requests pass
    `DurableHeads` at once (a held publish waits for them)."""

    def mark(request: Any, **_: Any) -> None:
        request.headers[KEPT_HEADER] = "1"

    client.meta.events.register("before-sign.dynamodb", mark)
    return client


class KeptTable:
    """The local snapshot table, kept in `<state>/snapshots.json` between starts.

    `save_soon()` (after every poll) wakes one background thread that saves the table; saves never overlap and a
    burst of polls costs one save. `save_now()` saves before it returns (`DurableHeads` calls it on a publish).
    `close()` makes the last save, after the last poll has ended.
    """

    def __init__(
        self,
        client: Any,
        table: str,
        state_dir: Path,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self.path = state_dir / TABLE_FILE
        self._warn = warn
        self._clock = clock
        self._wake = threading.Event()
        self._closing = False
        self._lock = threading.Lock()  # one save at a time
        self._thread = threading.Thread(target=self._run, name="kept-table", daemon=True)

    def restore(self) -> int:
        """Put the kept items back into the (new, empty) table; returns how many. Call before the first poll."""
        if not self.path.exists():
            return 0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if (
                not isinstance(data, dict)
                or data.get("format") != TABLE_FORMAT
                or not isinstance(data.get("items"), list)
            ):
                raise ValueError("not a snapshot table file of this version")
            items = [_decode(item) for item in data["items"]]
        except (OSError, ValueError) as exc:
            _set_aside(self.path, self._warn, f"could not be read ({exc})")
            return 0
        now = self._clock()
        try:
            live = [item for item in items if not _expired(_usable(item), now)]
            self._put_all(live)
        except Unusable as exc:
            # All or nothing: a head kept without the version it names would answer worse than no head at all.
            _set_aside(self.path, self._warn, f"holds an item the table refuses ({exc})")
            return 0
        return len(live)

    def _put_all(self, items: list[dict[str, Any]]) -> None:
        """Put `items` into the (new, empty) table; on a refused item, empty it again and raise Unusable."""
        from botocore.exceptions import ClientError, ParamValidationError

        try:
            for start in range(0, len(items), BATCH):
                requests = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]
                self._write_all(requests)
        except ParamValidationError as exc:
            self._empty()
            raise Unusable(_one_line(f"ParamValidationError: {exc}")) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") not in REFUSALS:
                raise  # not the file's fault (the table is missing, moto is down): nothing to set aside
            self._empty()
            raise Unusable(_one_line(f"{error.get('Code')}: {error.get('Message', '')}")) from exc

    def _write_all(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: requests}
        while pending:
            pending = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def _empty(self) -> None:
        """Take back whatever a refused restore put (a batch may be half written before its bad item)."""
        for page in self._client.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            ProjectionExpression="#pk, #sk",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
        ):
            keys = page.get("Items", [])
            for start in range(0, len(keys), BATCH):
                self._write_all([{"DeleteRequest": {"Key": key}} for key in keys[start : start + BATCH]])

    def save(self) -> int:
        """Write every live item of the table to the file (atomically); returns how many."""
        with self._lock:
            items: list[dict[str, Any]] = []
            now = self._clock()
            for page in self._client.get_paginator("scan").paginate(TableName=self._table, ConsistentRead=True):
                items.extend(item for item in page.get("Items", []) if not _expired(item, now))
            document = {"format": TABLE_FORMAT, "table": self._table, "saved_at": int(now), "items": _encode(items)}
            write_private(self.path, json.dumps(document, separators=(",", ":")).encode())
            return len(items)

    def start(self) -> None:
        self._thread.start()

    def save_soon(self) -> None:
        self._wake.set()

    def save_now(self) -> None:
        """Save before returning (a publish, held by `DurableHeads`); a failure is a warning, as in the background."""
        self._save_or_warn()

    def close(self) -> None:
        """Stop the background saver and save one last time (call after the last poll has ended)."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._save_or_warn()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closing:
                return
            self._wake.clear()
            self._save_or_warn()

    def _save_or_warn(self) -> None:
        try:
            self.save()
        except Exception as exc:  # a failed save must never stop local mode; the next poll tries again
            self._warn(f"could not save the snapshot table to {self.path} ({type(exc).__name__}: {exc})")


def _names_a_head(value: Any) -> bool:
    """Whether a DynamoDB request body names an item readers learn versions from anywhere: a head (`sk` = HEAD) or
    an item of the readers' index (`pk` = INDEX), which warm readers follow instead of heads: a publish."""
    if isinstance(value, dict):
        if value.get(SK) == {"S": HEAD_SK} or value.get(PK) == {"S": INDEX_PK}:
            return True
        return any(_names_a_head(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_a_head(v) for v in value)
    return False


class DurableHeads:
    """WSGI middleware in front of moto's server: a publish is on disk before any reader can see it.

    The ingest workers write to moto and the query reads moto directly, so the moment a head moves is the moment
    readers may be served the new list; saving after the poll's result comes back leaves a window in which a crash
    loses a list readers already had. Here every DynamoDB request waits its turn on one lock, and a successful write
    naming a head or an index item is followed by `save()` before the lock is released: no read can see a head or
    index entry the kept file does not hold. The kept table's own requests (the save's scan, the restore) carry
    KEPT_HEADER and pass without waiting. Other services (SSM, IAM, STS, Lambda) are not held.
    """

    def __init__(self, app: Any, save: Callable[[], None]) -> None:
        self._app = app
        self._save = save
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        header = "HTTP_" + KEPT_HEADER.upper().replace("-", "_")
        if not target.startswith("DynamoDB_") or environ.get(header):
            return self._app(environ, start_response)
        publishes = False
        if target.rpartition(".")[2] in DYNAMODB_WRITES:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                publishes = _names_a_head(json.loads(body))
            except ValueError:
                publishes = False  # moto answers it as DynamoDB would; nothing can have been written
        status: list[str] = []

        def recording(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        with self._lock:
            response = self._app(environ, recording)
            try:
                chunks = list(response)
            finally:
                if hasattr(response, "close"):
                    response.close()
            if publishes and status and status[-1].startswith("200"):
                self._save()
        return chunks
