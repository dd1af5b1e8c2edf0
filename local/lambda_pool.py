"""A stand-in for Lambda's asynchronous invoke of the ingest function.

Each worker process is one "execution environment": it imports the deployed handler once and runs one invocation
at a time, as Lambda does. Processes rather than threads because the handlers' Powertools Logger and Metrics are
per-environment singletons (two concurrent invocations in one process would mix their metrics), and because a
crash must not take local mode down.

As in AWS, every invocation runs on its own: a warm environment that is free, else a new one (up to
`max_concurrency`, as a function's concurrency limit; past it invocations wait their turn, as throttled async
events are retried). A slow or hung club therefore never holds up another club's poll. One spare environment is
kept warm ahead of need, so a new concurrent invocation does not wait for a cold start either. The function's
timeout is enforced as Lambda enforces it, by ending the environment; an environment that dies mid-invocation
(killed, out of memory) is reported as that invocation's failure, and later invocations get a fresh one.
`invoke_async` returns at once, like an `Event` invocation. Workers are spawned with this process's interpreter,
so they import `cappi` from the same installation.

The handler's standard output (its JSON logs and EMF lines) goes to the log file as it would to CloudWatch, and, as
there, a log line that cannot be written never fails the function: with the disk full, the lines are lost and
counted, the poll is reported by what it did to the data, and the console gets one warning line (then at most one
per `LOG_WARNING_EVERY_S`), not a traceback per record.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from cappi.log_file import LogFile

ResultCallback = Callable[[dict[str, Any], dict[str, Any] | None, BaseException | None], None]
WarningCallback = Callable[[str], None]

INGEST_TIMEOUT_S = 180.0  # the ingest function's timeout in the stack (infra/functions.py)
INIT_TIMEOUT_S = 60.0  # an environment that has not imported the handler by then is given up
LOG_WARNING_EVERY_S = 600.0  # lost handler log lines are reported once, then at most once per this many seconds


class TaskTimedOut(Exception):
    """Lambda's `Task timed out after N seconds`: the environment was ended mid-invocation."""


class RuntimeExited(Exception):
    """Lambda's `Runtime exited`: the environment died mid-invocation (a signal, a crash)."""


def _watch_parent(parent: int) -> None:
    # If local mode dies without a chance to clean up (kill -9), its workers must not linger.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


@dataclass(frozen=True, slots=True)
class _Function:
    """What an environment needs to know of the function it runs (sent to the spawned process)."""

    handler_path: str
    environment: dict[str, str]
    log_path: str
    timeout_s: float
    parent: int


def _environment_main(channel: Connection, function: _Function) -> None:
    """An execution environment: init (import the handler), say ready, then one invocation at a time."""
    # Ctrl-C reaches the whole process group; local mode itself decides when workers stop (close()).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(function.parent,), daemon=True).start()
    os.environ.update(function.environment)
    # The handler's JSON logs and metrics go to a file, as they would to CloudWatch; the console stays readable.
    log = LogFile(function.log_path)
    sys.stdout = log
    module_name, _, function_name = function.handler_path.rpartition(".")
    handler = getattr(__import__(module_name, fromlist=[function_name]), function_name)
    from local.http_api import LambdaContext

    channel.send(("ready", None))
    while True:
        try:
            payload = channel.recv()
        except EOFError:
            return
        context = LambdaContext(
            function_name="cappi-local-ingest",
            aws_request_id=str(uuid.uuid4()),
            timeout_ms=int(function.timeout_s * 1000),
        )
        try:
            outcome: tuple[str, Any] = ("ok", handler(payload, context))
        except Exception as exc:  # the invocation fails; the environment stays, as Lambda's does
            outcome = ("error", exc)
        log.flush()
        losses = log.take_losses()  # log lines the file refused during this invocation (or the init before it)
        try:
            channel.send((*outcome, losses))
        except Exception:  # an exception that does not pickle: its type and words still reach the console
            channel.send(("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}"), losses))


class _Environment:
    """The parent's side of one worker process: a pipe to it, and whether it has said it is ready."""

    def __init__(self, process: BaseProcess, channel: Connection) -> None:
        self.process = process
        self.channel = channel
        self.ready = False
        self._ended = threading.Event()
        self._end_lock = threading.Lock()

    def wait_ready(self) -> bool:
        if self.ready:
            return True
        if not self.channel.poll(INIT_TIMEOUT_S):
            return False
        try:
            self.ready = self.channel.recv()[0] == "ready"
        except (EOFError, OSError):
            return False
        return self.ready

    def end(self) -> None:
        """Kill the worker and close the pipe, once: close() and a failed invocation's discard may both end it."""
        with self._end_lock:
            if self._ended.is_set():
                return
            self._ended.set()
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5)
            self.channel.close()


def _exit_reason(process: BaseProcess) -> str:
    process.join(timeout=2)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"Runtime exited with error: signal: {signal.Signals(-code).name}"
        except ValueError:
            return f"Runtime exited with error: signal {-code}"
    return f"Runtime exited with error: exit status {code}"


