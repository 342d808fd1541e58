"""App Check replay protection (issue 16): what `consume: true` adds to a request, locally.

Two endpoints side by side, both checking App Check tokens against the local demo issuer; one
also consumes each token at a loopback stand-in for Firebase's verifyAppCheckToken (and gets
its access token from the stand-in's metadata server, once). One client, one request at a
time (c=1), a fresh token per request, variants interleaved in rounds so machine noise hits
both alike. The Outspeed stand-in answers at once, so the difference is the consumption:
one more HTTP round trip over loopback, plus its JSON, on the endpoint's event loop.

Deployed, the round trip goes to firebaseappcheck.googleapis.com instead: add Google's own
answer time, which this script cannot measure.

    .venv/bin/python -m bench.consume [--requests 400] [--rounds 8]
"""
from __future__ import annotations

import argparse
import http.client
import json
import secrets
import statistics
import time

from tools.appcheck_standin import AppCheckStandIn
from tools.demo_issuer import DemoIssuer
from tools.function_server import FunctionServer
from tools.outspeed_standin import OutspeedStandIn

API_KEY = "bench-api-key-" + "x" * 24
PROJECT = "123456789012"
APP_ID = f"1:{PROJECT}:web:0a1b2c3d"
BODY = json.dumps({"agentId": "bench-agent"}).encode()


def timed_posts(port: int, tokens: list[str]) -> list[float]:
    """Milliseconds per request, one keep-alive connection, one request at a time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for token in tokens:
            started = time.perf_counter()
            conn.request("POST", "/token", BODY, {"Content-Type": "application/json", "X-Firebase-AppCheck": token})
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: the bench needs every request to mint")
    finally:
        conn.close()
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per variant")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    per_round = max(1, args.requests // args.rounds)

    with OutspeedStandIn(api_key=API_KEY, record=False) as upstream, DemoIssuer() as issuer, \
            AppCheckStandIn(PROJECT, issuer=issuer) as google:
        base = {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url, "THREADS": "8",
                "AUTH_APP_CHECK_PROJECT_NUMBER": PROJECT, "AUTH_APP_CHECK_JWKS_URI": issuer.jwks_uri,
                "AUTH_APP_CHECK_API_BASE": google.url, "GCE_METADATA_HOST": google.metadata_host}
        servers = {"local checks only": FunctionServer({**base, "AUTH_APP_CHECK_CONSUME": "false"}),
                   "consume: true": FunctionServer({**base, "AUTH_APP_CHECK_CONSUME": "true"})}
        try:
            for server in servers.values():
                server.start()

            def tokens(n: int) -> list[str]:
                return [issuer.app_check_token(PROJECT, APP_ID, jti=secrets.token_hex(8)) for _ in range(n)]

            for server in servers.values():  # warm: keys fetched, PyJWT loaded, access token cached
                timed_posts(server.port, tokens(20))
            results: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    results[name] += timed_posts(server.port, tokens(per_round))
        finally:
            for server in servers.values():
                server.stop()
        fetches, calls = google.metadata_fetches, google.verify_calls

    print(f"c=1, {per_round * args.rounds} requests per variant, {args.rounds} interleaved rounds, loopback stand-ins")
    print(f"{'variant':<20} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, times in results.items():
        print(f"{name:<20} {pct(times, 50):8.2f} {pct(times, 90):8.2f} {pct(times, 99):8.2f}")
    off, on = results["local checks only"], results["consume: true"]
    print(f"added by consumption: p50 {pct(on, 50) - pct(off, 50):+.2f} ms, p90 {pct(on, 90) - pct(off, 90):+.2f} ms")
    print(f"metadata token fetches: {fetches}; verify calls: {calls}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
