"""Caller-authentication figures (issue 8), next to `make bench`'s: what turning the ID-token
and App Check checks on costs.

- import of function/main.py with and without AUTH_* set (target < 0.25 s; keys are fetched
  on first need and PyJWT is loaded on the first token, never at import);
- cold start to the first 200, without auth and with an ID token checked against the local
  demo issuer (OIDC discovery + JWKS over loopback: the figure includes the first key fetch);
- CPU per verified token in process, keys cached (RS256 and ES256).

Variants are interleaved so machine noise hits each alike.

    .venv/bin/python -m bench.auth [--runs 7] [--cold-starts 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from bench.run import API_KEY, cold_start, endpoint_env, import_seconds
from tools.demo_issuer import DemoIssuer
from tools.function_server import FUNCTION_SOURCE, FunctionServer
from tools.outspeed_standin import OutspeedStandIn

BASE = {"OUTSPEED_API_KEY": "bench-key", "FUNCTION_USE_ASGI": "true"}
FIREBASE = {"AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/demo-project", "AUTH_ID_TOKEN_AUDIENCE": "demo-project"}
IMPORT_VARIANTS = {
    "no caller auth": {},
    "ID token": FIREBASE,
    "ID token + App Check": {**FIREBASE, "AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"},
}


def verify_cpu(issuer: DemoIssuer, alg: str, rounds: int = 2000) -> float:
    """CPU seconds per Authenticator.check of one valid token, keys cached."""
    sys.path.insert(0, str(FUNCTION_SOURCE.parent))
    import token_caller
    import token_settings
    from token_upstream import Fetched

    settings = token_settings.from_env({"AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_AUDIENCE": issuer.audience,
                                        "AUTH_ID_TOKEN_JWKS_URI": issuer.jwks_uri})

    async def fetch(url, *, timeout, max_bytes):
        return Fetched(200, {}, json.dumps(issuer.jwks()).encode())

    async def run() -> float:
        auth = token_caller.Authenticator(settings.caller_auth, fetch)
        header = "Bearer " + issuer.id_token(alg=alg)
        assert isinstance(await auth.check(header, None), token_caller.Caller)
        began = time.process_time()
        for _ in range(rounds):
            await auth.check(header, None)
        return (time.process_time() - began) / rounds
    return asyncio.run(run())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="imports per variant")
    parser.add_argument("--cold-starts", type=int, default=3)
    args = parser.parse_args(argv)
    runs, colds = min(max(args.runs, 1), 30), min(max(args.cold_starts, 1), 10)

    imports: dict[str, list[float]] = {name: [] for name in IMPORT_VARIANTS}
    for _ in range(runs):
        for name, env in IMPORT_VARIANTS.items():
            imports[name].append(import_seconds(FUNCTION_SOURCE, {**BASE, **env}))
    for name, samples in imports.items():
        print(f"import function/main.py, {name}: median {statistics.median(samples):.3f} s over {runs} "
              f"(min {min(samples):.3f}, max {max(samples):.3f})", flush=True)

    with OutspeedStandIn(api_key=API_KEY, record=False) as upstream, DemoIssuer() as issuer:
        plain = endpoint_env(upstream.url, 80)
        authed = {**plain, "AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_AUDIENCE": issuer.audience}
        token = issuer.id_token(lifetime=3600)
        starts: dict[str, list[float]] = {"no caller auth": [], "ID token (demo issuer, discovery)": []}
        for _ in range(colds):
            starts["no caller auth"].append(cold_start(lambda: FunctionServer(plain)))
            starts["ID token (demo issuer, discovery)"].append(cold_start(lambda: FunctionServer(authed),
                                                                        headers={"Authorization": f"Bearer {token}"}))
        for name, samples in starts.items():
            print(f"cold start to first 200, {name}: median {statistics.median(samples) * 1000:.0f} ms over {colds} "
                  f"({', '.join(f'{s * 1000:.0f}' for s in samples)})", flush=True)
        for alg in ("RS256", "ES256"):
            print(f"CPU per verified ID token, {alg}, keys cached: {verify_cpu(issuer, alg) * 1000:.3f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
