"""What the one request builder (token_upstream._send) must set on every request, each checked
through `fetch` and `mint` against real loopback servers, so that a test fails if one is lost:
redirects off, the environment's proxy ignored, no decompression (no Accept-Encoding; a gzip
bomb stays small), the capped streamed read, the per-request deadline that also ends a
cancelled request, the connect deadline, pool = THREADS with keep-alive, no cookies, and TLS
verified (a private-CA HTTPS stand-in: unknown CA and wrong host refused, the right CA works
only when explicitly trusted)."""
from __future__ import annotations

import asyncio
import datetime
import gzip
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import token_upstream
from function_helpers import FUNCTION_DIR, run_with_client
from token_policy import UpstreamCall
from token_settings import Settings
from token_upstream import Failed, FetchError, Minted, fetch

SESSION = b'{"client_secret": {"value": "ek_1"}}'
BOMB = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB


class Recorder:
    """A loopback HTTP/1.1 server: scripted answers by path, every request's headers, the
    connections it accepted, the most requests it had in flight at once."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[tuple[str, str, dict]] = []
        self.connections = 0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.events: dict[str, threading.Event] = {}
        self.results: dict[str, object] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with recorder.lock:
                    recorder.connections += 1

            def answer(self, status=200, body=SESSION, headers=()):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder.lock:
                    recorder.requests.append((self.command, self.path, dict(self.headers.items()), body))
                    recorder.in_flight += 1
                    recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
                try:
                    recorder.route(self)
                finally:
                    with recorder.lock:
                        recorder.in_flight -= 1

            do_GET = do_POST = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.server.server_address[1]}{path}"

    def route(self, h) -> None:
        path = "/" + h.path.split("?")[0].split("/")[1]  # mint appends the sessions path
        if path == "/redirect":
            h.answer(302, b"", headers=[("Location", "/ok")])
        elif path == "/big":
            h.answer(body=b"x" * (2 << 20))
        elif path == "/endless":  # chunked, no length: 64 MiB unless the reader stops first
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            sent, chunk = 0, b"y" * 65536
            try:
                for _ in range(1024):
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                h.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.results["endless_sent"] = sent
            h.close_connection = True
        elif path == "/bomb":
            h.answer(body=BOMB, headers=[("Content-Encoding", "gzip")])
        elif path == "/bomb-429":
            h.answer(429, BOMB, headers=[("Content-Encoding", "gzip"), ("Retry-After", "7")])
        elif path == "/slow":  # each in-flight request held a moment: the pool bound is visible
            time.sleep(0.3)
            h.answer()
        elif path == "/hang":  # no answer; records whether the client closed the connection
            h.connection.settimeout(20)
            try:
                closed = h.connection.recv(1) == b""
            except OSError:
                closed = False
            self.results["hang_closed_by_client"] = closed
            h.close_connection = True
        else:
            h.answer()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()


run = run_with_client


def mint_at(base: str, path: str = "", **settings) -> Minted | Failed:
    """One mint against `base` (the sessions path is appended by mint itself)."""
    settings = Settings(api_key="k", api_base=base + path, **settings)
    return run(token_upstream.mint(UpstreamCall(params=(("agent_id", "agent-1"),), body=None), settings))


# ---- redirects -----------------------------------------------------------------------------

def test_a_redirect_is_an_answer_never_followed(recorder):
    got = run(fetch(recorder.url("/redirect"), timeout=5))
    assert got.status == 302 and got.headers["location"] == "/ok"
    assert [path for _, path, _, _ in recorder.requests] == ["/redirect"]


# ---- proxy environment -----------------------------------------------------------------------

def test_the_environments_proxy_is_ignored(recorder, monkeypatch):
    proxy = Recorder()  # would answer for anything sent to it
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url(""))
        got = run(fetch(recorder.url("/direct"), timeout=5))
        assert got.status == 200
        assert [path for _, path, _, _ in recorder.requests] == ["/direct"]
        assert proxy.requests == [] and proxy.connections == 0
    finally:
        proxy.close()


# ---- decompression, size cap ---------------------------------------------------------------

def test_no_accept_encoding_is_sent_and_the_headers_are_the_callers(recorder):
    run(fetch(recorder.url("/jwks"), timeout=5, method="POST", headers={"Authorization": "Bearer t",
                                                                          "Content-Type": "application/json"},
              body=b'{"a": 1}'))
    method, _, headers, body = recorder.requests[0]
    lower = {name.lower(): value for name, value in headers.items()}
    assert method == "POST" and body == b'{"a": 1}'
    assert "accept-encoding" not in lower and "cookie" not in lower and "proxy-authorization" not in lower
    assert lower["authorization"] == "Bearer t" and lower["accept"] == "application/json"


def test_a_gzip_bomb_is_never_inflated(recorder):
    with pytest.raises(FetchError, match="Content-Encoding") as caught:
        run(fetch(recorder.url("/bomb"), timeout=5))
    assert "\0" not in str(caught.value)
    # the mint classifies such an answer by its status alone
    assert mint_at(recorder.url(""), "/bomb").rejection.code == "upstream_bad_response"
    limited = mint_at(recorder.url(""), "/bomb-429")
    assert limited.rejection.code == "upstream_rate_limited" and dict(limited.rejection.headers)["Retry-After"] == "7"


def test_an_answer_over_the_cap_is_refused_without_reading_it_whole(recorder):
    with pytest.raises(FetchError, match="over 1048576 bytes"):
        run(fetch(recorder.url("/big"), timeout=5))
    with pytest.raises(FetchError, match="over 1048576 bytes"):
        run(fetch(recorder.url("/endless"), timeout=10))
    for _ in range(200):  # the server notices the reader went away
        if "endless_sent" in recorder.results:
            break
        time.sleep(0.05)
    assert recorder.results["endless_sent"] < 64 << 20  # the reader stopped, not the stream
    # the mint: too large to be a session, classified by its status alone
    assert mint_at(recorder.url(""), "/big").rejection.code == "upstream_bad_response"


# ---- deadlines, cancellation -----------------------------------------------------------------

def test_a_cancelled_request_is_still_ended_by_its_own_deadline(recorder):
    """pyreqwest does not abort a request when its task is cancelled; the per-request
    deadline that every request carries is what closes the connection."""
    async def cancel_it():
        task = asyncio.create_task(fetch(recorder.url("/hang"), timeout=1))
        for _ in range(200):
            if recorder.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    run(cancel_it())
    for _ in range(500):  # bounded: the server gives up on its own after 20 s
        if "hang_closed_by_client" in recorder.results:
            break
        time.sleep(0.05)
    assert recorder.results["hang_closed_by_client"] is True


def test_a_connect_that_never_completes_ends_at_the_connect_deadline(monkeypatch):
    """A listener whose accept queue is full drops new SYNs: the connect hangs. The request's
    own deadline is far away (600 s); the connect deadline ends it, as a FetchError."""
    monkeypatch.setattr(token_upstream, "CONNECT_TIMEOUT_SECONDS", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (never accepted)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.1)
        # Bounded at 15 s (0.5 s expected): without the connect deadline the request would
        # still be connecting then (hyper's own default gives up only after 30 s).
        with pytest.raises(FetchError, match="no whole answer"):
            run(asyncio.wait_for(fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=600), 15))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---- pool and keep-alive ---------------------------------------------------------------------

def test_sequential_requests_reuse_one_kept_alive_connection(recorder):
    async def ten():
        for _ in range(10):
            assert (await fetch(recorder.url("/ok"), timeout=5)).status == 200
    run(ten())
    assert len(recorder.requests) == 10 and recorder.connections == 1


def test_the_pool_bounds_requests_in_flight_to_threads(recorder, monkeypatch):
    monkeypatch.setattr(token_upstream, "SETTINGS", Settings(threads=2))

    async def eight():
        got = await asyncio.gather(*(fetch(recorder.url("/slow"), timeout=20) for _ in range(8)))
        assert [g.status for g in got] == [200] * 8
    run(eight())
    assert len(recorder.requests) == 8
    assert recorder.max_in_flight <= 2 and recorder.connections <= 2


# ---- TLS -------------------------------------------------------------------------------------

def _ca_and_leaf(tmp_path, hostname: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-only private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "leaf.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                      + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_pem, context


@pytest.fixture
def https_standin(tmp_path):
    """An HTTPS stand-in whose certificate (for `localhost`) a private CA made for this test signed."""
    ca_pem, context = _ca_and_leaf(tmp_path, "localhost")
    server = Recorder(tls=context)
    yield server, ca_pem
    server.close()


def _fetch_in_fresh_process(url: str, extra_env: dict[str, str]) -> str:
    """`fetch(url)` in a new interpreter (the client reads the trust store when it is built):
    'status N' or the FetchError's message."""
    code = ("import asyncio, sys, token_upstream as u\n"
            "async def main():\n"
            "    try:\n"
            "        print('status', (await u.fetch(sys.argv[1], timeout=10)).status)\n"
            "    except u.FetchError as exc:\n"
            "        print(exc)\n"
            "    await u.close()\n"
            "asyncio.run(main())\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": FUNCTION_DIR, "HOME": os.environ.get("HOME", "/"),
           **extra_env}
    done = subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_tls_from_an_unknown_ca_is_refused(https_standin):
    server, _ = https_standin
    got = _fetch_in_fresh_process(server.url("/ok", host="localhost", scheme="https"), {})
    assert got.startswith("GET https://localhost:") and "status" not in got
    assert server.requests == []


