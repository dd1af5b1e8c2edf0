"""The state disk full under local mode: the ingest handler's log lines (Powertools' JSON logs, EMF `print`s) cannot
be written, while the poll itself publishes. The poll is reported by what it did to the data (published), the
console gets exactly one warning line for the lost log lines, and no "--- Logging error ---" traceback is printed
per record.

The handler here is this module's `handler`, run in local mode's worker pool (spawned with this process's
`sys.path`): it logs through CAPPI's own Powertools logger and prints an EMF line, as the ingest handler does."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cappi.log_file import LogFile
from local.console import describe_poll
from local.lambda_pool import LocalAsyncInvoker

HANDLER = f"{__name__}.handler"
RECORDS = 33


def handler(payload: dict[str, Any], _context: Any) -> dict[str, Any]:
    from cappi.observability import logger

    for n in range(RECORDS):
        logger.info("row batch parsed", extra={"batch": n})
    print('{"_aws":{"CloudWatchMetrics":[]},"PollSucceeded":1}')  # an EMF line, as `emit` prints it
    clubs = [{"club_id": 212, "outcome": "published", "calls": 3, "techs": 2, "previous_calls": None}]
    return {"source": payload["source"], "status": "ok", "clubs": clubs, "fetch_seconds": 0.1, "parse_seconds": 0.1}


class Results:
    def __init__(self) -> None:
        self.done: list[tuple[dict[str, Any], dict[str, Any] | None, BaseException | None]] = []
        self.warnings: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> None:
        with self.changed:
            self.done.append((payload, result, error))
            self.changed.notify_all()

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def polls_with_the_log_at(log_path: str, capfd: pytest.CaptureFixture[str]) -> tuple[Results, str]:
    """Three polls through the worker pool with its log at `log_path`; what was reported, and the workers' stderr."""
    results = Results()
    invoker = LocalAsyncInvoker(
        HANDLER,
        workers=1,
        environment={"POWERTOOLS_METRICS_NAMESPACE": "CappiTest"},
        log_path=log_path,
        on_result=results,
        on_warning=results.warn,
        max_concurrency=1,
    )
    try:
        for n in range(3):
            invoker.invoke_async({"source": f"aaa{n}"})
        with results.changed:
            assert results.changed.wait_for(lambda: len(results.done) == 3, timeout=60)
    finally:
        invoker.close()
    return results, capfd.readouterr().err


def assert_polls_published_and_one_warning(results: Results, stderr: str) -> None:
    for payload, result, error in results.done:
        line = describe_poll(payload, result, error)
        assert line.startswith(f"ingest {payload['source']}: club 212 published (3 calls, 2 techs)"), line
        assert "FAILED" not in line
    assert "--- Logging error ---" not in stderr
    assert "Traceback" not in stderr, stderr
    assert len(results.warnings) == 1, results.warnings
    assert "No space left on device (ENOSPC)" in results.warnings[0]
    assert "\n" not in results.warnings[0]


def test_a_log_file_that_refuses_every_write_loses_lines_not_polls(capfd: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full (every write ENOSPC) on this system")
    results, stderr = polls_with_the_log_at("/dev/full", capfd)
    assert_polls_published_and_one_warning(results, stderr)


def test_the_log_file_object_counts_refused_lines_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = LogFile(str(tmp_path / "ingest.log"))
    print("written", file=log)

    def refuse(_fd: int, _data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(os, "write", refuse)
        print("lost one", file=log)
        log.write("lost two\npartial")
        log.flush()
    assert log.take_losses() == (3, "No space left on device (ENOSPC)")
    assert log.take_losses() is None
    print("written again", file=log)
    assert (tmp_path / "ingest.log").read_text() == "written\nwritten again\n"


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KB tmpfs, filled to the last byte (root only; skipped where a tmpfs cannot be mounted)."""
    mount = tmp_path / "state"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            check=False,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill ({exc}); the /dev/full test covers the same path")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.decode(errors='replace').strip()}")
    try:
        (mount / "logs").mkdir()
        (mount / "logs" / "ingest.log").write_text("")
        with open(mount / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=10)


def test_polls_with_the_state_disk_full(full_disk: Path, capfd: pytest.CaptureFixture[str]) -> None:
    results, stderr = polls_with_the_log_at(str(full_disk / "logs" / "ingest.log"), capfd)
    assert_polls_published_and_one_warning(results, stderr)


def test_cappi_poll_in_local_mode_with_its_log_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cappi poll SOURCE` against local mode runs the handler in-process with its stdout on local mode's log."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full (every write ENOSPC) on this system")
    import logging
    import sys

    from cappi.handlers import ingest
    from cli.operations import _poll_in_process

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "ingest.log").symlink_to("/dev/full")
    monkeypatch.setenv("CAPPI_STATE_DIR", str(tmp_path))  # restored afterwards, though the poll sets it again

    def logging_handler(payload: dict[str, Any], context: Any) -> dict[str, Any]:
        records = logging.getLogger("cappi-test-disk-full")
        records.addHandler(logging.StreamHandler(sys.stdout))  # as Powertools' handler, on the redirected stdout
        records.propagate = False
        return handler(payload, context) | {"logged": [records.warning("line %d", n) for n in range(RECORDS)] and 1}

    monkeypatch.setattr(ingest, "make_handler", lambda: logging_handler)
    try:
        summary = _poll_in_process({"CAPPI_STATE_DIR": str(tmp_path)}, {"source": "aaa"})
    finally:
        (tmp_path / "logs" / "ingest.log").unlink()  # /dev/full reads as endless zeros: no scan of it afterwards
    assert summary["status"] == "ok" and summary["clubs"][0]["outcome"] == "published"
    err = capsys.readouterr().err
    assert "--- Logging error ---" not in err and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if line.startswith("cappi: warning:")]
    assert len(warnings) == 1 and "No space left on device (ENOSPC)" in warnings[0], err
