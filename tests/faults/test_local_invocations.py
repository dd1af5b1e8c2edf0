"""Local mode's async invoke of the ingest function, as Lambda runs it: each invocation on its own, so a hung club's
poll never holds up another club's; the function's timeout enforced by ending the environment; an environment
killed mid-poll reported as that poll's failure only, and the next poll of that source served again.

The handler here is this module's `handler` (the workers are spawned with this process's `sys.path`, so they import
it as the test runner did): what it does is said by the payload."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.console import describe_poll
from local.lambda_pool import LocalAsyncInvoker

HANDLER = f"{__name__}.handler"


def handler(payload: dict[str, Any], _context: Any) -> dict[str, Any]:
    """`hang`: record this worker's pid, then never return (a club that never answers, past every deadline)."""
    if payload.get("pid_file"):
        Path(payload["pid_file"]).write_text(str(os.getpid()))
    if payload.get("hang"):
        while True:
            time.sleep(1)
    time.sleep(payload.get("seconds", 0.0))
    return {"source": payload["source"], "status": "ok", "pid": os.getpid()}


class Recorder:
    """on_result: every finished invocation with the time it finished."""

    def __init__(self) -> None:
        self.done: list[tuple[float, dict[str, Any], dict[str, Any] | None, BaseException | None]] = []
        self.changed = threading.Condition()

    def __call__(self, payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> None:
        with self.changed:
            self.done.append((time.monotonic(), payload, result, error))
            self.changed.notify_all()

    def wait(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.done) >= count, timeout)

    def of(self, source: str) -> list[tuple[float, dict[str, Any], dict[str, Any] | None, BaseException | None]]:
        with self.changed:
            return [d for d in self.done if d[1]["source"] == source]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def invoker(tmp_path: Path, recorder: Recorder) -> Iterator[LocalAsyncInvoker]:
    # Two sources, so what local/run.py would give them: two warm workers.
    running = LocalAsyncInvoker(
        HANDLER, workers=2, environment={}, log_path=str(tmp_path / "ingest.log"), on_result=recorder
    )
    try:
        yield running
    finally:
        running.close()


def warm(invoker: LocalAsyncInvoker, recorder: Recorder) -> None:
    """The first invocations pay the workers' cold start; the schedule is measured after it."""
    for _ in range(2):
        invoker.invoke_async({"source": "warm-up"})
    assert recorder.wait(2, timeout=60)


def test_a_hung_club_never_delays_another_clubs_polls(invoker: LocalAsyncInvoker, recorder: Recorder) -> None:
    warm(invoker, recorder)
    ticks = []
    for _ in range(6):  # a tick a second: each tick starts one poll of each source, as dispatch does
        ticks.append(time.monotonic())
        invoker.invoke_async({"source": "hung", "hang": True})
        invoker.invoke_async({"source": "fast", "seconds": 0.1})
        time.sleep(1.0)
    recorder.wait(2 + 6, timeout=5)
    fast = recorder.of("fast")
    assert len(fast) == 6, f"only {len(fast)} of 6 fast polls finished while the hung club's polls ran"
    for tick, (finished, _, result, error) in zip(ticks, fast, strict=True):
        assert error is None and result is not None
        assert finished - tick < 1.1, f"a fast poll finished {finished - tick:.2f}s after its tick"
    assert recorder.of("hung") == []  # still hanging: nothing reported for them yet


def test_a_killed_worker_fails_only_its_own_poll_and_the_next_poll_runs(
    invoker: LocalAsyncInvoker, recorder: Recorder, tmp_path: Path
) -> None:
    warm(invoker, recorder)
    pid_file = tmp_path / "hung.pid"
    invoker.invoke_async({"source": "hung", "hang": True, "pid_file": str(pid_file)})
    invoker.invoke_async({"source": "steady", "seconds": 2.0})  # in flight when its neighbour is killed
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert recorder.wait(2 + 2, timeout=30)

    ((_, _, steady, steady_error),) = recorder.of("steady")
    assert steady_error is None, f"a poll on another worker failed with it: {steady_error!r}"
    assert steady is not None and steady["status"] == "ok"
    ((_, payload, result, error),) = recorder.of("hung")
    assert result is None and error is not None
    line = describe_poll(payload, result, error)
    assert line.startswith("ingest hung: FAILED"), line
    assert "SIGKILL" in line, line

    # The next tick polls the same source again, on a sound worker.
    invoker.invoke_async({"source": "hung"})
    assert recorder.wait(2 + 3, timeout=30)
    (_, _, again, again_error) = recorder.of("hung")[-1]
    assert again_error is None and again is not None and again["status"] == "ok"
    assert again["pid"] != int(pid_file.read_text())


def test_the_function_timeout_ends_a_hung_invocation(tmp_path: Path, recorder: Recorder) -> None:
    running = LocalAsyncInvoker(
        HANDLER, workers=1, environment={}, log_path=str(tmp_path / "ingest.log"), on_result=recorder, timeout_s=1.5
    )
    try:
        warm(running, recorder)
        pid_file = tmp_path / "hung.pid"
        started = time.monotonic()
        running.invoke_async({"source": "hung", "hang": True, "pid_file": str(pid_file)})
        assert recorder.wait(3, timeout=30)
        finished, payload, result, error = recorder.of("hung")[0]
        assert result is None and error is not None
        assert type(error).__name__ == "TaskTimedOut"
        assert "Task timed out after 1.50 seconds" in describe_poll(payload, result, error)
        assert finished - started < 1.5 + 2.0
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while pid in running.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid not in running.pids()
        # Killed: gone, or a zombie. SIGKILL takes effect asynchronously, so the kernel may still show it running
        # for a moment after the pool let go of it (seen once under load); a live worker would stay running.
        while _running(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        assert not _running(pid)
        running.invoke_async({"source": "after"})
        assert recorder.wait(4, timeout=30)
        assert recorder.of("after")[0][3] is None
    finally:
        running.close()


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    except FileNotFoundError:
        return False
    return "Z" not in state


def test_an_environment_ended_twice_at_once_closes_its_pipe_once() -> None:
    """close() and a failed invocation's discard can both end one environment: the second must be a no-op, not a
    `Bad file descriptor` from closing the pipe again (two threads racing into Connection.close)."""
    import multiprocessing

    from local.lambda_pool import _Environment

    class Exited:  # a worker that is gone already: only the pipe is left to close
        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float | None = None) -> None:
            return None

    errors: list[BaseException] = []
    for _ in range(200):
        parent_end, child_end = multiprocessing.Pipe()
        child_end.close()
        environment = _Environment(Exited(), parent_end)  # type: ignore[arg-type]
        start = threading.Barrier(8)

        def end(environment: _Environment = environment, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                environment.end()
            except BaseException as exc:  # recorded for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=end) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert parent_end.closed
    assert errors == []
