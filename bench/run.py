"""`make bench`: the token endpoint against a hand-written Node (express) server, side by side.

Everything runs on 127.0.0.1 in one invocation, bounded in time (about 3 minutes):
  - the Outspeed stand-in: bench/upstream.py's event-loop stand-in (uvloop + httptools) in its
    own process, fixed delay (its CPU per request is a row of its own);
  - the endpoint: function/main.py under functions-framework exactly as Cloud Functions runs
    it (tools/function_server.py: the CLI in ASGI mode, gunicorn + one uvicorn worker on
    uvloop + httptools; THREADS sizes its upstream connection pool);
  - "before": the Flask/gthread function of an earlier commit (--before-rev, default 6ea5ff7,
    extracted with `git archive`), for its import time and cold start in the same run;
  - the cold-start baseline: bench/flaskport/main.py, the Python twin of bench/node/server.js
    (a Flask + `requests` Cloud Function, what a Python user would write instead), started
    interleaved with the endpoint (median of --cold-starts each, launch to first 200);
  - the baseline: bench/node/server.js, one express process with a keep-alive agent
    (installed with `npm ci` into bench/node/node_modules; skipped with a note if node or
    npm is missing);
  - the load: wrk (bench/post.lua), or a bounded Python client when wrk is missing;
  - quotas on: the endpoint again with a global mint budget (too large to refuse) in Debian's
    redis-server on loopback (tools/redis_server.py): what the reservation adds per request,
    and the cold start with quotas on (skipped with a note when redis-server is missing).

    python -m bench.run [--delay-ms 20] [--threads 80] [--before-rev 6ea5ff7] [--markdown table.md]
    python -m bench.run --quotas-only   # just the quotas-off / quotas-on pair
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import load, procstat
from bench.upstream import RemoteStandIn
from tools.function_server import FUNCTION_SOURCE, ROOT, FunctionServer, compile_source, free_port
from tools.redis_server import REDIS_SERVER, RedisServer

NODE_DIR = Path(__file__).with_name("node")
NOOP_SOURCE = Path(__file__).with_name("noop") / "main.py"
FLASK_PORT_SOURCE = Path(__file__).with_name("flaskport") / "main.py"
API_KEY = "bench-api-key-" + "x" * 24
AGENT_ID = "bench-agent"
TOKEN_BODY = json.dumps({"agentId": AGENT_ID}).encode()
MIB = 1024


# ---------------------------------------------------------------- servers under test

def endpoint_env(upstream_url: str, threads: int) -> dict[str, str]:
    return {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream_url, "THREADS": str(threads),
            "UPSTREAM_TIMEOUT_SECONDS": "10"}


def quota_env(env: dict[str, str], store: RedisServer) -> dict[str, str]:
    """Quotas on: a global budget no bench run can spend, so every request takes the whole
    reservation path (one script call on a pooled connection) and none is refused."""
    return {**env, "QUOTA_REDIS_URL": store.url, "QUOTA_GLOBAL": "1000000000/86400", "QUOTA_KEY_PREFIX": "bench"}


class NodeServer:
    """bench/node/server.js in a subprocess (same shape as FunctionServer)."""

    def __init__(self, upstream_url: str):
        self.port = free_port()
        self.env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        self.env.update({"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream_url,
                         "PORT": str(self.port), "NODE_ENV": "production"})
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "NodeServer":
        self.process = subprocess.Popen(["node", "server.js"], cwd=NODE_DIR, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prepare_node() -> str | None:
    """Install the Node baseline's pinned dependencies; return why it is unavailable, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (install Node.js >= 18 with npm for the baseline column)"
    lock, stamp = NODE_DIR / "package-lock.json", NODE_DIR / "node_modules" / ".package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return None
    print("installing the Node baseline: npm ci (bench/node)", flush=True)
    try:
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return "npm ci timed out after 180 s"
    if proc.returncode != 0:
        return f"npm ci failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return None


# ---------------------------------------------------------------- probes

