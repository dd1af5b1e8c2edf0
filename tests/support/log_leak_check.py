"""The session-wide secret-leak check: no registered test secret may reach a log, in any test, ever.

Per-test `assert SECRET not in caplog.text` checks only look where their author thought of looking. This plugin
watches every channel a log line can take during the whole run and fails the test during which a registered
secret (support.secrets_registry) showed up, naming the test, the secret's name and the channel, never the value:

- every logging record of every logger, after the emitting logger's filters ran (the club client's redaction is
  such a filter), so propagate=False loggers and records no handler prints are covered: message, args, extras;
- every line a logging handler formats (Powertools' JSON lines carry appended keys that no record holds);
- pytest's captured stdout, stderr and log sections of each phase (EMF blobs, print()s), line by line, where
  `INTENDED` lines (local mode's console banner) are allowed with their reason;
- local mode's log files (`<state dir>/logs/*.log`, where its handlers' JSON logs go) under a test's tmp_path
  once the test is torn down, and under the session's base temp directory at the end for any left.

Test source, assertion messages and tracebacks are not scanned: tests may name secrets to check their absence.
Leaks that no test can be blamed for (found at the end of the session) fail the session itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from support.secrets_registry import INTENDED, SECRETS, Intended

SESSION = "<session>"
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@dataclass(frozen=True)
class Finding:
    test: str  # node id, or SESSION
    secret: str  # its name in the registry, never its value
    channel: str  # where it was seen

    def __str__(self) -> str:
        return f"secret {self.secret!r} reached {self.channel} during {self.test}"


class LeakCheck:
    """The pytest plugin; `secrets` maps a name to its value, `intended` allows printed lines explicitly."""

    def __init__(self, secrets: Mapping[str, str] = SECRETS, intended: Iterable[Intended] = INTENDED) -> None:
        unknown = {i.secret for i in intended} - set(secrets)
        if unknown:
            raise ValueError(f"allowances name unregistered secrets: {sorted(unknown)}")
        # Each secret as sent and as URL-quoting renders it (a secret in a redirect's path is logged quoted).
        self._needles = [
            (name, form)
            for name, value in secrets.items()
            for form in dict.fromkeys((value, quote(value, safe=""), quote_plus(value)))
        ]
        self._intended = tuple(intended)
        self._lock = threading.Lock()
        self._current = SESSION
        self._findings: list[Finding] = []
        self._reported = 0  # findings up to here were turned into test failures already
        self._scanned_files: set[Path] = set()
        self._originals: tuple[Any, Any] | None = None

    # -- what is scanned -------------------------------------------------------------------------------------------

    def leaked(self, text: str) -> list[str]:
        """The names of the registered secrets `text` holds."""
        return list(dict.fromkeys(name for name, form in self._needles if form and form in text))

    def masked(self, text: str) -> str:
        """`text` with every registered secret replaced by its name."""
        for name, form in self._needles:
            if form:
                text = text.replace(form, f"[registered secret: {name}]")
        return text

    def _note(self, text: str, channel: str, *, allow_intended: bool = False) -> None:
        names = self.leaked(text)
        if not names:
            return
        if allow_intended:
            names = [n for n in names if not self._all_lines_intended(text, n)]
        with self._lock:
            for name in names:
                self._findings.append(Finding(self._current, name, channel))

    def _all_lines_intended(self, text: str, name: str) -> bool:
        allowed = [i.line for i in self._intended if i.secret == name]
        lines = [line for line in text.splitlines() if self.leaked(line).count(name)]
        return bool(allowed) and all(any(p.fullmatch(line) for p in allowed) for line in lines)

    def scan_record(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg} {record.args}"
        extras = " ".join(repr(v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES)
        self._note(f"{message} {extras}", f"a log record of logger {record.name!r}")

    def scan_formatted(self, handler: logging.Handler, line: str) -> None:
        self._note(line, f"a log line formatted by {type(handler).__name__}")

    def scan_log_files(self, root: Path) -> None:
        for path in sorted(root.glob("**/logs/*.log")):
            resolved = path.resolve()
            if resolved in self._scanned_files:
                continue
            self._scanned_files.add(resolved)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            self._note(text, f"local mode's log file {path.name} ({path.parent.parent.name})")

    # -- hooking into logging ----------------------------------------------------------------------------------------

    def install(self) -> None:
        """Wrap Logger.callHandlers (after the logger's filters) and Handler.format (what handlers write)."""
        if self._originals is not None:
            return
        call_handlers, fmt = logging.Logger.callHandlers, logging.Handler.format
        check = self

        def watched_call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            check.scan_record(record)
            call_handlers(logger, record)

        def watched_format(handler: logging.Handler, record: logging.LogRecord) -> str:
            line = fmt(handler, record)
            check.scan_formatted(handler, line)
            return line

        logging.Logger.callHandlers = watched_call_handlers  # type: ignore[method-assign]
        logging.Handler.format = watched_format  # type: ignore[method-assign]
        self._originals = (call_handlers, fmt)

    def uninstall(self) -> None:
        if self._originals is not None:
            logging.Logger.callHandlers, logging.Handler.format = self._originals  # type: ignore[method-assign]
            self._originals = None

    # -- pytest hooks ------------------------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.install()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        self._current = item.nodeid
        yield
        self._current = SESSION

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        for title, content in report.sections:
            if call.when in title:  # this phase's captured output; earlier phases were scanned with theirs
                self._note(content, f"pytest's {title!r}", allow_intended=True)
        # pytest prints these sections for a failed test (and with -rP): never with the secret in them.
        report.sections = [(title, self.masked(content)) for title, content in report.sections]
        if call.when == "teardown":
            tmp_path = (getattr(item, "funcargs", None) or {}).get("tmp_path")
            if isinstance(tmp_path, Path):
                self._note_files_as(item.nodeid, tmp_path)
        with self._lock:
            new = self._findings[self._reported :]
            self._reported = len(self._findings)
        if new and report.outcome != "failed":
            report.outcome = "failed"
            lines = dict.fromkeys(f"  {f}" for f in new)
            report.longrepr = "a registered test secret reached a log:\n" + "\n".join(lines)

    def _note_files_as(self, test: str, root: Path) -> None:
        previous, self._current = self._current, test
        try:
            self.scan_log_files(root)
        finally:
            self._current = previous

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        factory = getattr(
            session.config, "_tmp_path_factory", None
        )  # pytest's tmp_path_factory, set by its tmpdir plugin
        base = factory.getbasetemp() if factory is not None and factory._basetemp is not None else None
        if base is not None and Path(base).is_dir():
            self._note_files_as(SESSION, Path(base))
        self.uninstall()
        with self._lock:
            late = self._findings[self._reported :]
            self._reported = len(self._findings)
        if late:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._findings:
            return
        terminalreporter.section("registered test secrets in logs", red=True, bold=True)
        for line in dict.fromkeys(str(f) for f in self._findings):
            terminalreporter.line(line, red=True)

    @property
    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._findings)


def register(config: pytest.Config) -> LeakCheck:
    """Register the check with the registry's secrets (tests/conftest.py, and the check's own self-test)."""
    check = LeakCheck()
    config.pluginmanager.register(check, "cappi-secret-leak-check")
    return check