def test_tls_for_another_host_is_refused_even_from_a_trusted_ca(https_standin):
    server, ca_pem = https_standin
    got = _fetch_in_fresh_process(server.url("/ok", host="127.0.0.1", scheme="https"), {"SSL_CERT_FILE": str(ca_pem)})
    assert got.startswith("GET https://127.0.0.1:") and "status" not in got
    assert server.requests == []


def test_tls_from_an_explicitly_trusted_ca_for_the_right_host_works(https_standin):
    server, ca_pem = https_standin
    got = _fetch_in_fresh_process(server.url("/ok", host="localhost", scheme="https"), {"SSL_CERT_FILE": str(ca_pem)})
    assert got == "status 200"
    assert [path for _, path, _, _ in server.requests] == ["/ok"]


def test_a_process_exits_cleanly_after_closing_the_client(https_standin, recorder):
    """pyreqwest's runtime thread still drops closed connections just after close(); an
    interpreter that finalizes meanwhile can abort (exit 134). close() waits for it, so a
    worker that closed its client exits 0, every time (several exits, each once aborted
    about 1 time in 4)."""
    server, _ = https_standin
    for _ in range(6):
        got = _fetch_in_fresh_process(server.url("/ok", host="localhost", scheme="https"), {})
        assert "status" not in got  # the TLS failure path, the one most often aborted
        assert _fetch_in_fresh_process(recorder.url("/ok"), {}) == "status 200"


