"""A loopback stand-in for the prod edge (external Application Load Balancer), for the smoke
tests: HTTPS on one port with a certificate of a throwaway CA made at test time, plain HTTP on
another, a Host check, and forwarding of the domain's requests to a real function server.

What the real load balancer does (outspeed_token/edge.py) is the default; each knob breaks one part of
it, so every prod-only smoke line can be seen to fail:
- `redirect_status`: what :80 answers for the domain (308 to https; e.g. 301 to break it);
- `unknown_host_status`: what both ports answer for another Host (404; None forwards it to the
  function instead, as a URL map without the fault-injection default route would);
- `tls_min` / `tls_max`: the protocol versions the HTTPS port accepts (TLS 1.2+ as the SSL
  policy says; e.g. max TLS 1.1, or min TLS 1.0).
"""
from __future__ import annotations

import datetime
import http.client
import ssl
import threading
import warnings
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass(frozen=True)
class Certs:
    ca: Path  # the throwaway CA's certificate: what smoke gets as --ca-bundle
    chain: Path  # the server certificate
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certs(directory: Path, hostname: str) -> Certs:
    """A CA and a certificate for `hostname` signed by it, written to `directory` (a temp dir)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("smoke test CA")).issuer_name(_name("smoke test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name(hostname)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    certs = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return certs


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # refused handshakes (the point of some tests) are not errors worth a traceback


class EdgeStandIn:
    def __init__(self, domain: str, backend_url: str, certs: Certs, *, redirect_status: int = 308,
                 unknown_host_status: int | None = 404, tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                 tls_max: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED):
        self.domain = domain
        self.backend = urlsplit(backend_url)
        self.redirect_status = redirect_status
        self.unknown_host_status = unknown_host_status
        with warnings.catch_warnings():  # old versions on purpose in some tests
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version, ctx.maximum_version = tls_min, tls_max
            if tls_min < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 speaks TLS 1.0/1.1 only at level 0
        ctx.load_cert_chain(certs.chain, certs.key)
        self.https = _Server(("127.0.0.1", 0), self._handler(tls=True))
        # Handshake in the request's own thread (first read), so a stalled client blocks no one.
        self.https.socket = ctx.wrap_socket(self.https.socket, server_side=True, do_handshake_on_connect=False)
        self.http = _Server(("127.0.0.1", 0), self._handler(tls=False))
        self.https_port, self.http_port = self.https.server_address[1], self.http.server_address[1]
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
                         for s in (self.https, self.http)]

    @property
    def url(self) -> str:
        return f"https://{self.domain}:{self.https_port}/token"

    def _handler(self, tls: bool):
        edge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
                if host != edge.domain and edge.unknown_host_status is not None:
                    return self._send(edge.unknown_host_status, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")
                if not tls:
                    return self._send(edge.redirect_status, [("Location", f"https://{edge.domain}{self.path}")], b"")
                conn = http.client.HTTPConnection(edge.backend.hostname, edge.backend.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self._send(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], data)
                finally:
                    conn.close()

            do_GET = do_POST = do_OPTIONS = do_PUT = _handle

        return Handler

    def start(self) -> "EdgeStandIn":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "EdgeStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
