"""Import time of function/main.py with and without caller authentication configured (issue 8:
both < 0.25 s; the key fetches happen on first need, never at import). Medians of fresh
interpreters, as `make bench` measures the plain import.

    .venv/bin/python -m bench.auth_import [--runs 9]
"""
from __future__ import annotations

import argparse
import statistics

from bench.run import import_seconds
from tools.function_server import FUNCTION_SOURCE

BASE = {"OUTSPEED_API_KEY": "bench-key", "FUNCTION_USE_ASGI": "true"}
VARIANTS = {
    "no caller auth": {},
    "ID token (discovery)": {"AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/demo-project",
                             "AUTH_ID_TOKEN_AUDIENCE": "demo-project"},
    "ID token + App Check": {"AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/demo-project",
                             "AUTH_ID_TOKEN_AUDIENCE": "demo-project",
                             "AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth_import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    runs = min(max(args.runs, 1), 30)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(runs):  # interleaved: machine noise hits every variant alike
        for name, env in VARIANTS.items():
            times[name].append(import_seconds(FUNCTION_SOURCE, {**BASE, **env}))
    worst = 0.0
    for name, samples in times.items():
        median = statistics.median(samples)
        worst = max(worst, median)
        print(f"import function/main.py, {name}: median {median:.3f} s over {runs} "
              f"(min {min(samples):.3f}, max {max(samples):.3f})")
    print(f"target < 0.25 s: {'PASS' if worst < 0.25 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