# ---- the trust store the client loads: the system bundle file, read once ----------------

BUNDLE_ONLY = {"SSL_CERT_FILE": token_upstream.SYSTEM_CA_BUNDLE, "SSL_CERT_DIR": ""}


@pytest.mark.parametrize("environ, bundle_exists, expected", [
    ({}, True, BUNDLE_ONLY),
    ({"PATH": "/usr/bin"}, True, BUNDLE_ONLY),
    ({"SSL_CERT_FILE": "/etc/my-ca.pem"}, True, {}),   # an operator's bundle stands
    ({"SSL_CERT_DIR": "/etc/my-certs"}, True, {}),     # so does an operator's directory
    ({"SSL_CERT_DIR": ""}, True, {}),                  # and an explicit "no directory"
    ({}, False, {}),                                   # no bundle: the library's own search
])
def test_the_trust_store_is_the_system_bundle_unless_one_is_chosen(environ, bundle_exists, expected):
    seen = []

    def exists(path):
        seen.append(path)
        return bundle_exists

    assert token_upstream.trust_store_env(environ, exists) == expected
    assert seen in ([], [token_upstream.SYSTEM_CA_BUNDLE])


def test_a_fresh_worker_builds_its_client_on_the_bundle_and_still_refuses_unknown_cas(https_standin):
    """In a process whose environment names no trust store (as on Cloud Functions), building
    the client names the system bundle as the one store (which exists on this Debian machine
    as on Google's Ubuntu images); a certificate from a CA outside it is still refused."""
    assert os.path.exists(token_upstream.SYSTEM_CA_BUNDLE)
    server, _ = https_standin
    code = ("import asyncio, os, sys, token_upstream as u\n"
            "async def main():\n"
            "    try:\n"
            "        await u.fetch(sys.argv[1], timeout=10)\n"
            "        print('fetched')\n"
            "    except u.FetchError:\n"
            "        print('refused')\n"
            "    print(os.environ.get('SSL_CERT_FILE'), repr(os.environ.get('SSL_CERT_DIR')))\n"
            "    await u.close()\n"
            "asyncio.run(main())\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": FUNCTION_DIR, "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run([sys.executable, "-c", code, server.url("/ok", host="localhost", scheme="https")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", token_upstream.SYSTEM_CA_BUNDLE, "''"]
    assert server.requests == []
