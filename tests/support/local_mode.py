"""Local mode as the end-to-end tests drive it: `python -m local` in a subprocess on a free port, over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalMode:
    process: subprocess.Popen
    port: int
    state_dir: Path
    lines: list[str] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)  # time.monotonic() when each of `lines` was read

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stamps.append(time.monotonic())
            self.lines.append(line)

    def stamped(self, pattern: str, after: int = 0) -> list[float]:
        """When the lines matching `pattern` (from line `after` on) were printed."""
        regex = re.compile(pattern)
        return [t for t, line in zip(self.stamps[after:], self.lines[after:], strict=False) if regex.search(line)]

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90.0, after: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                found = regex.search(line)
                if found:
                    return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never saw {pattern!r}; local mode printed:\n{self.output()}")

    def http(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None

    def token(self, client_id: str = "cappi-demo-tester", secret: str = "cappi-demo-secret") -> str:
        status, _, body = self.http(
            "POST",
            "/oauth/token",
            {
                "client_id": client_id,
                "client_secret": secret,
                "audience": f"http://127.0.0.1:{self.port}",
                "grant_type": "client_credentials",
            },
        )
        assert status == 200, body
        return body["access_token"]

    def calls(self, club: int, tech: str, token: str) -> tuple[int, Any]:
        status, _, body = self.http("GET", f"/api/CallData/OpenCalls/{club}/{tech}/ids", None, bearer(token))
        return status, body

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found


def alive(pids: list[int]) -> dict[int, str]:
    """Which of `pids` still run (zombies do not count), with their command lines."""
    running = {}
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                running[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Starter:
    """Starts local mode as `make run` does, each on a free port; `stop_all` kills what is still running."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[LocalMode] = []

    def __call__(
        self, state_dir: Path | None = None, wait: bool = True, port: int | None = None, **env: str
    ) -> LocalMode:
        port = port or free_port()
        state = state_dir or self.tmp_path / f"state-{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**os.environ, "CAPPI_PORT": str(port), "CAPPI_STATE_DIR": str(state), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        local = LocalMode(process, port, state)
        threading.Thread(target=local.read, daemon=True).start()
        self.started.append(local)
        if wait:
            local.wait_for("Press Ctrl-C to stop")
        return local

    def stop_all(self) -> None:
        for local in self.started:
            if local.process.poll() is None:
                local.process.kill()
                local.process.wait(timeout=10)


def control(local: LocalMode, club: str, **body: Any) -> Any:
    registry = json.loads((local.state_dir / "demo-clubs.json").read_text())
    base = next(s["base_url"] for s in registry["sources"] if s["name"] == club)
    host, port = re.match(r"http://([\d.]+):(\d+)/", base).groups()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST" if body else "GET", f"/_control/{club}", body=json.dumps(body) if body else None)
    response = conn.getresponse()
    data = json.loads(response.read())
    assert response.status == 200, data
    return data


def next_poll(local: LocalMode, club: str) -> None:
    mark = len(local.lines)
    local.wait_for(rf"ingest {club}:", after=mark)


def eventually(read: Any, expected: Any, timeout: float = 20.0) -> None:
    """Readers see a new snapshot within the query Lambda's pointer cache age (1 s in these tests)."""
    deadline = time.monotonic() + timeout
    while (got := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == expected
