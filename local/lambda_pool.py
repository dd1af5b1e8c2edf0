"""A stand-in for Lambda's asynchronous invoke of the ingest function.

Each worker process is one warm "execution environment": it imports the deployed handler once and runs one
invocation at a time, as Lambda does. Processes rather than threads because the handlers' Powertools Logger and
Metrics are per-environment singletons (two concurrent invocations in one process would mix their metrics), and
because a crash must not take local mode down. `invoke_async` returns at once, like an `Event` invocation.
Workers are spawned with this process's interpreter, so they import `cappi` from the same installation.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

ResultCallback = Callable[[dict[str, Any], dict[str, Any] | None, BaseException | None], None]


def _watch_parent(parent: int) -> None:
    # If local mode dies without a chance to clean up (kill -9), its workers must not linger.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _worker_start(parent: int, log_path: str) -> None:
    # Ctrl-C reaches the whole process group; local mode itself decides when workers stop (close()).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # The handler's JSON logs and metrics go to a file, as they would to CloudWatch; the console stays readable.
    sys.stdout = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the worker


def _invoke(handler_path: str, payload: dict[str, Any]) -> dict[str, Any]:
    module_name, _, function_name = handler_path.rpartition(".")
    module = __import__(module_name, fromlist=[function_name])
    from local.http_api import LambdaContext

    context = LambdaContext(function_name="cappi-local-ingest", aws_request_id=str(uuid.uuid4()), timeout_ms=180_000)
    return getattr(module, function_name)(payload, context)


class LocalAsyncInvoker:
    """Implements the dispatch handler's AsyncInvoker with a pool of warm worker processes."""

    def __init__(
        self,
        handler_path: str,
        *,
        workers: int,
        environment: Mapping[str, str],
        log_path: str,
        on_result: ResultCallback | None = None,
    ) -> None:
        self._handler_path = handler_path
        self._workers = workers
        self._environment = dict(environment)
        self._log_path = log_path
        self._on_result = on_result
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.in_flight: set[Future] = set()

    def _new_pool(self) -> ProcessPoolExecutor:
        os.environ.update(self._environment)  # spawned workers inherit the environment at creation
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
            initargs=(os.getpid(), self._log_path),
        )

    def invoke_async(self, payload: dict[str, Any]) -> None:
        with self._lock:
            try:
                future = self._pool.submit(_invoke, self._handler_path, payload)
            except BrokenProcessPool:
                # A worker died (as a Lambda environment can): start a fresh pool, as Lambda starts new ones.
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                future = self._pool.submit(_invoke, self._handler_path, payload)
            self.in_flight.add(future)
        future.add_done_callback(lambda done: self._finished(payload, done))

    def _finished(self, payload: dict[str, Any], future: Future) -> None:
        with self._lock:
            self.in_flight.discard(future)
        if self._on_result is None or future.cancelled():
            return
        error = future.exception()
        self._on_result(payload, None if error else future.result(), error)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self.in_flight:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        with self._lock:
            pool = self._pool
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
