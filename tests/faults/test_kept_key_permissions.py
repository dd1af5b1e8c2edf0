"""The local issuer's kept signing key (`issuer-key.pem` in CAPPI_STATE_DIR) and who can read it: a key readable
by group or others is made owner-only with a one-line warning before it signs anything, a key owned by another
user stops local mode, and a new key is never readable by others, not even for a moment."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import local.state
from local.state import KEY_FILE, signing_key

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def no_umask() -> Iterator[None]:
    """As a shell with `umask 0` would start local mode: nothing masks a careless mode."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o666, 0o660, 0o601], ids=lambda m: f"{m:04o}")
def test_a_key_readable_by_others_is_made_owner_only_with_a_warning(tmp_path: Path, mode: int) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(PEM)
    path.chmod(mode)
    warnings: list[str] = []
    key, reused = signing_key(tmp_path, warnings.append)
    assert reused
    assert key.private_numbers() == KEY.private_numbers()
    assert mode_of(path) == 0o600
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert str(path) in warnings[0]
    assert "chmod 600" in warnings[0]
    assert f"{mode:04o}" in warnings[0]


def test_an_owner_only_key_is_used_without_a_word(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(PEM)
    path.chmod(0o600)
    warnings: list[str] = []
    assert signing_key(tmp_path, warnings.append)[1]
    assert (warnings, mode_of(path)) == ([], 0o600)


def test_a_key_owned_by_another_user_stops_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(PEM)
    path.chmod(0o600)
    owner = os.stat(path).st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as if the file had been planted by another user
    with pytest.raises(local.state.KeyFileError) as refused:
        signing_key(tmp_path, print)
    assert "\n" not in str(refused.value)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == PEM  # left as it was, for its owner to look at


def test_a_symlinked_key_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_bytes(PEM)
    elsewhere.chmod(0o644)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / KEY_FILE).symlink_to(elsewhere)
    warnings: list[str] = []
    key, reused = signing_key(tmp_path / "state", warnings.append)
    assert not reused
    assert key.private_numbers() != KEY.private_numbers()
    assert mode_of(elsewhere) == 0o644  # not touched through the link
    assert mode_of(tmp_path / "state" / KEY_FILE) == 0o600
    assert "set aside" in warnings[0]


def test_a_new_key_is_owner_only_from_its_first_byte(
    tmp_path: Path, no_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    replace = os.replace

    def watching(source: str | Path, target: str | Path) -> None:
        seen.append(mode_of(Path(source)))  # the file as it was written, just before it takes the key's name
        replace(source, target)

    monkeypatch.setattr(local.state.os, "replace", watching)
    _key, reused = signing_key(tmp_path, print)
    assert not reused
    assert seen == [0o600]
    assert mode_of(tmp_path / KEY_FILE) == 0o600
