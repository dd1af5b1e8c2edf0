"""Standard output for a handler run outside Lambda (local mode's workers, `cappi poll` against local mode): its
JSON logs and EMF lines appended to a log file as CloudWatch would receive them, and, as there, a log line that
cannot be written never fails the function."""

from __future__ import annotations

import errno
import io
import os


class LogFile(io.TextIOBase):
    """A worker's standard output: text appended to the log file a whole line per write (the workers share the
    file). Text the file refuses (ENOSPC with the disk full, EIO, EDQUOT) is dropped and counted, never raised, so a
    failing log write can neither fail the invocation (an EMF `print`) nor make `logging` print a traceback per
    record."""

    encoding = "utf-8"

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._pending = ""
        self._lost = 0
        self._error: str | None = None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            self.flush()
            os.close(self._fd)
        super().close()

    def write(self, text: str) -> int:
        self._pending += text
        end = self._pending.rfind("\n") + 1
        if end:
            lines, self._pending = self._pending[:end], self._pending[end:]
            self._write(lines)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = self._pending, ""
            self._write(text)

    def _write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            self._lost += text.count("\n") or 1
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            self._error = f"{exc.strerror or exc} ({name})"

    def take_losses(self) -> tuple[int, str] | None:
        """(lines lost, the last error) since the last call, or None when every line was written."""
        if not self._lost:
            return None
        lost, self._lost = self._lost, 0
        return lost, self._error or "unknown error"
