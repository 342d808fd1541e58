"""Caller authentication on the real server (functions-framework subprocess, real HTTP): the
demo issuer serves discovery and keys made in this test run, tokens are signed here, and every
refusal is checked for its code, its CORS headers, and that Outspeed never saw the request."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from jwt import algorithms as jwt_algorithms
from cryptography.hazmat.primitives import serialization

from function_helpers import API_KEY, HTTPS_APP, error_of, log_lines
from tools.demo_issuer import DemoIssuer, SigningKey
from tools.function_server import FunctionServer
from tools.outspeed_standin import OutspeedStandIn

PROJECT = "123456789012"
APP_ID = f"1:{PROJECT}:web:0a1b2c3d"
WWW_AUTHENTICATE = 'Bearer realm="outspeed-token"'
SENT_TOKENS: list[str] = []  # every token this module sends: none may ever be printed
SERVERS: list[FunctionServer] = []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Stack:
    """An Outspeed stand-in, a demo issuer and a function server wired to both."""

    def __init__(self, *, id_token: bool = True, app_check: bool = False, max_age: int = 3600,
                 app_ids: str = APP_ID, issuer_behaviour: str = "ok"):
        self.upstream = OutspeedStandIn(api_key=API_KEY).start()
        self.issuer = DemoIssuer(max_age=max_age).start()
        self.issuer.behaviour = issuer_behaviour
        env = {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": self.upstream.url, "THREADS": "8",
               "ALLOWED_HOSTNAMES": "app.example.com", "GOOGLE_CLOUD_PROJECT": "proj-test"}
        if id_token:
            env.update(AUTH_ID_TOKEN_ISSUER=self.issuer.issuer, AUTH_ID_TOKEN_AUDIENCE=self.issuer.audience)
        if app_check:
            env.update(AUTH_APP_CHECK_PROJECT_NUMBER=PROJECT, AUTH_APP_CHECK_APP_IDS=app_ids,
                       AUTH_APP_CHECK_JWKS_URI=self.issuer.jwks_uri)
        self.server = FunctionServer(env)
        SERVERS.append(self.server)
        self.http = requests.Session()
        try:
            self.server.start()
        except Exception:
            self.stop()
            raise

    def post(self, *, token: str | None = None, authorization: str | None = None, app_check: str | None = None,
             origin: str = HTTPS_APP, body=None, **headers) -> requests.Response:
        sent = {"Origin": origin, "Content-Type": "application/json", **headers}
        if token is not None:
            SENT_TOKENS.append(token)
            sent["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            sent["Authorization"] = authorization
        if app_check is not None:
            SENT_TOKENS.append(app_check)
            sent["X-Firebase-AppCheck"] = app_check
        data = json.dumps(body if body is not None else {"agentId": "agent-1"})
        return self.http.post(self.server.url + "/token", data=data, headers=sent, timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()
        self.issuer.stop()
        self.upstream.stop()


@pytest.fixture(scope="module")
def id_stack():
    stack = Stack()
    yield stack
    stack.stop()


def assert_refused(response: requests.Response, code: str, stack: Stack | None = None) -> None:
    assert response.status_code == (503 if code == "auth_unavailable" else 401), response.text
    assert error_of(response) == code
    # page code can read it: the CORS grant is on the refusal too
    assert response.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    if code == "unauthenticated":
        assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
        assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    if stack is not None:
        assert stack.upstream.requests == [], "a refused caller reached Outspeed"


# ---- ID tokens -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_valid_id_token_gets_a_key(id_stack, alg):
    id_stack.upstream.reset()
    response = id_stack.post(token=id_stack.issuer.id_token(alg=alg, sub=f"user-{alg}"))
    assert response.status_code == 200, response.text
    assert response.json()["client_secret"]["value"]
    assert len(id_stack.upstream.requests) == 1
    line = log_lines(id_stack.server)[-1]
    assert line["code"] == "ok" and line["subject"] == f"user-{alg}" and "appId" not in line


def _forged(issuer: DemoIssuer, case: str) -> str:
    now = int(time.time())
    rsa = issuer.key("RS256")
    claims = issuer.claims
    if case == "expired":
        return issuer.sign(claims(iat=now - 7200, exp=now - 3600), rsa)
    if case == "future iat":
        return issuer.sign(claims(iat=now + 3600), rsa)
    if case == "nbf ahead":
        return issuer.sign(claims(nbf=now + 3600), rsa)
    if case == "wrong iss":
        return issuer.sign(claims(iss="https://accounts.evil.example.com"), rsa)
    if case == "wrong aud":
        return issuer.sign(claims(audience="another-app"), rsa)
    if case == "missing exp":
        return issuer.sign(claims(exp=None), rsa)
    if case == "exp a string":  # RFC 7519: a NumericDate is a JSON number
        return issuer.sign(claims(exp=str(now + 3600)), rsa)
    if case == "iat a boolean":
        return issuer.sign(claims(iat=True), rsa)
    if case == "unknown kid":
        return issuer.sign(claims(), rsa, kid="kid-nobody-published")
    if case == "stranger's key, right kid":
        return issuer.sign(claims(), SigningKey("RS256"), kid=rsa.kid)
    if case == "tampered payload":
        header, _, signature = issuer.sign(claims(sub="user-1"), rsa).split(".")
        return ".".join([header, b64(json.dumps(claims(sub="admin")).encode()), signature])
    if case == "alg none":
        header = b64(json.dumps({"alg": "none", "kid": rsa.kid, "typ": "JWT"}).encode())
        return f"{header}.{b64(json.dumps(claims()).encode())}."
    if case == "HS256 signed with the public key":
        pem = rsa.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': rsa.kid, 'typ': 'JWT'}).encode())}." \
                        f"{b64(json.dumps(claims()).encode())}"
        return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "expired", "future iat", "nbf ahead", "wrong iss", "wrong aud", "missing exp", "exp a string",
    "iat a boolean", "unknown kid",
    "stranger's key, right kid", "tampered payload", "alg none", "HS256 signed with the public key",
])
def test_a_bad_id_token_is_401_unauthenticated(id_stack, case):
    id_stack.upstream.reset()
    assert_refused(id_stack.post(token=_forged(id_stack.issuer, case)), "unauthenticated", id_stack)
    line = log_lines(id_stack.server)[-1]
    assert line["code"] == "unauthenticated" and line["authProblem"].startswith("id_token: ")
    assert "subject" not in line


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc.def.ghi",
                                           "Bearer not-a-jwt"])
def test_wrong_scheme_or_empty_token_is_401(id_stack, authorization):
    id_stack.upstream.reset()
    assert_refused(id_stack.post(authorization=authorization), "unauthenticated", id_stack)


def test_scheme_is_case_insensitive(id_stack):
    token = id_stack.issuer.id_token()
    assert id_stack.post(authorization=f"bearer {token}").status_code == 200
    SENT_TOKENS.append(token)


def test_credentials_come_after_method_and_origin_and_before_the_body(id_stack):
    url = id_stack.server.url + "/token"
    # method (405) and origin (403) answer before any credential is asked for
    assert error_of(requests.get(url, headers={"Origin": HTTPS_APP}, timeout=10)) == "method_not_allowed"
    assert error_of(requests.post(url, json={"agentId": "a"}, headers={"Origin": "https://evil.example.com"},
                                  timeout=10)) == "origin_not_allowed"
    # without credentials, nothing about the body is looked at: 401 before 415 / 413 / 400
    assert_refused(id_stack.post(**{"Content-Type": "text/plain"}), "unauthenticated")
    assert_refused(id_stack.http.post(url, data=b"x" * 20000, headers={"Origin": HTTPS_APP,
                   "Content-Type": "application/json"}, timeout=10), "unauthenticated")
    assert_refused(id_stack.post(body=["not", "an", "object"]), "unauthenticated")
    # with them, the body checks apply as before
    token = id_stack.issuer.id_token()
    assert error_of(id_stack.post(token=token, body={"agentId": "bad agent!"})) == "invalid_agent_id"


def test_two_authorization_headers_are_400_even_if_both_verify(id_stack):
    """Issue 18, finding 5: the first copy won, so what the edge saw and what the function
    verified could differ. Refused before credentials are looked at (no 401 challenge)."""
    id_stack.upstream.reset()
    tokens = [id_stack.issuer.id_token(sub="one"), id_stack.issuer.id_token(sub="two")]
    SENT_TOKENS.extend(tokens)
    connection = http.client.HTTPConnection("127.0.0.1", id_stack.server.port, timeout=15)
    body = json.dumps({"agentId": "agent-1"}).encode()
    try:
        connection.putrequest("POST", "/token")
        for name, value in (("Origin", HTTPS_APP), ("Content-Type", "application/json"),
                            ("Authorization", f"Bearer {tokens[0]}"), ("Authorization", f"Bearer {tokens[1]}"),
                            ("Content-Length", str(len(body)))):
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400 and answer["error"] == "duplicate_header", answer
    assert "Authorization" in answer["message"]
    assert response.headers["Cache-Control"] == "no-store" and "WWW-Authenticate" not in response.headers
    assert id_stack.upstream.requests == []
    line = log_lines(id_stack.server)[-1]
    assert line["code"] == "duplicate_header" and "subject" not in line


def test_preflight_needs_no_credentials_and_allows_the_authorization_header(id_stack):
    response = requests.options(id_stack.server.url + "/token", timeout=10, headers={
        "Origin": HTTPS_APP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 204
    allowed = [h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")]
    assert "authorization" in allowed and "content-type" in allowed and "x-firebase-appcheck" not in allowed
    assert response.headers["Access-Control-Allow-Origin"] == HTTPS_APP


# ---- keys over time ----------------------------------------------------------------------

def test_key_rotation_is_picked_up():
    stack = Stack()
    try:
        old = stack.issuer.id_token()
        assert stack.post(token=old).status_code == 200
        stack.issuer.rotate()  # new kids; the old key is no longer published
        assert stack.post(token=stack.issuer.id_token()).status_code == 200
        assert stack.post(token=stack.issuer.id_token(alg="ES256")).status_code == 200
        assert stack.issuer.hits["/jwks"] == 2  # the first fetch, then one refetch for the new kid
        # a token under the retired key no longer verifies
        assert_refused(stack.post(token=old), "unauthenticated")
    finally:
        stack.stop()


def test_no_keys_is_503_then_recovery_then_an_outage_is_ridden_out_on_cached_keys():
    stack = Stack(max_age=5, issuer_behaviour="outage")
    try:
        token = stack.issuer.id_token()
        response = stack.post(token=token)
        assert_refused(response, "auth_unavailable", stack)
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
        line = log_lines(stack.server)[-1]
        assert line["code"] == "auth_unavailable" and line["severity"] == "ERROR"
        assert "HTTP 500" in line["authProblem"]
        # the issuer is back: after the backoff the keys are fetched and the caller gets through
        stack.issuer.behaviour = "ok"
        time.sleep(int(response.headers["Retry-After"]) + 0.2)
        assert stack.post(token=token).status_code == 200
        jwks_hits = stack.issuer.hits["/jwks"]
        # the issuer goes down again and the cached keys expire (max-age 5 s): the refetch fails,
        # the keys held are kept, callers keep getting through
        stack.issuer.behaviour = "outage"
        time.sleep(5.5)
        assert stack.post(token=token).status_code == 200
        assert stack.post(token=stack.issuer.id_token(sub="other")).status_code == 200
        assert stack.issuer.hits["/jwks"] == jwks_hits + 1  # it did try, once
    finally:
        stack.stop()


def test_a_malformed_jwks_entry_is_503_not_500_and_cached_keys_keep_verifying():
    """Issue 18, finding 1: one entry with a non-string `alg` answered every request 500
    internal_error (and refetched the JWKS each time) instead of skipping the entry."""
    stack = Stack(max_age=5)
    issuer = stack.issuer
    good = issuer.jwks
    odd = {**issuer.key("RS256").jwk(), "kid": "odd", "alg": ["RS256"]}
    try:
        issuer.jwks = lambda: {"keys": [odd]}  # nothing usable: no keys at all
        token = issuer.id_token()
        response = stack.post(token=token)
        assert_refused(response, "auth_unavailable", stack)
        assert "jwks: no usable signing key" in log_lines(stack.server)[-1]["authProblem"]
        # published beside good keys, it is skipped
        issuer.jwks = lambda: {"keys": [odd, *good()["keys"]]}
        time.sleep(int(response.headers["Retry-After"]) + 0.2)
        assert stack.post(token=token).status_code == 200
        # the keys expire and the refetch finds nothing usable: the cached keys keep verifying
        issuer.jwks = lambda: {"keys": [odd]}
        hits = issuer.hits["/jwks"]
        time.sleep(5.5)
        assert stack.post(token=issuer.id_token(sub="later")).status_code == 200
        assert stack.post(token=token).status_code == 200
        assert issuer.hits["/jwks"] == hits + 1  # tried once, then backed off
    finally:
        stack.stop()


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_jwks_publishing_a_private_key_is_refused_and_logged(alg):
    """Issue 18, finding 2: an RSA entry with `d` answered 500 with a traceback per token, an
    EC one verified tokens. Now the whole document is refused (503 auth_unavailable, nothing
    cached), one WARNING line says why, and no key material reaches the output."""
    stack = Stack()
    issuer = stack.issuer
    leaky = SigningKey(alg, kid="leaky")
    algorithm = jwt_algorithms.RSAAlgorithm if alg == "RS256" else jwt_algorithms.ECAlgorithm
    private = {**algorithm.to_jwk(leaky.private, as_dict=True), "kid": "leaky", "alg": alg, "use": "sig"}
    good = issuer.jwks
    issuer.jwks = lambda: {"keys": [*good()["keys"], private]}
    try:
        for token in (issuer.sign(issuer.claims(), leaky), issuer.id_token()):
            SENT_TOKENS.append(token)
            assert_refused(stack.post(token=token), "auth_unavailable", stack)
        assert "private key material" in log_lines(stack.server)[-1]["authProblem"]
        warnings = [line for line in log_lines(stack.server) if "httpRequest" not in line]
        assert len(warnings) == 1 and warnings[0]["severity"] == "WARNING", warnings
        assert "private key material" in warnings[0]["message"] and "leaky" in warnings[0]["message"]
        output = stack.server.output()
        assert "Traceback" not in output
        assert not [value for name, value in private.items() if name in ("d", "p", "q", "dp", "dq", "qi")
                    and value in output]
    finally:
        stack.stop()


def test_a_flood_of_made_up_kids_costs_the_issuer_two_fetches():
    stack = Stack()
    try:
        key = stack.issuer.key("RS256")
        tokens = [stack.issuer.sign(stack.issuer.claims(), key, kid=f"made-up-{i}") for i in range(120)]

        def attempt(token):
            return stack.post(token=token).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(attempt, tokens))
        assert statuses == [401] * len(tokens)
        # the cold fetch, then one refetch for an unknown kid; none more within 30 s
        assert stack.issuer.hits["/jwks"] == 2, stack.issuer.hits
        assert stack.issuer.hits["/.well-known/openid-configuration"] == 1
        assert stack.upstream.requests == []
        assert stack.post(token=stack.issuer.id_token()).status_code == 200  # real callers unaffected
    finally:
        stack.stop()


def test_a_slow_key_fetch_does_not_stall_other_requests():
    """One request waits for keys from a slow issuer; meanwhile others are answered: the key
    fetch does not block the event loop."""
    stack = Stack(issuer_behaviour="slow")
    stack.issuer.slow_seconds = 4.0
    try:
        results: dict[str, requests.Response] = {}
        slow = threading.Thread(target=lambda: results.setdefault("slow", stack.post(token=stack.issuer.id_token())))
        slow.start()
        deadline = time.monotonic() + 10
        while not stack.issuer.hits and time.monotonic() < deadline:  # the fetch has begun
            time.sleep(0.02)
        assert stack.issuer.hits, "the key fetch never started"
        quick = [stack.post(), stack.post(authorization="Basic x"),
                 requests.options(stack.server.url + "/token", headers={"Origin": HTTPS_APP}, timeout=10)]
        still_waiting = slow.is_alive()
        assert [r.status_code for r in quick] == [401, 401, 204]
        assert still_waiting, "the quick requests were only answered after the slow key fetch"
        slow.join(30)
        # the slow fetch outlasted FETCH_TIMEOUT_SECONDS (3 s): no keys, 503, and no hang
        assert results["slow"].status_code == 503
        assert error_of(results["slow"]) == "auth_unavailable"
    finally:
        stack.stop()


# ---- App Check, and both at once ---------------------------------------------------------

def test_app_check_project_and_app_are_checked():
    stack = Stack(id_token=False, app_check=True)
    try:
        issuer = stack.issuer
        ok = stack.post(app_check=issuer.app_check_token(PROJECT, APP_ID))
        assert ok.status_code == 200, ok.text
        assert log_lines(stack.server)[-1]["appId"] == APP_ID
        stack.upstream.reset()
        assert_refused(stack.post(), "app_check_failed", stack)
        assert_refused(stack.post(app_check=issuer.app_check_token("999999999999", APP_ID)), "app_check_failed", stack)
        assert_refused(stack.post(app_check=issuer.app_check_token(PROJECT, f"1:{PROJECT}:web:ffff")),
                       "app_check_failed", stack)
        assert_refused(stack.post(app_check=issuer.id_token()), "app_check_failed", stack)  # an ID token is not one
        assert_refused(stack.post(app_check=issuer.app_check_token(PROJECT, APP_ID, exp=int(time.time()) - 3600)),
                       "app_check_failed", stack)
        refusal = stack.post()
        assert "WWW-Authenticate" not in refusal.headers  # not a bearer challenge
        preflight = requests.options(stack.server.url + "/token", headers={"Origin": HTTPS_APP}, timeout=10)
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "x-firebase-appcheck" in allowed and "authorization" not in allowed
    finally:
        stack.stop()


def test_both_checks_at_once_are_both_required():
    stack = Stack(app_check=True)
    try:
        issuer = stack.issuer
        id_token, app_token = issuer.id_token(sub="user-both"), issuer.app_check_token(PROJECT, APP_ID)
        response = stack.post(token=id_token, app_check=app_token)
        assert response.status_code == 200, response.text
        line = log_lines(stack.server)[-1]
        assert line["subject"] == "user-both" and line["appId"] == APP_ID
        stack.upstream.reset()
        assert_refused(stack.post(token=id_token), "app_check_failed", stack)
        assert_refused(stack.post(app_check=app_token), "unauthenticated", stack)
        assert_refused(stack.post(), "unauthenticated", stack)  # the ID token is checked first
        preflight = requests.options(stack.server.url + "/token", headers={"Origin": HTTPS_APP}, timeout=10)
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "x-firebase-appcheck" in allowed
    finally:
        stack.stop()


def test_no_token_ever_reaches_the_output():
    assert SENT_TOKENS and SERVERS
    for server in SERVERS:
        output = server.output()
        assert output
        assert API_KEY not in output
        for token in SENT_TOKENS:
            # any of its parts: the signature alone would already be a leak
            for part in token.split("."):
                if len(part) >= 16:
                    assert part not in output, "a caller token was printed"
