"""Local-mode load: the gateway against a minimal stdlib server, same machine, same client, same run.

Starts local mode exactly as `make run` does (a subprocess of `python -m local`, demo clubs, on a free port), with a
clients file (CAPPI_CLIENTS_FILE) of one tester app per connection, and a minimal HTTP/1.1 server returning a
constant (`BaselineServer`: a stdlib `ThreadingTCPServer`, a thread per connection as the gateway has, one buffered
write per response, `TCP_NODELAY`, keep-alive) in a process of its own. Then, in alternating slices (gateway,
baseline, gateway, ...), `--concurrency` keep-alive connections from `--processes` client processes send the same
requests (a technician of a demo club) for `--seconds` on the gateway and `--baseline-seconds` on the baseline in
all; polls run every `--interval` s against the demo clubs throughout. Each connection sends its own tester app's
token from local mode's issuer, so the authorizer sees as many distinct tokens as there are connections (their
number is printed), as it would with that many apps, rather than one token that its cache serves to everyone. Last,
`--c1-requests` sequential requests on one keep-alive connection go to a technician with open calls, on each server.

Every figure printed is measured in this run:
- `rps`, `p50_ms`, `p99_ms`, `errors` (connections that failed), `status_5xx`: the gateway's slices;
- `baseline_rps` and `gateway_ratio` = `rps` / `baseline_rps`;
- `p50_c1_ms` (and `baseline_p50_c1_ms`): median latency of the sequential requests;
- `gateway_cpu`, `baseline_cpu`, `client_cpu`: CPU seconds per wall second of the server process (local mode's
  main process, where the gateway, the query handler and moto run) and of all client processes, in their slices.
  A Python server saturates at about 1.0 (one core: its threads share one interpreter lock); a server near 1.0
  with the clients well under the remaining cores was held back by itself, not by the load generator.

The client speaks HTTP/1.1 over raw sockets with prebuilt requests (a few microseconds of Python per request, where
http.client costs tens), so it can drive the baseline flat out; the club sizes printed are those the polls reported.

    python bench/local_load.py                 # last line: name=value pairs
    python bench/local_load.py --help          # the load's parameters
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_RECV = 65_536
_POLL_LINE = re.compile(r"club (\d+) \w+ \((\d+) calls, (\d+) techs\)")
_POLL = re.compile(r"^\[[0-9:]+\] ingest \S+: ")
_QUERY_PATH = re.compile(r"/api/CallData/OpenCalls/[^/\s]+/[^/\s]+/ids")
# The baselines' constant answer: a short JSON body.
BASELINE_BODY = b'{"ids":[]}'
RAW_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BASELINE_BODY),
    BASELINE_BODY,
)


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


# --- the baseline servers ---


class HttpServerHandler(http.server.BaseHTTPRequestHandler):
    """http.server answering every GET with the constant: it parses the request line and headers as any server
    must, adds Server and Date, and sends head and body in one write (a buffered `wfile`, flushed once by
    http.server after each request), with `TCP_NODELAY`, keeping the connection alive (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BASELINE_BODY)))
        self.end_headers()
        self.wfile.write(BASELINE_BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RawHandler(socketserver.BaseRequestHandler):
    """Less than a server: answers each request head (found by its blank line, nothing parsed; no body in this
    load) with a prebuilt response in one write. A floor for what any Python server on this machine costs."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            end = pending.find(b"\r\n\r\n")
            if end < 0:
                data = sock.recv(_RECV)
                if not data:
                    return
                pending += data
                continue
            pending = pending[end + 4 :]
            sock.sendall(RAW_RESPONSE)


BASELINES: dict[str, type[socketserver.BaseRequestHandler]] = {"http.server": HttpServerHandler, "raw": RawHandler}


class BaselineServer(socketserver.ThreadingTCPServer):
    """A thread per connection, as the gateway has."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve_baseline(kind: str, ready: Any) -> None:
    """The baseline's process: reports its port on `ready`, then serves until terminated."""
    with BaselineServer(("127.0.0.1", 0), BASELINES[kind]) as server:
        ready.put(server.server_address[1])
        server.serve_forever()


# --- the load generator ---


class Client:
    """One keep-alive HTTP/1.1 connection with as little client-side work per request as possible: the request is
    prebuilt bytes, the response is framed by its Content-Length only (every response in this load has one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.pending = b""

    def exchange(self, request_bytes: bytes) -> int:
        """Send one request, read its whole response; the status. Raises OSError when the connection fails."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pending = b""
        sock = self.sock
        sock.sendall(request_bytes)
        buffer = self.pending
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv(sock)
        head = buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        while len(buffer) < total:
            buffer += self._recv(sock)
        self.pending = buffer[total:]
        if b"\r\nconnection: close" in head:
            self.close()
        return int(head[9:12])

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        data = sock.recv(_RECV)
        if not data:
            raise ConnectionError("closed by the server")
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def build_requests(port: int, token: str, paths: Sequence[str]) -> list[bytes]:
    return [
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        for path in paths
    ]


@dataclass
class SliceResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    client_cpu_s: float = 0.0
    last_end: float = 0.0  # time.monotonic(), shared by every process on the machine

    def as_tuple(self) -> tuple[list[float], dict[int, int], int, float, float]:
        return self.latencies, self.statuses, self.errors, self.client_cpu_s, self.last_end

    def add(self, other: SliceResult) -> None:
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.errors += other.errors
        self.client_cpu_s += other.client_cpu_s
        self.last_end = max(self.last_end, other.last_end)


def run_slice(port: int, requests: list[list[bytes]], start_at: float, seconds: float, *, seed: int) -> SliceResult:
    """One connection per list of `requests` (a connection's own token in each), each sending one request after
    another from `start_at` for `seconds`."""
    total = SliceResult()
    lock = threading.Lock()
    stop_at = start_at + seconds

    def run(thread_seed: int, own_requests: list[bytes]) -> None:
        rnd = random.Random(thread_seed)
        client = Client(port)
        mine = SliceResult()
        clock = time.perf_counter
        while time.monotonic() < start_at:
            time.sleep(0.001)
        while time.monotonic() < stop_at:
            request_bytes = rnd.choice(own_requests)
            started = clock()
            try:
                status = client.exchange(request_bytes)
            except OSError:
                mine.errors += 1
                client.close()
                continue
            mine.latencies.append(clock() - started)
            mine.statuses[status] = mine.statuses.get(status, 0) + 1
        mine.last_end = time.monotonic()
        client.close()
        with lock:
            total.add(mine)

    pool = [threading.Thread(target=run, args=(seed * 1000 + i, own)) for i, own in enumerate(requests)]
    for thread in pool:
        thread.start()
    while time.monotonic() < start_at:
        time.sleep(0.001)
    cpu = time.process_time()
    for thread in pool:
        thread.join()
    total.client_cpu_s = time.process_time() - cpu
    return total


def client_process(ports: dict[str, int], tokens: list[str], paths: list[str], queues: tuple[Any, Any]) -> None:
    """A load-generator process, one connection per token: runs the slices it is sent, `(server, start_at, seconds,
    seed)`, until None."""
    jobs, out = queues
    requests = {name: [build_requests(port, token, paths) for token in tokens] for name, port in ports.items()}
    while (job := jobs.get()) is not None:
        name, start_at, seconds, seed = job
        result = run_slice(ports[name], requests[name], start_at, seconds, seed=seed)
        out.put(result.as_tuple())  # plain data: the class is this script's, named differently in each process


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a running process, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Totals:
    result: SliceResult = field(default_factory=SliceResult)
    wall_s: float = 0.0
    server_cpu_s: float | None = 0.0

    @property
    def rps(self) -> float:
        return len(self.result.latencies) / self.wall_s if self.wall_s else float("nan")

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.result.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000 if ordered else float("nan")

    def share(self, seconds: float | None) -> str:
        return f"{seconds / self.wall_s:.2f}" if seconds is not None and self.wall_s else "n/a"


class Load:
    """The client processes, and slices run on them: every process starts its connections at the same moment."""

    def __init__(self, ports: dict[str, int], tokens: list[str], paths: list[str], *, processes: int) -> None:
        """`tokens`: one per connection, dealt out to the processes in equal shares."""
        context = multiprocessing.get_context("spawn")
        self.out = context.Queue()
        self.jobs = [context.Queue() for _ in range(processes)]
        share = len(tokens) // processes
        self.workers = [
            context.Process(
                target=client_process,
                args=(ports, tokens[index * share : (index + 1) * share], paths, (jobs, self.out)),
                daemon=True,
            )
            for index, jobs in enumerate(self.jobs)
        ]
        for worker in self.workers:
            worker.start()
        self.seed = 0

    def run(self, server: str, seconds: float, server_pid: int, totals: Totals | None) -> None:
        start_at = time.monotonic() + 0.5  # time for every process to get the job and start its threads
        self.seed += 1
        for index, jobs in enumerate(self.jobs):
            jobs.put((server, start_at, seconds, self.seed * 100 + index))
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu_before = cpu_seconds(server_pid)
        time.sleep(max(0.0, start_at + seconds - time.monotonic()))
        cpu_after = cpu_seconds(server_pid)
        merged = SliceResult()
        for _ in self.jobs:
            merged.add(SliceResult(*self.out.get(timeout=seconds + 120)))
        if totals is None:
            return
        totals.result.add(merged)
        totals.wall_s += merged.last_end - start_at
        if totals.server_cpu_s is not None and cpu_before is not None and cpu_after is not None:
            totals.server_cpu_s += cpu_after - cpu_before
        else:
            totals.server_cpu_s = None

    def close(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for worker in self.workers:
            worker.join(timeout=10)


def p50_sequential_ms(port: int, request_bytes: bytes, count: int) -> tuple[float, dict[int, int]]:
    """Median latency of `count` requests one after another on one keep-alive connection (after 20 not counted)."""
    client = Client(port)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for n in range(count + 20):
        started = time.perf_counter()
        status = client.exchange(request_bytes)
        if n >= 20:
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    client.close()
    return statistics.median(latencies) * 1000, statuses


# --- local mode ---


def tester_apps(count: int) -> list[dict[str, str]]:
    """The clients file's entries: `count` tester apps, each with local mode's default scopes and no club list."""
    return [{"client_id": f"cappi-load-tester-{n:02d}", "client_secret": f"load-secret-{n:02d}"} for n in range(count)]


def start_local(port: int, interval: float, state_dir: Path, clients_file: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CAPPI_PORT": str(port),
        "CAPPI_INGEST_INTERVAL": str(interval),
        "CAPPI_STATE_DIR": str(state_dir),
        "CAPPI_CLIENTS_FILE": str(clients_file),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@dataclass
class Console:
    """What local mode printed: the example query path (a technician with open calls) and each club's last poll."""

    lines: list[str] = field(default_factory=list)
    example_path: str = ""
    clubs: dict[int, tuple[int, int]] = field(default_factory=dict)  # club -> (calls, techs), from its last poll
    polls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, line: str) -> None:
        found = _POLL_LINE.findall(line)
        with self.lock:
            self.lines.append(line)
            if _POLL.match(line):
                self.polls += 1
            for club, calls, techs in found:
                self.clubs[int(club)] = (int(calls), int(techs))
            if "curl" in line and (path := _QUERY_PATH.search(line)):
                self.example_path = path.group(0)


def wait_ready(process: subprocess.Popen, console: Console, timeout: float = 120.0) -> None:
    """Read local mode's console until it prints the query example (first polls done), then keep reading it."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    stdout = process.stdout
    while time.monotonic() < deadline:
        line = stdout.readline()
        if not line:
            raise RuntimeError("local mode exited:\n" + "".join(console.lines))
        console.read(line)
        if console.example_path:
            drain: Callable[[], None] = lambda: [console.read(rest) for rest in stdout]  # noqa: E731
            threading.Thread(target=drain, daemon=True).start()
            return
    raise RuntimeError("local mode did not become ready:\n" + "".join(console.lines))


def get_token(port: int, client: dict[str, str]) -> str:
    """A token for `client` from local mode's issuer, as a tester app gets one."""
    body = json.dumps(
        {
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "audience": f"http://127.0.0.1:{port}",
            "grant_type": "client_credentials",
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        status, payload = request(conn, "POST", "/oauth/token", body, {"Content-Type": "application/json"})
    finally:
        conn.close()
    assert status == 200, payload
    return str(json.loads(payload)["access_token"])


def query_paths(state_dir: Path) -> list[str]:
    """Technicians of every demo club: DEMO1 (always has open calls) and T0000-T0199 (mostly none)."""
    registry = json.loads((state_dir / "demo-clubs.json").read_text())
    return [
        f"/api/CallData/OpenCalls/{club_id}/{tech}/ids"
        for source in registry["sources"]
        for club_id in source["club_ids"]
        for tech in ("DEMO1", *(f"T{n:04d}" for n in range(200)))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="on the gateway, over all slices")
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="on the baseline, over all slices")
    parser.add_argument("--slices", type=int, default=6, help="gateway/baseline slice pairs, alternating")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections, in all")
    parser.add_argument("--processes", type=int, default=4, help="client processes sharing the connections")
    parser.add_argument("--interval", type=float, default=5.0, help="local mode's poll interval (s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="s on each server before the slices, not counted")
    parser.add_argument("--baseline", choices=sorted(BASELINES), default="http.server", help="the server compared")
    parser.add_argument("--c1-requests", type=int, default=2000, help="sequential requests for p50_c1_ms")
    args = parser.parse_args()
    threads = max(1, args.concurrency // args.processes)

    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    baseline = context.Process(target=serve_baseline, args=(args.baseline, ready), daemon=True)
    baseline.start()
    baseline_port = int(ready.get(timeout=30))
    assert baseline.pid is not None

    port = free_port()
    state_dir = Path(tempfile.mkdtemp(prefix="cappi-load-"))
    clients = tester_apps(threads * args.processes)
    clients_file = state_dir / "load-clients.json"
    clients_file.write_text(json.dumps({"clients": clients}, indent=2))
    process = start_local(port, args.interval, state_dir, clients_file)
    console = Console()
    gateway, base = Totals(), Totals()
    load = None
    try:
        wait_ready(process, console)
        tokens = [get_token(port, client) for client in clients]  # one per connection
        paths = query_paths(state_dir)
        ports = {"gateway": port, "baseline": baseline_port}
        pids = {"gateway": process.pid, "baseline": baseline.pid}
        load = Load(ports, tokens, paths, processes=args.processes)
        for name in ports:
            load.run(name, args.warmup, pids[name], None)
        polls_before = console.polls
        for _ in range(args.slices):
            load.run("gateway", args.seconds / args.slices, process.pid, gateway)
            load.run("baseline", args.baseline_seconds / args.slices, baseline.pid, base)
        polls = console.polls - polls_before
        example = console.example_path
        c1_ms, c1_statuses = p50_sequential_ms(port, build_requests(port, tokens[0], [example])[0], args.c1_requests)
        base_c1_ms, _ = p50_sequential_ms(
            baseline_port, build_requests(baseline_port, tokens[0], [example])[0], args.c1_requests
        )
    finally:
        if load is not None:
            load.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        baseline.terminate()
        baseline.join(timeout=10)

    g, b = gateway.result, base.result
    status_5xx = sum(c for s, c in g.statuses.items() if s >= 500)
    clubs = ", ".join(f"club {c}: {n:,} calls, {techs:,} techs" for c, (n, techs) in sorted(console.clubs.items()))
    client_cpu = gateway.share(g.client_cpu_s) + " (gateway slices), " + base.share(b.client_cpu_s) + " (baseline)"
    print(
        f"load: concurrency {threads * args.processes} ({args.processes} client processes x {threads} keep-alive "
        f"connections), {len(set(tokens))} distinct tokens (one per connection, each from its own tester app), "
        f"{args.slices} alternating slice pairs: {args.seconds:g} s on the gateway, "
        f"{args.baseline_seconds:g} s on the baseline in all (after {args.warmup:g} s on each, not counted); "
        f"{os.cpu_count()} CPUs"
    )
    print(f"polls every {args.interval:g} s against the demo clubs: {polls} polls during the slices; last seen {clubs}")
    print(
        f"gateway:  {len(g.latencies):,} requests in {gateway.wall_s:.1f} s; statuses {g.statuses}; "
        f"server CPU {gateway.share(gateway.server_cpu_s)} s/s"
    )
    print(
        f"baseline: {len(b.latencies):,} requests in {base.wall_s:.1f} s; statuses {b.statuses}; errors {b.errors}; "
        f"server CPU {base.share(base.server_cpu_s)} s/s ({args.baseline}: constant 200, one write, TCP_NODELAY)"
    )
    print(f"client CPU {client_cpu} s/s, all {args.processes} processes")
    print(f"sequential, one connection, {args.c1_requests} requests of {example}: statuses {c1_statuses}")
    print("targets: errors=0 status_5xx=0 gateway_ratio>=0.25 p50_c1_ms<5")
    figures = {
        "rps": f"{gateway.rps:.0f}",
        "p50_ms": f"{gateway.percentile_ms(0.5):.2f}",
        "p99_ms": f"{gateway.percentile_ms(0.99):.2f}",
        "errors": str(g.errors),
        "status_5xx": str(status_5xx),
        "baseline_rps": f"{base.rps:.0f}",
        "gateway_ratio": f"{gateway.rps / base.rps:.3f}",
        "p50_c1_ms": f"{c1_ms:.3f}",
        "baseline_p50_c1_ms": f"{base_c1_ms:.3f}",
        "gateway_cpu": gateway.share(gateway.server_cpu_s),
        "baseline_cpu": base.share(base.server_cpu_s),
    }
    print(" ".join(f"{name}={value}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
