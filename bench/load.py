"""Load generators for the bench: wrk (preferred) or a bounded Python keep-alive client.

Both send one fixed POST over `concurrency` keep-alive connections for `duration` seconds
to 127.0.0.1 and return a `Result` (count, non-2xx/failed count, p50/p99 latency, rate).
"""
from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LUA = Path(__file__).with_name("post.lua")
WRK_INSTALL_HINT = ("wrk not found: install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk) "
                    "for exact figures; falling back to a Python client, which on a small machine measures "
                    "itself as much as the server")
MAX_PY_REQUESTS = 200_000  # the fallback client's hard bound per run


@dataclass
class Result:
    requests: int
    failed: int          # non-2xx answers plus socket errors/timeouts
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, body: bytes, headers: dict[str, str], *, concurrency: int, duration: float,
        use_wrk: bool = True, timeout: float = 10.0) -> Result:
    headers = {"Content-Type": "application/json", **headers}
    if use_wrk and have_wrk():
        return _wrk(url, body, headers, concurrency, duration, timeout)
    return _python(url, body, headers, concurrency, duration, timeout)


def _wrk(url, body, headers, concurrency, duration, timeout) -> Result:
    threads = 1 if concurrency < 8 else 2
    duration = max(1, round(duration))  # wrk takes whole seconds
    command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration}s",
               "--timeout", f"{timeout:g}s", "-s", str(LUA), url, "--", body.decode()]
    command += [f"{name}: {value}" for name, value in headers.items()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 30)
    match = re.search(r"WRK_RESULT (.*)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    f = {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    failed = f["connect"] + f["read"] + f["write"] + f["status"] + f["timeout"]
    return Result(f["requests"], failed, f["duration_us"] / 1e6, f["p50_us"] / 1000, f["p99_us"] / 1000)


def _python(url, body, headers, concurrency, duration, timeout) -> Result:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Length": str(len(body)), **headers}
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures = [0] * concurrency
    per_thread_cap = MAX_PY_REQUESTS // concurrency
    stop_at = time.monotonic() + duration

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        mine = latencies[slot]
        while time.monotonic() < stop_at and len(mine) < per_thread_cap:
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 300:
                    failures[slot] += 1
            except (OSError, http.client.HTTPException):
                failures[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            mine.append(time.perf_counter() - start)
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + timeout + 5)
    elapsed = time.monotonic() - began
    samples = sorted(x for per in latencies for x in per)
    if not samples:
        return Result(0, sum(failures), elapsed, float("nan"), float("nan"))
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Result(len(samples), sum(failures), elapsed, statistics.median(samples) * 1000, p99 * 1000)
