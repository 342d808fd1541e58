"""`make smoke STACK=dev|prod`: check a deployed (or `make run`) token endpoint from outside.

Run it after `pulumi up`. It reads the stack's outputs (`pulumi stack output --json`) for
`tokenUrl` (and, in prod, `ipAddress`), or takes `--url`; what it expects comes from the
stack's own config file (Pulumi.<stack>.yaml: allowedHostnames, authEnabled, callerAuth).
One line per check, PASS / FAIL / SKIP (with the reason); exit status 1 if any check failed,
2 if it could not start (no URL, no stack file).

Checks, every stack: the preflight from an allowed origin (204 + the CORS headers of the HTTP
contract), a foreign origin refused with 403 and no Access-Control-Allow-Origin, a POST
without caller credentials refused with 401 where the stack verifies callers, and, with
`--agent-id`, one real mint (200, `client_secret.value` present; the value is never printed).
Prod (the load balancer, `authEnabled: true`) adds: the domain resolves to `ipAddress`, TLS
1.2 or newer negotiated with a valid certificate, TLS 1.0 / 1.1 refused, `:80` redirecting
with 308 to https, an unknown Host answered 404 by the load balancer on :443 and :80.

    make smoke STACK=dev URL=http://localhost:8080/token AGENT=<agent-id>   # against make run
    make smoke STACK=prod AGENT=<agent-id> SMOKE_ID_TOKEN=<a caller's ID token>
    python -m tools.smoke --stack prod --url https://token.example.com/token --agent-id A \\
        --resolve token.example.com:203.0.113.7 --ca-bundle ca.pem
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
FOREIGN_ORIGIN = "https://smoke-foreign-origin.invalid"  # .invalid never resolves (RFC 6761)
UNKNOWN_HOST = "smoke-unknown-host.invalid"
PLACEHOLDER_AGENT = "smoke-check"  # only in requests that must be refused before any mint
MIN_MAX_AGE = 600
TIMEOUT = 15.0

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class SmokeError(Exception):
    """The smoke run cannot start (no URL, no stack config): one line, exit status 2."""


@dataclass
class Result:
    status: str
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


@dataclass
class Target:
    """Where to send requests and what the stack says to expect."""
    url: str
    edge: bool  # prod: the load balancer in front (TLS policy, :80 redirect, host check)
    origin: str
    allowlist: tuple[str, ...]  # allowedHostnames; empty = any origin
    verifies_callers: bool  # callerAuth.idToken / appCheck set
    caller_note: str = ""  # why no caller check is expected
    ip_address: str = ""  # prod: the `ipAddress` output
    resolve: dict[str, str] = field(default_factory=dict)  # hostname -> address (--resolve)
    ca_bundle: Optional[str] = None
    http_port: int = 80
    timeout: float = TIMEOUT

    @property
    def parts(self):
        return urlsplit(self.url)

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        return self.parts.port or (443 if self.parts.scheme == "https" else 80)

    @property
    def path(self) -> str:
        return self.parts.path or "/"

    def address(self, host: Optional[str] = None) -> str:
        host = host or self.host
        return self.resolve.get(host.lower(), host)

    def tls_context(self) -> ssl.SSLContext:
        """A verifying client context (system CAs, or --ca-bundle) that offers TLS 1.2+ only."""
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def code(self) -> str:
        data = self.json()
        return str(data.get("error")) if isinstance(data, dict) and "error" in data else "no error code"


def request(target: Target, method: str, headers: dict[str, str], body: bytes = b"", *,
            scheme: Optional[str] = None, port: Optional[int] = None, host_header: Optional[str] = None) -> Answer:
    """One HTTP request to the target's host (resolved through --resolve), without following
    redirects. `host_header` replaces the Host header only (TLS still names the real host)."""
    scheme = scheme or target.parts.scheme
    port = port or target.port
    address = target.address()
    if scheme == "https":
        conn = http.client.HTTPSConnection(address, port, timeout=target.timeout, context=target.tls_context())
        # Connect to the resolved address but verify (and send SNI for) the real hostname.
        conn.host = target.host
        conn._create_connection = lambda addr, *a, **kw: socket.create_connection((address, port), *a, **kw)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=target.timeout)
    try:
        conn.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
        default_port = 443 if scheme == "https" else 80
        conn.putheader("Host", host_header or (target.host if port == default_port else f"{target.host}:{port}"))
        conn.putheader("User-Agent", "outspeed-token-smoke")
        for name, value in headers.items():
            conn.putheader(name, value)
        if body or method == "POST":
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"certificate not valid ({exc.verify_message}); a new Google-managed certificate "
                "stays PROVISIONING until the domain's A record resolves to ipAddress")
    return f"{type(exc).__name__}: {exc}"


# --- the checks: each returns one Result --------------------------------------------------------

def check_preflight(t: Target) -> Result:
    name = f"preflight from {t.origin}"
    a = request(t, "OPTIONS", {"Origin": t.origin, "Access-Control-Request-Method": "POST",
                               "Access-Control-Request-Headers": "content-type"})
    problems = []
    if a.status != 204:
        problems.append(f"status {a.status} ({a.code()}), expected 204")
    want_origin = t.origin if t.allowlist else "*"
    if a.header("access-control-allow-origin") != want_origin:
        problems.append(f"Access-Control-Allow-Origin {a.header('access-control-allow-origin')!r}, expected {want_origin!r}")
    if t.allowlist and "origin" not in a.header("vary").lower():
        problems.append("no Vary: Origin with an echoed origin")
    if "POST" not in a.header("access-control-allow-methods").upper():
        problems.append(f"Access-Control-Allow-Methods {a.header('access-control-allow-methods')!r} lacks POST")
    if "content-type" not in a.header("access-control-allow-headers").lower():
        problems.append(f"Access-Control-Allow-Headers {a.header('access-control-allow-headers')!r} lacks Content-Type")
    max_age = a.header("access-control-max-age")
    if not max_age.isdigit() or int(max_age) < MIN_MAX_AGE:
        problems.append(f"Access-Control-Max-Age {max_age!r}, expected >= {MIN_MAX_AGE}")
    if problems:
        return Result(FAIL, name, "; ".join(problems))
    return Result(PASS, name, f"204, Allow-Origin {want_origin}, Allow-Methods {a.header('access-control-allow-methods')}, "
                              f"Max-Age {max_age}")


def check_foreign_origin(t: Target) -> Result:
    name = f"foreign origin {FOREIGN_ORIGIN}"
    if not t.allowlist:
        return Result(SKIP, name, "allowedHostnames is empty: the stack serves any origin")
    problems, seen = [], []
    for method, headers, body in (
            ("OPTIONS", {"Access-Control-Request-Method": "POST"}, b""),
            ("POST", {"Content-Type": "application/json"}, json.dumps({"agentId": PLACEHOLDER_AGENT}).encode())):
        a = request(t, method, {"Origin": FOREIGN_ORIGIN, **headers}, body)
        seen.append(f"{method} {a.status}")
        if a.status != 403:
            problems.append(f"{method} answered {a.status}, expected 403")
        if a.header("access-control-allow-origin"):
            problems.append(f"{method} carries Access-Control-Allow-Origin {a.header('access-control-allow-origin')!r}")
    if problems:
        return Result(FAIL, name, "; ".join(problems))
    return Result(PASS, name, f"refused ({', '.join(seen)}), no Access-Control-Allow-Origin")


def check_no_credentials(t: Target) -> Result:
    name = "POST without caller credentials"
    if not t.verifies_callers:
        return Result(SKIP, name, t.caller_note or "the stack sets no callerAuth: such a POST is served")
    a = request(t, "POST", {"Origin": t.origin, "Content-Type": "application/json"},
                json.dumps({"agentId": PLACEHOLDER_AGENT}).encode())
    if a.status != 401:
        return Result(FAIL, name, f"status {a.status} ({a.code()}), expected 401")
    return Result(PASS, name, f"401 {a.code()}")


def check_dns(t: Target) -> Result:
    name = f"DNS {t.host}"
    if t.host.lower() in t.resolve:
        return Result(SKIP, name, f"--resolve maps it to {t.resolve[t.host.lower()]}")
    if not t.ip_address:
        return Result(SKIP, name, "no ipAddress output to compare with (--url without the stack's outputs)")
    try:
        found = sorted({info[4][0] for info in socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)})
    except OSError as exc:
        return Result(FAIL, name, f"does not resolve ({exc}); create an A record pointing at {t.ip_address}")
    if t.ip_address not in found:
        return Result(FAIL, name, f"resolves to {', '.join(found)}, not ipAddress {t.ip_address}: fix the A record")
    return Result(PASS, name, f"resolves to ipAddress {t.ip_address}")


def _handshake(t: Target, ctx: ssl.SSLContext) -> str:
    with socket.create_connection((t.address(), t.port), timeout=t.timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=t.host) as tls:
            return tls.version() or "?"


def check_tls_modern(t: Target) -> Result:
    name = "TLS 1.2+"
    try:
        version = _handshake(t, t.tls_context())
    except (OSError, ssl.SSLError) as exc:
        return Result(FAIL, name, f"no verified TLS 1.2+ handshake with {t.host}:{t.port}: {_describe(exc)}")
    return Result(PASS, name, f"negotiated {version}, certificate valid for {t.host}")


def _old_tls_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    with warnings.catch_warnings():  # offering them is the point of this probe
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # only the protocol version matters here
        ctx.minimum_version = version
        ctx.maximum_version = version
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.0/1.1 only at level 0
    return ctx


def check_tls_old(t: Target, label: str, version_name: str) -> Result:
    name = f"{label} refused"
    version = getattr(ssl.TLSVersion, version_name, None)
    if version is None or not getattr(ssl, "HAS_" + version_name, False):
        return Result(SKIP, name, f"not checkable here: this Python's OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer {label}")
    try:
        ctx = _old_tls_context(version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            negotiated = _handshake(t, ctx)
    except ssl.SSLError as exc:
        if exc.reason in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
            return Result(SKIP, name, f"not checkable here: the local OpenSSL ({ssl.OPENSSL_VERSION}) "
                                      f"would not offer {label} ({exc.reason})")
        return Result(PASS, name, f"handshake refused ({exc.reason or exc})")
    except ValueError as exc:
        return Result(SKIP, name, f"not checkable here: {exc}")
    except ConnectionResetError:
        return Result(PASS, name, "handshake refused (connection reset)")
    except OSError as exc:
        return Result(FAIL, name, f"could not connect to {t.host}:{t.port}: {_describe(exc)}")
    return Result(FAIL, name, f"the server accepted a {negotiated} handshake; the SSL policy should set minTlsVersion TLS_1_2")


def check_http_redirect(t: Target) -> Result:
    name = f"http://{t.host}:{t.http_port} redirect"
    try:
        a = request(t, "GET", {}, scheme="http", port=t.http_port,
                    host_header=t.host if t.http_port == 80 else f"{t.host}:{t.http_port}")
    except OSError as exc:
        return Result(FAIL, name, f"no answer on port {t.http_port}: {_describe(exc)}")
    location = urlsplit(a.header("location"))
    if a.status != 308:
        return Result(FAIL, name, f"status {a.status}, expected 308 (a 301/302 may turn a POST into a GET)")
    if location.scheme != "https" or (location.hostname or "").lower() != t.host.lower() or location.path != t.path:
        return Result(FAIL, name, f"308 to {a.header('location')!r}, expected https://{t.host}{t.path}")
    return Result(PASS, name, f"308 to {a.header('location')}")


def check_unknown_host(t: Target, scheme: str) -> Result:
    port = t.port if scheme == "https" else t.http_port
    name = f"unknown Host on {scheme} :{port}"
    try:
        a = request(t, "OPTIONS" if scheme == "https" else "GET", {"Origin": t.origin}, scheme=scheme, port=port,
                    host_header=UNKNOWN_HOST)
    except OSError as exc:
        return Result(FAIL, name, f"no answer: {_describe(exc)}")
    if a.status != 404:
        return Result(FAIL, name, f"status {a.status} for Host {UNKNOWN_HOST}, expected the load balancer's 404")
    if a.header("access-control-allow-origin"):
        return Result(FAIL, name, "404 but with Access-Control-Allow-Origin: the request reached the function")
    return Result(PASS, name, f"404 for Host {UNKNOWN_HOST}")


def check_mint(t: Target, agent_id: str, id_token: str, app_check_token: str) -> Result:
    if not agent_id:
        return Result(SKIP, "mint", "pass --agent-id (make smoke AGENT=...) to mint one real key"
                      + (" with --id-token / --app-check-token" if t.verifies_callers else ""))
    name = f"mint for agent {agent_id}"
    if t.verifies_callers and not (id_token or app_check_token):
        return Result(SKIP, name, "the stack verifies callers: pass --id-token (SMOKE_ID_TOKEN) and/or "
                                  "--app-check-token (SMOKE_APP_CHECK_TOKEN)")
    headers = {"Origin": t.origin, "Content-Type": "application/json"}
    if id_token:
        headers["Authorization"] = f"Bearer {id_token}"
    if app_check_token:
        headers["X-Firebase-AppCheck"] = app_check_token
    a = request(t, "POST", headers, json.dumps({"agentId": agent_id}).encode())
    if a.status != 200:
        return Result(FAIL, name, f"status {a.status} {a.code()}: {_message(a)}")
    data = a.json()
    secret = data.get("client_secret") if isinstance(data, dict) else None
    value = secret.get("value") if isinstance(secret, dict) else None
    problems = []
    if not isinstance(value, str) or not value:
        problems.append("200 without client_secret.value")
    if "no-store" not in a.header("cache-control"):
        problems.append(f"Cache-Control {a.header('cache-control')!r}, expected no-store")
    want_origin = t.origin if t.allowlist else "*"
    if a.header("access-control-allow-origin") != want_origin:
        problems.append(f"Access-Control-Allow-Origin {a.header('access-control-allow-origin')!r}, expected {want_origin!r}")
    if problems:
        return Result(FAIL, name, "; ".join(problems))
    expires = secret.get("expires_at")
    # Never the key itself: its length only, so the line proves a key came back.
    return Result(PASS, name, f"200, client_secret.value present ({len(value)} characters, not shown)"
                              + (f", expires_at {expires}" if expires is not None else ""))


def _message(a: Answer) -> str:
    data = a.json()
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"][:200]
    return f"{len(a.body)} bytes of {a.header('content-type') or 'unknown type'}"


def checks(t: Target, agent_id: str = "", id_token: str = "",
           app_check_token: str = "") -> list[tuple[str, Callable[[], Result]]]:
    """(name for a crash line, check) in the order they run."""
    dev_only = "prod only: the dev stack has no load balancer (the function's own URL)"
    run = [("preflight", lambda: check_preflight(t)), ("foreign origin", lambda: check_foreign_origin(t)),
           ("POST without caller credentials", lambda: check_no_credentials(t))]
    if t.edge:
        run += [("DNS", lambda: check_dns(t)), ("TLS 1.2+", lambda: check_tls_modern(t)),
                ("TLS 1.1 refused", lambda: check_tls_old(t, "TLS 1.1", "TLSv1_1")),
                ("TLS 1.0 refused", lambda: check_tls_old(t, "TLS 1.0", "TLSv1")),
                ("redirect", lambda: check_http_redirect(t)),
                ("unknown Host on https", lambda: check_unknown_host(t, "https")),
                ("unknown Host on http", lambda: check_unknown_host(t, "http"))]
    else:
        run.append(("prod only", lambda: Result(SKIP, "TLS, :80 redirect, unknown Host", dev_only)))
    run.append(("mint", lambda: check_mint(t, agent_id, id_token, app_check_token)))
    return run


def run_checks(t: Target, out=sys.stdout, **mint) -> list[Result]:
    results = []
    for name, check in checks(t, **mint):
        try:
            result = check()
        except (OSError, http.client.HTTPException) as exc:  # no answer at all: that check fails
            result = Result(FAIL, name, _describe(exc))
        results.append(result)
        print(result.line(), file=out, flush=True)
    return results


# --- where the endpoint is and what to expect -----------------------------------------------------

def stack_outputs(stack: str, cwd: Path = ROOT) -> dict:
    try:
        done = subprocess.run(["pulumi", "stack", "output", "--json", "--stack", stack], cwd=cwd,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)  # never a hidden passphrase prompt
    except FileNotFoundError:
        raise SmokeError("the Pulumi CLI (`pulumi`) is not on PATH, so the stack's outputs cannot be read: "
                         "install it, or pass the endpoint yourself: --url <tokenUrl> (make smoke URL=...)") from None
    if done.returncode != 0:
        raise SmokeError(f"`pulumi stack output --json --stack {stack}` failed: "
                         + ((done.stderr or done.stdout).strip() or "(no output)"))
    try:
        outputs = json.loads(done.stdout)
    except ValueError:
        raise SmokeError(f"`pulumi stack output --json --stack {stack}` printed no JSON") from None
    if not isinstance(outputs, dict) or not outputs.get("tokenUrl"):
        raise SmokeError(f"stack {stack} has no tokenUrl output: has `pulumi up` completed?")
    return outputs


def default_origin(hostname: str, https_only: bool) -> str:
    loopback = hostname in ("localhost", "127.0.0.1", "::1")
    return f"{'http' if loopback and not https_only else 'https'}://{hostname}"


def _resolve_map(entries: list[str]) -> dict[str, str]:
    out = {}
    for entry in entries:
        host, sep, address = entry.rpartition(":") if entry.count(":") == 1 else entry.partition(":")
        if not sep or not host or not address:
            raise SmokeError(f"--resolve {entry!r}: expected HOST:ADDRESS (e.g. token.example.com:203.0.113.7)")
        out[host.lower()] = address
    return out


def build_target(args: argparse.Namespace) -> Target:
    from outspeed_token import settings as infra_settings, stackfiles  # pure modules: no Pulumi engine

    try:
        parsed = infra_settings.parse_mapping(stackfiles.project_values(stackfiles.stack_config(args.stack, args.root)))
    except FileNotFoundError:
        raise SmokeError(f"no Pulumi.{args.stack}.yaml in {args.root}: smoke reads what to expect "
                         "(allowedHostnames, authEnabled, callerAuth) from the stack's config file") from None
    except infra_settings.ConfigError as exc:
        raise SmokeError(f"the {args.stack} stack's config is invalid: {exc}") from None
    outputs = {} if args.url else stack_outputs(args.stack, args.root)
    url = args.url or outputs["tokenUrl"]
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise SmokeError(f"--url {url!r}: expected http(s)://host[:port]/token")
    edge = parsed.edge_enabled if args.edge is None else args.edge
    allowlist = parsed.allowed_hostnames
    if args.origin:
        origin = args.origin
    elif allowlist:
        origin = default_origin(allowlist[0], parsed.https_origins_only)
    else:
        origin = "https://smoke-any-origin.invalid"  # no allowlist: any origin is served
    caller_auth = parsed.caller_auth
    note = ""
    if caller_auth.anonymous:
        note = "callerAuth.anonymous is true: this stack deliberately serves callers without tokens"
    elif not caller_auth.verifies_callers:
        note = f"the {args.stack} stack sets no callerAuth: a POST without tokens is served"
    return Target(url=url, edge=edge, origin=origin, allowlist=allowlist,
                  verifies_callers=caller_auth.verifies_callers, caller_note=note,
                  ip_address=str(outputs.get("ipAddress") or args.ip_address or ""),
                  resolve=_resolve_map(args.resolve), ca_bundle=args.ca_bundle, http_port=args.http_port,
                  timeout=args.timeout)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", default="dev", help="stack whose config (and outputs) to use (default dev)")
    p.add_argument("--url", help="the endpoint (tokenUrl); default: `pulumi stack output tokenUrl`")
    p.add_argument("--origin", help="an allowed origin (default: the first allowedHostnames entry)")
    p.add_argument("--agent-id", default=os.environ.get("SMOKE_AGENT_ID", ""),
                   help="mint one real key for this agent (env SMOKE_AGENT_ID); without it the mint is skipped")
    p.add_argument("--id-token", default=os.environ.get("SMOKE_ID_TOKEN", ""),
                   help="a caller's ID token for the mint (prefer env SMOKE_ID_TOKEN: argv is visible to `ps`)")
    p.add_argument("--app-check-token", default=os.environ.get("SMOKE_APP_CHECK_TOKEN", ""),
                   help="a Firebase App Check token for the mint (prefer env SMOKE_APP_CHECK_TOKEN)")
    p.add_argument("--edge", action=argparse.BooleanOptionalAction, default=None,
                   help="run the load-balancer checks (default: the stack's authEnabled)")
    p.add_argument("--ip-address", default="", help="expected address of the domain (default: the ipAddress output)")
    p.add_argument("--resolve", action="append", default=[], metavar="HOST:ADDRESS",
                   help="connect to ADDRESS for HOST (like curl --resolve; TLS still verifies HOST)")
    p.add_argument("--ca-bundle", help="PEM file of CAs to trust instead of the system's")
    p.add_argument("--http-port", type=int, default=80, help="the plain-HTTP port of the load balancer (default 80)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per request (default {TIMEOUT:g})")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests: Pulumi.yaml + stack file
    return p.parse_args(argv)


def main(argv=None, out=sys.stdout) -> int:
    args = parse_args(argv)
    try:
        target = build_target(args)
    except SmokeError as exc:
        print(f"smoke: {exc}", file=out)
        return 2
    mode = "prod (load balancer)" if target.edge else "dev (the function's own URL)"
    print(f"smoke: stack {args.stack}, {mode} checks: {target.url} (allowed origin {target.origin})", file=out, flush=True)
    results = run_checks(target, out=out, agent_id=args.agent_id, id_token=args.id_token,
                         app_check_token=args.app_check_token)
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    print(f"smoke: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped", file=out)
    return 1 if counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
