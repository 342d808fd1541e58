"""A loopback stand-in for the two Google services App Check replay protection calls: Firebase
App Check's `verifyAppCheckToken` and the metadata server's access-token endpoint. For the
tests and the bench; loopback only, state in memory.

- `GET /computeMetadata/v1/instance/service-accounts/default/token` (header `Metadata-Flavor:
  Google` required, as the real server requires it): `{"access_token", "expires_in",
  "token_type": "Bearer"}`. `metadata_fetches` counts the answers.
- `POST /v1beta/projects/<projectNumber>:verifyAppCheckToken` with `{"appCheckToken": ...}`
  and `Authorization: Bearer <an access token this stand-in issued>`, answered as Firebase
  documents it (https://firebase.google.com/docs/reference/appcheck/rest/v1beta/projects/verifyAppCheckToken):
  an invalid token gets 403 whether or not it was consumed; a valid one gets `{}` the first
  time (the `alreadyConsumed` field absent) and `{"alreadyConsumed": true}` every time after,
  whoever asks. A token is valid when it is signed by a key of `issuer` (a DemoIssuer), for
  this project (`iss` .../<number>, `aud` containing projects/<number>), unexpired, and not
  in `invalid_tokens`. An unknown or missing access token gets 401; `granted = False` plays a
  runtime account without the tokenVerifier role (403 IAM_PERMISSION_DENIED).

Scripted faults per service: `metadata_behaviour` / `verify_behaviour` = "ok" | "slow"
(answers after `slow_seconds`) | "outage" (500). "Down" is a stopped stand-in.

    with AppCheckStandIn("123456789012", issuer=demo_issuer) as google:
        env = {"AUTH_APP_CHECK_API_BASE": google.url, "GCE_METADATA_HOST": google.metadata_host}
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from tools.served import ServedInThread

BIND_HOST = "127.0.0.1"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
_VERIFY_RE = re.compile(r"/v1beta/projects/([^/:]+):verifyAppCheckToken")
MAX_SLOW_SECONDS = 30.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _google_error(status: int, code: str, message: str, reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com"}]
    return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms on Linux), as Google's servers never make anyone wait.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _send(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _scripted(self, behaviour: str) -> bool:
        """Apply a scripted fault; True when it already answered."""
        if behaviour == "slow":
            time.sleep(min(self.server.standin.slow_seconds, MAX_SLOW_SECONDS))
        elif behaviour == "outage":
            self._send(500, _google_error(500, "INTERNAL", "scripted outage"))
            return True
        return False

    def do_GET(self):
        standin = self.server.standin
        if self.path.split("?", 1)[0] != TOKEN_PATH:
            self._send(404, {"error": "not found"})
            return
        if self.headers.get("Metadata-Flavor") != "Google":
            self._send(403, {"error": "Missing Metadata-Flavor:Google header."})
            return
        if self._scripted(standin.metadata_behaviour):
            return
        self._send(200, standin.issue_access_token())

    def do_POST(self):
        standin = self.server.standin
        raw = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 64 * 1024))
        match = _VERIFY_RE.fullmatch(self.path)
        if match is None:
            self._send(404, _google_error(404, "NOT_FOUND", "not found"))
            return
        standin.count_verify(self.headers.get("Authorization"))
        if self._scripted(standin.verify_behaviour):
            return
        status, data = standin.verify(match.group(1), self.headers.get("Authorization"), raw)
        self._send(status, data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: "AppCheckStandIn"


class AppCheckStandIn(ServedInThread):
    def __init__(self, project_number: str, *, issuer=None, port: int = 0, token_lifetime: int = 3599):
        self.project_number = project_number
        self.issuer = issuer  # a tools.demo_issuer.DemoIssuer: its keys sign valid App Check tokens
        self.token_lifetime = token_lifetime
        self.metadata_behaviour = "ok"
        self.verify_behaviour = "ok"
        self.slow_seconds = 8.0
        self.granted = True
        self.invalid_tokens: set[str] = set()
        self.metadata_fetches = 0
        self.verify_calls = 0
        self.authorizations: list[str | None] = []  # the Authorization header of every verify call
        self.access_tokens: list[str] = []  # every access token handed out, oldest first
        self._consumed: set[str] = set()  # digests, as a real service would keep them
        self._lock = threading.Lock()
        self.server = _Server((BIND_HOST, port), _Handler)
        self.server.standin = self
        self.port = self.server.server_address[1]
        self._serve_in_thread("appcheck-standin", poll_interval=0.05)

    @property
    def url(self) -> str:
        """AUTH_APP_CHECK_API_BASE for the function."""
        return f"http://{BIND_HOST}:{self.port}"

    @property
    def metadata_host(self) -> str:
        """GCE_METADATA_HOST for the function (host:port, as Google's client libraries read it)."""
        return f"{BIND_HOST}:{self.port}"

    # -- the metadata server ------------------------------------------------------------

    def issue_access_token(self) -> dict[str, Any]:
        with self._lock:
            self.metadata_fetches += 1
            token = "ya29.standin-" + secrets.token_urlsafe(24)
            self.access_tokens.append(token)
        return {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    # -- Firebase App Check ---------------------------------------------------------------

    def count_verify(self, authorization: str | None) -> None:
        with self._lock:
            self.verify_calls += 1
            self.authorizations.append(authorization)

    def consumed(self, token: str) -> bool:
        return _digest(token) in self._consumed

    def _valid(self, token: str) -> bool:
        if token in self.invalid_tokens:
            return False
        if self.issuer is None:
            return token.count(".") == 2
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next(k for k in self.issuer.keys if k.kid == kid)
            jwt.decode(token, key.public, algorithms=[key.alg], audience=f"projects/{self.project_number}",
                       issuer=f"https://firebaseappcheck.googleapis.com/{self.project_number}",
                       options={"require": ["exp", "iss", "aud", "sub"]})
        except (StopIteration, jwt.PyJWTError, ValueError, TypeError):
            return False
        return True

    def verify(self, project: str, authorization: str | None, raw: bytes) -> tuple[int, dict[str, Any]]:
        bearer = (authorization or "")[len("Bearer "):] if (authorization or "").startswith("Bearer ") else ""
        if bearer not in self.access_tokens:
            return 401, _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.",
                                      "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if not self.granted or project != self.project_number:
            return 403, _google_error(403, "PERMISSION_DENIED",
                                      "Permission 'firebaseappcheck.appCheckTokens.verify' denied on resource "
                                      f"'//firebaseappcheck.googleapis.com/projects/{project}' (or it may not exist).",
                                      "IAM_PERMISSION_DENIED")
        try:
            token = json.loads(raw).get("appCheckToken")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            return 400, _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not self._valid(token):
            return 403, _google_error(403, "PERMISSION_DENIED", "The provided App Check token is invalid.")
        with self._lock:
            seen = _digest(token) in self._consumed
            self._consumed.add(_digest(token))
        return 200, ({"alreadyConsumed": True} if seen else {})