class LocalAsyncInvoker:
    """Implements the dispatch handler's AsyncInvoker: each invocation in an execution environment of its own.

    `workers` environments are started warm at once; more are started as concurrent invocations need them, up to
    `max_concurrency`."""

    def __init__(
        self,
        handler_path: str,
        *,
        workers: int,
        environment: Mapping[str, str],
        log_path: str,
        on_result: ResultCallback | None = None,
        on_warning: WarningCallback | None = None,
        timeout_s: float = INGEST_TIMEOUT_S,
        max_concurrency: int = 16,
    ) -> None:
        self._function = _Function(handler_path, dict(environment), log_path, timeout_s, os.getpid())
        self._on_result = on_result
        self._on_warning = on_warning
        self._lost_lines = 0  # handler log lines lost since the last warning
        self._warned_at: float | None = None
        self._timeout_s = timeout_s
        self._max = max(1, max_concurrency, workers)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
        self._waiting: collections.deque[dict[str, Any]] = collections.deque()
        self._closed = False
        with self._lock:
            for _ in range(max(1, workers)):
                self._idle.append(self._start_environment())

    def _start_environment(self) -> _Environment:
        """Spawn one worker; it imports the handler in the background (its cold start). Called under the lock."""
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_environment_main,
            args=(child_end, self._function),
            name="cappi-local-ingest",
            daemon=True,
        )
        process.start()
        child_end.close()
        environment = _Environment(process, parent_end)
        self._all.add(environment)
        return environment

    def invoke_async(self, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the invoker is closed")
            environment = self._take()
            if environment is None:
                self._waiting.append(payload)  # at the concurrency limit: run when an environment frees
                return
        threading.Thread(target=self._run, args=(environment, payload), name="ingest-invoke", daemon=True).start()

    def _take(self) -> _Environment | None:
        """A free environment (warm if possible), keeping one spare warming for the next; under the lock."""
        for environment in [e for e in self._idle if not e.process.is_alive()]:
            self._idle.remove(environment)
            self._discard(environment)
        warm = [e for e in self._idle if e.ready or e.channel.poll(0)]
        if self._idle:
            environment = (warm or self._idle)[-1]
            self._idle.remove(environment)
        else:
            if len(self._all) >= self._max:
                return None
            environment = self._start_environment()
        if not self._idle and len(self._all) < self._max:
            self._idle.append(self._start_environment())
        return environment

    def _discard(self, environment: _Environment) -> None:
        self._all.discard(environment)
        threading.Thread(target=environment.end, daemon=True).start()

    def _run(self, environment: _Environment, payload: dict[str, Any]) -> None:
        """One invocation, then the next waiting one (on this environment while it is sound)."""
        while True:
            result, error, healthy = self._invoke(environment, payload)
            self._report(payload, result, error)
            with self._lock:
                if not healthy:
                    self._discard(environment)
                if self._closed:
                    return
                if not self._waiting:
                    if healthy:
                        self._idle.append(environment)
                    return
                following = environment if healthy else self._take()
                if following is None:
                    return
                environment, payload = following, self._waiting.popleft()

    def _invoke(
        self, environment: _Environment, payload: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, BaseException | None, bool]:
        """(result, error, environment still usable). The timeout runs from the end of the environment's init."""
        if not environment.wait_ready():
            return None, RuntimeExited(_exit_reason(environment.process) + " during init"), False
        try:
            environment.channel.send(payload)
            if not environment.channel.poll(self._timeout_s):
                return None, TaskTimedOut(f"Task timed out after {self._timeout_s:.2f} seconds"), False
            status, value, losses = environment.channel.recv()
        except (EOFError, OSError):
            return None, RuntimeExited(_exit_reason(environment.process)), False
        if losses is not None:
            self._log_lost(*losses)
        if status == "ok":
            return value, None, True
        return None, value, True

    def _log_lost(self, lines: int, error: str) -> None:
        """One warning line when the handler's log cannot be written, then at most one per LOG_WARNING_EVERY_S."""
        now = time.monotonic()
        with self._lock:
            self._lost_lines += lines
            if self._warned_at is not None and now - self._warned_at < LOG_WARNING_EVERY_S:
                return
            lost, self._lost_lines, self._warned_at = self._lost_lines, 0, now
        if self._on_warning is not None:
            self._on_warning(
                f"the ingest handler's log {self._function.log_path} cannot be written ({error}): {lost} line"
                f"{'s' if lost != 1 else ''} lost; polls go on and say what they published (told again at most "
                f"every {LOG_WARNING_EVERY_S / 60:g} minutes)"
            )

    def _report(self, payload: dict[str, Any], result: dict[str, Any] | None, error: BaseException | None) -> None:
        with self._lock:
            closed = self._closed
        if self._on_result is not None and not closed:
            self._on_result(payload, result, error)

    def pids(self) -> list[int]:
        """The worker processes now running (for tests and the curious)."""
        with self._lock:
            return [e.process.pid for e in self._all if e.process.pid is not None]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._waiting.clear()
            environments = list(self._all)
            self._all.clear()
            self._idle.clear()
        for environment in environments:
            environment.process.terminate()
        for environment in environments:
            environment.process.join(timeout=5)
            environment.end()
