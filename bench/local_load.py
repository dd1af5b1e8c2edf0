"""Local-mode load: concurrency 32 for 60 s over HTTP while polls run every 5 s against a 10,000+-call club.

Starts local mode exactly as `make run` does (a subprocess of `python -m local`, demo clubs, on a free port),
gets a token from its issuer, then 32 keep-alive connections (4 processes x 8 threads, so the load generator is not
held back by one interpreter's lock) query technicians of every demo club for the duration.

    python bench/local_load.py [--seconds 60] [--concurrency 32]     # last line: name=value pairs
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def start_local(port: int, interval: float, state_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CAPPI_PORT": str(port),
        "CAPPI_INGEST_INTERVAL": str(interval),
        "CAPPI_STATE_DIR": str(state_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_ready(process: subprocess.Popen, timeout: float = 120.0) -> list[str]:
    """Read local mode's console until it prints the query example (first polls done)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("local mode exited:\n" + "".join(lines))
        lines.append(line)
        if "/api/CallData/OpenCalls/" in line and "curl" in line:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep draining
            return lines
    raise RuntimeError("local mode did not become ready:\n" + "".join(lines))


def worker(
    port: int, token: str, targets: list[str], seconds: float, *, threads: int, out: multiprocessing.Queue
) -> None:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(seed: int) -> None:
        nonlocal errors
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        mine: list[float] = []
        counts: dict[int, int] = {}
        failed = 0
        while time.monotonic() < stop_at:
            path = rnd.choice(targets)
            started = time.perf_counter()
            try:
                status, _ = request(conn, "GET", path, headers=headers)
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
            counts[status] = counts.get(status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in counts.items():
                statuses[status] = statuses.get(status, 0) + count
            errors += failed

    pool = [threading.Thread(target=run, args=(os.getpid() * 100 + i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((latencies, statuses, errors))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()

    from local.clients import demo_clients

    port = free_port()
    state_dir = Path(tempfile.mkdtemp(prefix="cappi-load-"))
    process = start_local(port, args.interval, state_dir)
    try:
        wait_ready(process)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        client = demo_clients()[0]
        body = json.dumps(
            {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "audience": f"http://127.0.0.1:{port}",
                "grant_type": "client_credentials",
            }
        ).encode()
        status, payload = request(conn, "POST", "/oauth/token", body, {"Content-Type": "application/json"})
        assert status == 200, payload
        token = json.loads(payload)["access_token"]
        targets = []
        registry = json.loads((state_dir / "demo-clubs.json").read_text())
        for source in registry["sources"]:
            for club_id in source["club_ids"]:
                for tech in ("DEMO1", *(f"T{n:04d}" for n in range(200))):
                    targets.append(f"/api/CallData/OpenCalls/{club_id}/{tech}/ids")
        conn.close()

        per_process = max(1, args.concurrency // PROCESSES)
        queue: multiprocessing.Queue = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(
                target=worker,
                args=(port, token, targets, args.seconds),
                kwargs={"threads": per_process, "out": queue},
            )
            for _ in range(PROCESSES)
        ]
        started = time.monotonic()
        for w in workers:
            w.start()
        results = [queue.get(timeout=args.seconds + 120) for _ in workers]
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    latencies = sorted(x for r in results for x in r[0])
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r[1].items():
            statuses[status] = statuses.get(status, 0) + count
    errors = sum(r[2] for r in results)
    total = len(latencies)
    p50 = latencies[total // 2] * 1000 if total else float("nan")
    p99 = latencies[min(total - 1, int(total * 0.99))] * 1000 if total else float("nan")
    status_5xx = sum(c for s, c in statuses.items() if s >= 500)
    print(f"{total:,} requests in {elapsed:.1f} s at concurrency {per_process * PROCESSES}; statuses {statuses}")
    print(f"polls every {args.interval:g} s against the demo clubs (the largest has over 10,000 calls)")
    print(f"rps={total / elapsed:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} errors={errors} status_5xx={status_5xx}")


if __name__ == "__main__":
    main()
