"""Tokens whose structure and signature checked out, kept by their exact text until the key set they were checked
against is replaced, so a client's later requests skip the RSA check."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jwt import PyJWK

# Tokens whose signature checked out, kept so a client's next requests skip the RSA check (most of a warm
# authorization's time): a few thousand clients' current tokens, a few MB at most.
DEFAULT_VERIFIED_TOKENS: Final = 4096


@dataclass(slots=True)
class Verified:
    """What checking a token's structure and signature established, which only the token's text and the key decide:
    its payload and scopes, and once it was first allowed, its claims as the Lambda gets them. The checks that
    depend on the time or the configuration are made on every request, from `payload`."""

    kid: str
    key: PyJWK
    payload: Mapping[str, Any]
    scopes: list[str]
    claims: dict[str, str] | None = None  # set by the first decision that allows the token


class VerifiedTokens:
    """Tokens whose signature checked out, by their exact text (a changed byte is another key, so a tampered token
    is never served from here), least recently used dropped past `size`; all of them are dropped as soon as the
    key set they were checked against is replaced (a refetch, a rotation). Only successes are kept: a refused
    token is checked again each time. Shared by the gateway's threads, hence the lock (held for dict operations)."""

    def __init__(self, size: int = DEFAULT_VERIFIED_TOKENS) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._entries: OrderedDict[str, Verified] = OrderedDict()
        self._key_set: Mapping[str, PyJWK] | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, key_set: Mapping[str, PyJWK]) -> Verified | None:
        with self._lock:
            self._retain(key_set)
            verified = self._entries.get(token)
            if verified is None:
                self.misses += 1
                return None
            self._entries.move_to_end(token)
            self.hits += 1
            return verified

    def put(self, token: str, key_set: Mapping[str, PyJWK], verified: Verified) -> None:
        with self._lock:
            self._retain(key_set)
            self._entries[token] = verified
            self._entries.move_to_end(token)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def retain(self, key_set: Mapping[str, PyJWK]) -> None:
        """Drop every entry unless `key_set` is the one they were checked against."""
        with self._lock:
            self._retain(key_set)

    def _retain(self, key_set: Mapping[str, PyJWK]) -> None:
        if key_set is not self._key_set:
            self._entries.clear()
            self._key_set = key_set