def post(url: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 5.0) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def cold_start(make_server, timeout: float = 30.0, headers: dict[str, str] | None = None) -> float:
    """Seconds from process start to the first 200 from POST /token with `headers` (polled
    every 5 ms)."""
    server = make_server()
    first_ok: list[float] = []
    began = time.monotonic()

    def poll() -> None:
        while time.monotonic() - began < timeout:
            try:
                if post(server.url, "/token", TOKEN_BODY, headers or {}, timeout=timeout) == 200:
                    first_ok.append(time.monotonic())
                    return
            except OSError:
                pass
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        server.start()
        poller.join(timeout)
    finally:
        server.stop()
    if not first_ok:
        raise RuntimeError("server never answered 200 during the cold-start probe")
    return first_ok[0] - began


def extract_before(rev: str, into: Path) -> Path | None:
    """function/ as it was at `rev` (the Flask version), or None if git cannot provide it."""
    if not rev or shutil.which("git") is None:
        return None
    try:
        archive = subprocess.run(["git", "archive", rev, "function"], cwd=ROOT, capture_output=True,
                                 timeout=60, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    source = into / "function" / "main.py"
    return source if source.exists() else None


def import_seconds(source: Path, env: dict[str, str]) -> float:
    """Import time of main.py in a fresh interpreter with its directory on sys.path, its
    modules byte-compiled as the deploy's build step leaves them (compile_source)."""
    compile_source(source.parent)
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); import main; "
            "print(time.perf_counter() - t)")
    full_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    full_env.update({"PYTHONDONTWRITEBYTECODE": "1", **env})
    out = subprocess.run([sys.executable, "-c", code, str(source.parent)], env=full_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return float(out.strip().splitlines()[-1])


def client_import_seconds(env: dict[str, str]) -> float:
    """What the worker's boot pays for the upstream client: token_upstream.new_session, which
    main.py's lifespan calls (import pyreqwest, choose the trust store, build the client), in a
    fresh interpreter that has already imported the framework and token_upstream (as the
    forked worker has)."""
    code = ("import sys, time; sys.path.insert(0, 'function'); import functions_framework.aio, token_upstream; "
            "t = time.perf_counter(); token_upstream.new_session(token_upstream.SETTINGS.threads); "
            "print(time.perf_counter() - t)")
    full_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    full_env.update({"PYTHONDONTWRITEBYTECODE": "1", **env})
    out = subprocess.run([sys.executable, "-c", code], env=full_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return float(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- figures

@dataclass
class Column:
    name: str
    c1: load.Result | None = None
    c64: load.Result | None = None
    cpu_per_1k: float | None = None
    cpu_busy: float | None = None  # cores the server kept busy during the rate run
    standin_cpu_per_1k: float | None = None  # the stand-in's CPU ms per request over the same rate run
    conns: int | None = None
    conns_requests: int | None = None
    rss_mib: float | None = None
    rss_note: str = ""
    cold_ms: float | None = None
    cold_flask_port_ms: float | None = None  # the Flask + requests port, same interleaved loop
    cold_paired_ratio: float | None = None  # median over rounds of endpoint / Flask port (same round)
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def measure(col: Column, url: str, path: str, body: bytes, headers: dict[str, str], *, args,
            pids=lambda: [], upstream: RemoteStandIn, use_wrk: bool) -> None:
    target = url + path
    load.run(target, body, headers, concurrency=1, duration=1, use_wrk=use_wrk)  # warm-up
    col.c1 = load.run(target, body, headers, concurrency=1, duration=args.c1_seconds, use_wrk=use_wrk)
    conns_before = upstream.connections
    warm = load.run(target, body, headers, concurrency=args.concurrency, duration=args.warmup_seconds,
                    use_wrk=use_wrk)
    cpu_before, standin_before = procstat.cpu_seconds(pids()), procstat.cpu_seconds([upstream.pid])
    col.c64 = load.run(target, body, headers, concurrency=args.concurrency, duration=args.rate_seconds,
                       use_wrk=use_wrk)
    cpu_after, standin_after = procstat.cpu_seconds(pids()), procstat.cpu_seconds([upstream.pid])
    col.conns = upstream.connections - conns_before
    col.conns_requests = warm.requests + col.c64.requests
    if col.c64.requests:
        col.standin_cpu_per_1k = (standin_after - standin_before) / col.c64.requests * 1000
    if pids():
        col.cpu_per_1k = (cpu_after - cpu_before) / col.c64.requests * 1000 if col.c64.requests else None
        col.cpu_busy = (cpu_after - cpu_before) / col.c64.seconds
    col.failed = col.c1.failed + warm.failed + col.c64.failed


def serve_function(col: Column, source: Path, env: dict[str, str], *, args, upstream, use_wrk: bool) -> None:
    """Measure one function under FunctionServer: latency, rate, CPU and peak RSS."""
    with FunctionServer(env, source=source) as server:
        if post(server.url, "/token", TOKEN_BODY, {}) != 200:
            raise SystemExit(f"{source} does not answer 200 to POST /token:\n{server.output()[-2000:]}")
        measure(col, server.url, "/token", TOKEN_BODY, {}, args=args, pids=lambda: procstat.tree(server.process.pid),
                upstream=upstream, use_wrk=use_wrk)
        worker = procstat.worker_pid(server.process.pid)
        master_hwm = procstat.status_kib(server.process.pid, "VmHWM") / MIB
        worker_hwm = procstat.status_kib(worker, "VmHWM") / MIB
        col.rss_mib = master_hwm + worker_hwm
        col.rss_note = f"master {master_hwm:.1f} + worker {worker_hwm:.1f}"


def fmt(value, spec=".1f", suffix="") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{suffix}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def build_rows(direct: Column, fn: Column, node: Column | None, floor: Column, imp: float, args,
               before_cold_ms: float | None = None, before_imp: float | None = None,
               floor_imp: float | None = None, client_imp: float | None = None) -> list[list[str]]:
    """Rows of: figure, direct, endpoint, node, framework floor, target, result."""
    def c1(col, attr):
        return getattr(col.c1, attr) if col and col.c1 else None

    def added(col, attr):
        return c1(col, attr) - c1(direct, attr) if col and col.c1 else None

    def each(fn_of):  # the four measured columns
        return [fn_of(col) if col is not None else "n/a" for col in (direct, fn, node, floor)]

    def per_1k(col):
        return col.conns / col.conns_requests * 1000 if col.conns_requests else None

    c = args.concurrency
    node_rate = node.c64.rate if node else None
    added_fn, added_node = added(fn, "p50_ms"), added(node, "p50_ms")
    return [
        ["p50 latency, c=1 (ms)", *each(lambda col: fmt(c1(col, "p50_ms"), ".2f")), "", ""],
        ["p99 latency, c=1 (ms)", *each(lambda col: fmt(c1(col, "p99_ms"), ".2f")), "", ""],
        ["added p50 over direct, c=1 (ms)", "-", fmt(added_fn, ".2f"), fmt(added_node, ".2f"),
         "-", "endpoint <= node",
         verdict(None if added_node is None else added_fn <= added_node)],
        ["added p99 over direct, c=1 (ms)", "-", fmt(added(fn, "p99_ms"), ".2f"), fmt(added(node, "p99_ms"), ".2f"),
         "-", "", ""],
        [f"requests/s, c={c}", *each(lambda col: fmt(col.c64.rate, ".0f")), ">= 1.5 x node",
         verdict(None if node_rate is None else fn.c64.rate >= 1.5 * node_rate)],
        [f"  ... endpoint / node, c={c}", "-", fmt(fn.c64.rate / node_rate if node_rate else None, ".2f", "x"),
         "1.00x", "-", "", ""],
        [f"p50 / p99 latency, c={c} (ms)", *each(lambda col: f"{col.c64.p50_ms:.1f} / {col.c64.p99_ms:.1f}"), "", ""],
        ["failed requests (non-2xx, errors)", *each(lambda col: str(col.failed)), "0",
         verdict(all(col.failed == 0 for col in (direct, fn, node, floor) if col))],
        [f"server CPU ms per request, c={c}", "-",
         *[fmt(col.cpu_per_1k, ".3f") if col else "n/a" for col in (fn, node, floor)], "endpoint <= 0.40",
         verdict(None if fn.cpu_per_1k is None else fn.cpu_per_1k <= 0.40)],
        [f"server CPU busy during c={c} run (cores)", "-",
         *[fmt(col.cpu_busy, ".2f") if col else "n/a" for col in (fn, node, floor)], "", ""],
        [f"stand-in CPU ms per request, c={c} (bench/upstream.py; not part of any server)",
         *each(lambda col: fmt(col.standin_cpu_per_1k, ".3f")), "", ""],
        ["peak RSS (MiB, VmHWM)", "-", f"{fn.rss_mib:.1f} ({fn.rss_note})",
         fmt(node.rss_mib if node else None), f"{floor.rss_mib:.1f} ({floor.rss_note})", "< 128",
         verdict(fn.rss_mib < 128)],
        [f"upstream connections opened, c={c} run incl. warm-up", "-",
         f"{fn.conns} for {fn.conns_requests} req", f"{node.conns} for {node.conns_requests} req" if node else "n/a",
         "-", f"<= THREADS ({args.threads})", verdict(fn.conns <= args.threads)],
        ["  ... per 1,000 requests", "-", fmt(per_1k(fn), ".2f"), fmt(per_1k(node) if node else None, ".2f"), "-",
         "", ""],
        [f"cold start to first 200 (ms, median of {args.cold_starts})", "-", fmt(fn.cold_ms, ".0f"),
         fmt(node.cold_ms if node else None, ".0f"), fmt(floor.cold_ms, ".0f"),
         f"<= 1.0 x Flask port ({fmt(fn.cold_flask_port_ms, '.0f')} ms)",
         verdict(None if fn.cold_flask_port_ms is None else fn.cold_ms <= fn.cold_flask_port_ms)],
        [f"  ... Flask + requests port of the seed (bench/flaskport), same loop", "-",
         fmt(fn.cold_flask_port_ms, ".0f"), "-", "-", "", ""],
        ["  ... endpoint / Flask port: of the medians (median of the per-round ratios)", "-",
         f"{fmt(fn.cold_ms / fn.cold_flask_port_ms if fn.cold_flask_port_ms else None, '.2f', 'x')} "
         f"({fmt(fn.cold_paired_ratio, '.2f', 'x')})", "-", "-", "", ""],
        [f"  ... before: Flask function of {args.before_rev or '(skipped)'}, same loop", "-", fmt(before_cold_ms, ".0f"), "-", "-",
         "", ""],
        [f"import function/main.py (s, median of {args.imports})", "-", f"{imp:.3f}", "-", fmt(floor_imp, ".3f"),
         f"< 0.25 (before: {fmt(before_imp, '.3f')})", verdict(imp < 0.25)],
        [f"  ... the client in the worker's boot: import pyreqwest, trust store, build (token_upstream.new_session) "
         f"(ms, median of {args.imports})", "-",
         fmt(client_imp * 1000 if client_imp is not None else None, ".1f"), "-", "-", "", ""],
    ]


def quota_rows(off: Column, on: Column | None, note: str = "") -> list[list[str]]:
    """The quotas-on rows (endpoint column): its cost over the same endpoint with quotas off.
    CPU s per 1,000 requests is CPU ms per request."""
    if on is None:
        return [["quotas on (local redis-server)", "-", f"n/a ({note})", "-", "-", "", ""]]
    added_p50 = on.c1.p50_ms - off.c1.p50_ms
    added_cpu = on.cpu_per_1k - off.cpu_per_1k if on.cpu_per_1k is not None and off.cpu_per_1k is not None else None
    return [
        ["quotas on (global budget, local redis-server): p50 latency, c=1 (ms)", "-", fmt(on.c1.p50_ms, ".2f"),
         "-", "-", "", ""],
        ["  ... added p50 over quotas off, c=1 (ms)", "-", fmt(added_p50, ".2f"), "-", "-", "<= +1",
         verdict(added_p50 <= 1.0)],
        ["  ... added server CPU per request over quotas off (ms)", "-", fmt(added_cpu, ".3f"), "-", "-", "<= +0.1",
         verdict(None if added_cpu is None else added_cpu <= 0.1)],
        ["  ... failed requests", "-", str(on.failed), "-", "-", "0", verdict(on.failed == 0)],
        ["  ... cold start to first 200, quotas on (ms, median)", "-", fmt(on.cold_ms, ".0f"), "-", "-",
         f"quotas off: {fmt(off.cold_ms, '.0f')}", ""],
    ]


def measure_quotas(off: Column, env: dict[str, str], *, args, upstream, use_wrk: bool) -> tuple[Column | None, str]:
    """The quotas-on column (the quotas-off one is `off`, measured in the same run)."""
    if not Path(REDIS_SERVER).exists():
        return None, f"{REDIS_SERVER} not installed (apt-get install redis-server)"
    on = Column("quotas")
    with RedisServer(password="bench-" + os.urandom(8).hex()) as store:
        qenv = quota_env(env, store)
        on.cold_ms = statistics.median(cold_start(lambda: FunctionServer(qenv, source=args.source))
                                       for _ in range(args.cold_starts)) * 1000
        serve_function(on, args.source, qenv, args=args, upstream=upstream, use_wrk=use_wrk)
    return on, ""


def quotas_only(args, use_wrk: bool) -> int:
    """--quotas-only: the endpoint with quotas off, then on, interleaved cold starts; no other columns."""
    with RemoteStandIn(delay=args.delay_ms / 1000, api_key=API_KEY) as upstream:
        env = endpoint_env(upstream.url, args.threads)
        off = Column("endpoint")
        off.cold_ms = statistics.median(cold_start(lambda: FunctionServer(env, source=args.source))
                                        for _ in range(args.cold_starts)) * 1000
        serve_function(off, args.source, env, args=args, upstream=upstream, use_wrk=use_wrk)
        on, note = measure_quotas(off, env, args=args, upstream=upstream, use_wrk=use_wrk)
    rows = [["p50 latency, c=1 (ms), quotas off", "-", fmt(off.c1.p50_ms, ".2f"), "-", "-", "", ""],
            [f"server CPU s per 1,000 requests, c={args.concurrency}, quotas off", "-", fmt(off.cpu_per_1k, ".3f"),
             "-", "-", "", ""],
            *quota_rows(off, on, note)]
    print()
    print(render_text(rows))
    if on is not None:
        print(f"(quotas on: CPU s per 1,000 requests {fmt(on.cpu_per_1k, '.3f')}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


def targets(fn: Column, node: Column | None, direct: Column) -> list[tuple[str, str, bool | None]]:
    """Issue 17's targets, each: what, the measured figure, met (None = not measurable here)."""
    node_rate = node.c64.rate if node and node.c64 else None
    added_fn = fn.c1.p50_ms - direct.c1.p50_ms
    added_node = node.c1.p50_ms - direct.c1.p50_ms if node and node.c1 else None
    cold_ratio = fn.cold_ms / fn.cold_flask_port_ms if fn.cold_flask_port_ms else None
    return [
        ("cold start to first 200 <= 1.0x the Flask + requests port",
         f"{fmt(cold_ratio, '.2f', 'x')} ({fmt(fn.cold_ms, '.0f')} / {fmt(fn.cold_flask_port_ms, '.0f')} ms)",
         None if cold_ratio is None else cold_ratio <= 1.0),
        ("c=64 throughput >= 1.5x node express",
         f"{fmt(fn.c64.rate / node_rate if node_rate else None, '.2f', 'x')} ({fn.c64.rate:.0f} / {fmt(node_rate, '.0f')} req/s)",
         None if node_rate is None else fn.c64.rate >= 1.5 * node_rate),
        ("server CPU per request <= 0.40 ms", f"{fmt(fn.cpu_per_1k, '.3f')} ms",
         None if fn.cpu_per_1k is None else fn.cpu_per_1k <= 0.40),
        ("added p50 at c=1 <= node's", f"{added_fn:.2f} ms (node {fmt(added_node, '.2f')} ms)",
         None if added_node is None else added_fn <= added_node),
        ("peak RSS < 128 MiB", f"{fmt(fn.rss_mib, '.1f')} MiB", None if fn.rss_mib is None else fn.rss_mib < 128),
    ]


def render_verdict(met: list[tuple[str, str, bool | None]]) -> str:
    width = max(len(what) for what, _, _ in met)
    lines = ["targets (issue 17), this run:"]
    lines += [f"  {verdict(ok):4}  {what.ljust(width)}  {figure}" for what, figure, ok in met]
    missed = [what for what, _, ok in met if ok is False]
    lines.append("  all met" if not missed and all(ok is not None for _, _, ok in met)
                 else f"  missed: {len(missed)}" + ("" if all(ok is not None for _, _, ok in met) else " (some n/a)"))
    return "\n".join(lines)


HEADER = ["figure", "stand-in direct", "endpoint", "node express", "framework floor (no-op fn)", "target", "result"]


def render_text(rows) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *map(line, rows)])


def render_markdown(rows) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("node") else "no node"
    return (f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Node {node}")


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=20.0, help="stand-in's fixed delay (default 20)")
    parser.add_argument("--threads", type=int, default=80,
                        help="THREADS for the endpoint = the function's concurrency setting (default 80)")
    parser.add_argument("--concurrency", type=int, default=64, help="client connections for the rate run")
    parser.add_argument("--c1-seconds", type=float, default=8.0)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--cold-starts", type=int, default=9,
                        help="interleaved cold starts per server (default 9, at most 10): the verdict is a median ratio")
    parser.add_argument("--imports", type=int, default=5)
    parser.add_argument("--no-node", action="store_true", help="skip the Node baseline")
    parser.add_argument("--python-client", action="store_true", help="use the Python load client even if wrk exists")
    parser.add_argument("--source", type=Path, default=FUNCTION_SOURCE, help="function source (default function/main.py)")
    parser.add_argument("--before-rev", default="6ea5ff7",
                        help="git revision whose (Flask) function/ gives the 'before' cold start and import ('' = skip)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument("--quotas-only", action="store_true", help="only the quotas-off / quotas-on pair")
    args = parser.parse_args(argv)
    for name in ("c1_seconds", "rate_seconds", "warmup_seconds"):
        setattr(args, name, min(max(getattr(args, name), 0.5), 60.0))  # bounded whatever the flags say
    args.cold_starts, args.imports = min(max(args.cold_starts, 1), 10), min(max(args.imports, 1), 20)

    if not args.source.exists():
        print(f"{args.source} does not exist yet: nothing to benchmark", file=sys.stderr)
        return 2
    use_wrk = not args.python_client and load.have_wrk()
    if not use_wrk and not args.python_client:
        print(load.WRK_INSTALL_HINT, flush=True)
    if args.quotas_only:
        print(f"machine: {machine()}", flush=True)
        return quotas_only(args, use_wrk)
    node_missing = "--no-node given" if args.no_node else prepare_node()
    if node_missing:
        print(f"Node column unavailable: {node_missing}", flush=True)

    started = time.monotonic()
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"stand-in delay {args.delay_ms:g} ms, endpoint THREADS={args.threads}, load "
          f"{'wrk' if use_wrk else 'python client'}", flush=True)

    with RemoteStandIn(delay=args.delay_ms / 1000, api_key=API_KEY) as upstream:
        env = endpoint_env(upstream.url, args.threads)
        # Interleaved with the no-op function's (the framework's floor: functions-framework's
        # ASGI mode imports Flask too), so that machine noise hits both alike.
        imports, floor_imports, client_imports = [], [], []
        for _ in range(args.imports):
            imports.append(import_seconds(args.source, env))
            floor_imports.append(import_seconds(NOOP_SOURCE, env))
            client_imports.append(client_import_seconds(env))
        imp, floor_imp, client_imp = map(statistics.median, (imports, floor_imports, client_imports))
        print(f"import: {', '.join(f'{x:.3f}' for x in imports)} s; framework floor (no-op fn): "
              f"{', '.join(f'{x:.3f}' for x in floor_imports)} s; pyreqwest import + client after the framework: "
              f"{', '.join(f'{x * 1000:.1f}' for x in client_imports)} ms", flush=True)

        fn_col, node_col, direct = Column("endpoint"), None if node_missing else Column("node"), Column("direct")
        before_dir = tempfile.TemporaryDirectory(prefix="bench-before-")
        before_source = extract_before(args.before_rev, Path(before_dir.name))
        before_cold_ms = before_imp = None
        # Interleaved, so that machine noise hits both alike. The no-op function's cold start is
        # the framework's floor (functions-framework ASGI mode, no HTTP client, no upstream call).
        colds, flask_port_colds, before_colds, floor_colds = [], [], [], []
        flask_port_env = {**env, "FUNCTION_USE_ASGI": "false"}  # functions-framework's default Flask mode
        for _ in range(args.cold_starts):
            colds.append(cold_start(lambda: FunctionServer(env, source=args.source)))
            flask_port_colds.append(cold_start(lambda: FunctionServer(flask_port_env, source=FLASK_PORT_SOURCE)))
            floor_colds.append(cold_start(lambda: FunctionServer(env, source=NOOP_SOURCE)))
            if before_source:
                before_colds.append(cold_start(lambda: FunctionServer({**env, "FUNCTION_USE_ASGI": "false"},
                                                                      source=before_source)))
        fn_col.cold_ms = statistics.median(colds) * 1000
        fn_col.cold_flask_port_ms = statistics.median(flask_port_colds) * 1000
        fn_col.cold_paired_ratio = statistics.median(a / b for a, b in zip(colds, flask_port_colds))
        print(f"cold start: {', '.join(f'{x * 1000:.0f}' for x in colds)} ms; Flask + requests port: "
              f"{', '.join(f'{x * 1000:.0f}' for x in flask_port_colds)} ms; framework floor (no-op fn): "
              f"{', '.join(f'{x * 1000:.0f}' for x in floor_colds)} ms", flush=True)
        if before_source:
            before_cold_ms = statistics.median(before_colds) * 1000
            before_imp = statistics.median(import_seconds(before_source, env) for _ in range(args.imports))
            print(f"before ({args.before_rev}, Flask): cold start "
                  f"{', '.join(f'{x * 1000:.0f}' for x in before_colds)} ms, import {before_imp:.3f} s", flush=True)
        else:
            print(f"no 'before' figures: git could not extract {args.before_rev!r}", flush=True)
        before_dir.cleanup()
        if node_col:
            node_colds = [cold_start(lambda: NodeServer(upstream.url)) for _ in range(args.cold_starts)]
            node_col.cold_ms = statistics.median(node_colds) * 1000
        print("cold starts done", flush=True)

        auth = {"Authorization": f"Bearer {API_KEY}"}
        measure(direct, upstream.url, f"/v1/realtime/sessions?agent_id={AGENT_ID}", b"", auth, args=args,
                upstream=upstream, use_wrk=use_wrk)
        print("stand-in direct done", flush=True)

        serve_function(fn_col, args.source, env, args=args, upstream=upstream, use_wrk=use_wrk)
        print("endpoint done", flush=True)
        quota_col, quota_note = measure_quotas(fn_col, env, args=args, upstream=upstream, use_wrk=use_wrk)
        print("quotas on done" if quota_col else f"quotas on skipped: {quota_note}", flush=True)
        floor = Column("floor", cold_ms=statistics.median(floor_colds) * 1000)
        serve_function(floor, NOOP_SOURCE, env, args=args, upstream=upstream, use_wrk=use_wrk)
        floor.conns = floor.conns_requests = None

        if node_col:
            node = NodeServer(upstream.url).start()
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        if post(node.url, "/token", TOKEN_BODY, {}) == 200:
                            break
                    except OSError:
                        time.sleep(0.05)
                measure(node_col, node.url, "/token", TOKEN_BODY, {}, args=args,
                        pids=lambda: procstat.tree(node.process.pid), upstream=upstream, use_wrk=use_wrk)
                node_col.rss_mib = procstat.status_kib(node.process.pid, "VmHWM") / MIB
            finally:
                node.stop()
            print("node done", flush=True)

    rows = build_rows(direct, fn_col, node_col, floor, imp, args, before_cold_ms, before_imp, floor_imp, client_imp)
    rows += quota_rows(fn_col, quota_col, quota_note)
    print()
    print(render_text(rows))
    print()
    print(render_verdict(targets(fn_col, node_col, direct)))
    print(f"\n(stand-in delay {args.delay_ms:g} ms; endpoint = functions-framework ASGI mode, gunicorn + "
          f"1 uvicorn worker (uvloop, httptools), THREADS={args.threads}; load = {'wrk' if use_wrk else 'python client'}; "
          f"bench took {time.monotonic() - started:.0f} s; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if node_missing:
        print(f"Node column unavailable: {node_missing}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. "
                                 f"Stand-in delay {args.delay_ms:g} ms, THREADS={args.threads}, "
                                 f"load generator {'wrk' if use_wrk else 'Python client'}.\n\n"
                                 + render_markdown(rows) + "\n\n"
                                 + render_verdict(targets(fn_col, node_col, direct)) + "\n")
        print(f"markdown table written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
