"""A local OIDC issuer for `make run AUTH=demo` and the tests: loopback only, keys made at start.

It plays the part Firebase Auth / Auth0 / Clerk (and Firebase App Check) play in production:
- `GET /.well-known/openid-configuration`: `issuer` and `jwks_uri`, as OIDC discovery serves them;
- `GET /jwks`: the public keys (an RSA and an EC P-256 key, made at start), with
  `Cache-Control: public, max-age=<max_age>`;
- `POST /demo/sign-in` (the example page's "Sign in (demo)" button): a signed demo ID token for
  `{"name": ...}`, with CORS so a page on another local port can call it;
- `sign(...)` / `id_token(...)` / `app_check_token(...)` in-process, for tests (any claims, any
  header, any key: also the malformed tokens an attacker would send).

Scripted behaviours for tests: `behaviour = "ok" | "outage" (500) | "slow" (answers after
`slow_seconds`) | "garbage" (200, not JSON)`, `rotate()` (new keys, old ones gone), and `hits`
(requests per path), so a test can count how often the endpoint fetched keys.

    with DemoIssuer() as issuer:
        token = issuer.id_token(sub="user-1", audience="my-app")
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tools.served import ServedInThread

BIND_HOST = "127.0.0.1"  # never reachable from another machine: it signs tokens for anyone
DEMO_AUDIENCE = "outspeed-token-demo"
MAX_SLOW_SECONDS = 30.0


class SigningKey:
    """A private key with its kid and algorithm; `jwk()` is the public half as a JWKS entry."""

    def __init__(self, alg: str, kid: str | None = None):
        self.alg = alg
        self.kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        if alg.startswith("ES"):
            self.private = ec.generate_private_key(ec.SECP256R1())
            algorithm = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algorithm = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
        self.public = self.private.public_key()
        self._public_jwk = algorithm.to_jwk(self.public, as_dict=True)

    def jwk(self) -> dict[str, Any]:
        return {**self._public_jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", extra=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _scripted(self) -> bool:
        """Apply the test's scripted behaviour; True when it already answered."""
        issuer = self.server.issuer
        if issuer.behaviour == "slow":
            time.sleep(min(issuer.slow_seconds, MAX_SLOW_SECONDS))
        elif issuer.behaviour == "outage":
            self._send(500, b'{"error": "scripted outage"}')
            return True
        elif issuer.behaviour == "garbage":
            self._send(200, b"<html>not json</html>", "text/html")
            return True
        return False

    def do_GET(self):
        issuer = self.server.issuer
        path = self.path.split("?", 1)[0]
        issuer.count(path)
        if path not in ("/.well-known/openid-configuration", "/jwks"):
            self._send(404, b'{"error": "not found"}')
            return
        if self._scripted():
            return
        cache = (("Cache-Control", f"public, max-age={issuer.max_age}"),)
        if path == "/jwks":
            self._send(200, json.dumps(issuer.jwks()).encode(), extra=cache)
        else:
            self._send(200, json.dumps({"issuer": issuer.issuer, "jwks_uri": issuer.jwks_uri,
                                        "id_token_signing_alg_values_supported": ["RS256", "ES256"]}).encode(),
                       extra=cache)

    def _cors(self) -> tuple[tuple[str, str], ...]:
        return (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST"),
                ("Access-Control-Allow-Headers", "Content-Type"), ("Cache-Control", "no-store"))

    def do_OPTIONS(self):
        self.server.issuer.count(self.path)
        self._send(204, b"", extra=self._cors())

    def do_POST(self):
        issuer = self.server.issuer
        issuer.count(self.path)
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        raw = self.rfile.read(length)
        if self.path != "/demo/sign-in":
            self._send(404, b'{"error": "not found"}', extra=self._cors())
            return
        try:
            name = str(json.loads(raw or b"{}").get("name") or "demo-user")[:64]
        except (ValueError, AttributeError):
            name = "demo-user"
        token = issuer.id_token(sub=name, name=name)
        self._send(200, json.dumps({"idToken": token, "expiresIn": issuer.token_lifetime}).encode(),
                   extra=self._cors())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    issuer: "DemoIssuer"


class DemoIssuer(ServedInThread):
    def __init__(self, *, port: int = 0, audience: str = DEMO_AUDIENCE, max_age: int = 3600,
                 token_lifetime: int = 3600):
        self.server = _Server((BIND_HOST, port), _Handler)
        self.server.issuer = self
        self.port = self.server.server_address[1]
        self.audience = audience
        self.max_age = max_age
        self.token_lifetime = token_lifetime
        self.behaviour = "ok"
        self.slow_seconds = 2.0
        self.keys = [SigningKey("RS256"), SigningKey("ES256")]
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._serve_in_thread("demo-issuer", poll_interval=0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    issuer = url  # the `iss` of its tokens is its own URL, as for any OIDC issuer

    @property
    def jwks_uri(self) -> str:
        return self.url + "/jwks"

    @property
    def discovery_url(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path.split("?", 1)[0]] += 1

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in list(self.keys)]}

    def key(self, alg: str = "RS256") -> SigningKey:
        return next(key for key in self.keys if key.alg == alg)

    def rotate(self) -> None:
        """New keys with new kids; the old ones are no longer published."""
        self.keys = [SigningKey("RS256"), SigningKey("ES256")]

    # -- tokens ---------------------------------------------------------------------------

    @staticmethod
    def sign(claims: dict[str, Any], key: SigningKey, *, alg: str | None = None, kid: str | None = None,
             headers: dict[str, Any] | None = None) -> str:
        header = {"kid": kid if kid is not None else key.kid, **(headers or {})}
        return jwt.encode(claims, key.private, algorithm=alg or key.alg, headers=header)

    def claims(self, *, sub: str = "demo-user", audience: Any = None, lifetime: int | None = None,
               **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience if audience is None else audience, "sub": sub,
                  "iat": now, "exp": now + (self.token_lifetime if lifetime is None else lifetime)}
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(self, *, alg: str = "RS256", **claims: Any) -> str:
        return self.sign(self.claims(**claims), self.key(alg))

    def app_check_token(self, project_number: str, app_id: str, *, alg: str = "RS256", **extra: Any) -> str:
        """Shaped like a Firebase App Check token: iss .../<projectNumber>, aud [projects/<n>, ...]."""
        claims = self.claims(sub=app_id, audience=[f"projects/{project_number}", "projects/demo-project"],
                             iss=f"https://firebaseappcheck.googleapis.com/{project_number}", **extra)
        return self.sign(claims, self.key(alg))

