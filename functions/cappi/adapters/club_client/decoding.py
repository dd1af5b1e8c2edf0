"""Undoing the Content-Encoding of a body without ever holding more than the cap, even for a gzip bomb."""

from __future__ import annotations

import zlib

from cappi.adapters.club_client.errors import AttemptFailure

# What every request asks for: a body can only be decoded in the codings listed here.
ACCEPT_ENCODING = "gzip, deflate"
_COMPRESSED = ("gzip", "x-gzip", "deflate")
_INFLATE_STEP = 256 * 1024  # most output one decompress call may produce, so a bomb never balloons at once


# Not urllib3's decoders: they are not public API, miss a stream that stops early and skip data after its end.
class BodyDecoder:
    """Undoes gzip/deflate incrementally, never holding more than `cap` decoded bytes."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _COMPRESSED):
            raise AttemptFailure("bad_encoding", f"unsupported Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else "identity"
        self._cap = cap
        # Pieces kept as they come and joined once: growing one bytearray copied a 56 MB body about eight times over
        # (its growth step is an eighth), which made receiving it cost three times its hash.
        self._pieces: list[bytes] = []
        self._size = 0
        # wbits=47 accepts both gzip and zlib framing, whichever the header says.
        self._inflater = zlib.decompressobj(wbits=47) if self._coding != "identity" else None
        # Some servers send raw deflate under "deflate"; that shows in the first two bytes, kept until then.
        self._head: bytearray | None = bytearray() if self._coding == "deflate" else None

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._add(data)
            return
        if self._head is not None:
            self._head += data
        try:
            self._inflate(data)
        except zlib.error:
            if self._head is None or self._size:
                raise AttemptFailure("bad_encoding", f"corrupt {self._coding} body") from None
            head, self._head = bytes(self._head), None
            self._inflater = zlib.decompressobj(wbits=-15)
            try:
                self._inflate(head)
            except zlib.error:
                raise AttemptFailure("bad_encoding", f"corrupt {self._coding} body") from None
        if self._head is not None and len(self._head) >= 2:
            self._head = None

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        pending = data
        while pending:
            if self._inflater.eof:
                if self._coding == "deflate":
                    raise zlib.error("data after the end of the deflate stream")
                # Concatenated gzip members are one valid gzip body.
                self._inflater = zlib.decompressobj(wbits=31)
            room = self._cap + 1 - self._size
            piece = self._inflater.decompress(pending, min(room, _INFLATE_STEP))
            self._add(piece, "decompressed body")
            pending = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail

    def _add(self, piece: bytes, what: str = "body") -> None:
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size > self._cap:
            raise AttemptFailure("too_large", f"{what} exceeds the cap of {self._cap} bytes")

    def finish(self) -> bytes:
        if self._inflater is not None and not self._inflater.eof:
            raise AttemptFailure("bad_encoding", f"{self._coding} body ends before the end of the compressed stream")
        body = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        self._pieces = []
        return body


def decode_start(data: bytes, content_encoding: str | None, cap: int) -> bytes | None:
    """Best effort for the first bytes of a body that may be cut anywhere (an error page): up to `cap`
    decoded bytes, or None when they do not inflate."""
    encoding = (content_encoding or "").strip().lower()
    if not data or encoding not in _COMPRESSED:
        return data
    try:
        return zlib.decompressobj(wbits=47).decompress(data, cap)
    except zlib.error:
        return None
