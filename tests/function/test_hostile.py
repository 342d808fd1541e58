"""Hostile input, property-based: hypothesis throws random methods, paths, origins, content
types, headers and bodies at the real server (one functions-framework server for the module,
prod-like settings) and checks every answer against an oracle written here from DESIGN.md's
contract, independently of function/:

  - the status and error code are the ones the contract's order of checks gives;
  - every error is JSON {"error", "message"} with no-store;
  - the stand-in receives exactly one request when the oracle says the request is valid,
    and nothing otherwise;
  - neither the API key nor any minted ephemeral key appears in any response (except a 200's
    own client_secret) or anywhere in the server's output.
"""
from __future__ import annotations

import json
import re
import socket
from urllib.parse import unquote

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench import contract
from function_helpers import API_KEY, log_lines, own_stack

ALLOWED_HOSTS = ("app.example.com", "localhost")
ALLOWED_AGENTS = ("agent-1", "agent:2.v_3")
ENV = {"ALLOWED_HOSTNAMES": ",".join(ALLOWED_HOSTS), "HTTPS_ORIGINS_ONLY": "true",
       "ALLOWED_AGENT_IDS": ",".join(ALLOWED_AGENTS), "UPSTREAM_TIMEOUT_SECONDS": "5", "THREADS": "8"}
CLIENT_TIMEOUT = 30
SESSION = requests.Session()
RESPONSES: list[tuple[str, str | None]] = []  # (response text, its own ephemeral key) for the final scan

# ---------------------------------------------------------------- the oracle (DESIGN.md)

_AGENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SOURCE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# a serialized origin (RFC 6454): scheme "://" host [":" port]; scheme case-insensitive
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?")


def origin_allowed(origin: str | None) -> bool:
    if origin is None:
        return False  # an allowlist is set: a request without Origin is refused
    match = _ORIGIN.fullmatch(origin)
    if not match:
        return False
    scheme, host = match.group(1).lower(), match.group(2).lower()
    return scheme == "https" and host in ALLOWED_HOSTS  # HTTPS_ORIGINS_ONLY


def _reject_constant(name):
    raise ValueError(name)


def expected(method: str, path: str, origin: str | None, content_type: str | None, body: bytes):
    """(status, set of acceptable outcomes, reaches_upstream) per the contract's order of checks."""
    if unquote(path.split("?", 1)[0]) not in ("/", "/token"):
        return 404, {"not_found"}, False
    if not origin_allowed(origin):
        return 403, {"origin_not_allowed"}, False
    if method == "OPTIONS":
        return 204, {"preflight"}, False
    if method != "POST":
        return 405, {"method_not_allowed"}, False
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return 415, {"unsupported_media_type"}, False
    if len(body) > contract.MAX_BODY_BYTES:
        return 413, {"payload_too_large"}, False
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return 400, {"invalid_json"}, False
    bad = set()
    if "agentId" in data and not (isinstance(data["agentId"], str) and _AGENT_ID.fullmatch(data["agentId"])):
        bad.add("invalid_agent_id")
    if "source" in data and not (isinstance(data["source"], str) and _SOURCE.fullmatch(data["source"])):
        bad.add("invalid_source")
    if bad:  # the contract does not order the two format checks
        return 400, bad, False
    extra = set(data) - {"agentId", "source"}
    policy = set()
    if extra:  # client session config is not allowed on this server
        policy.add("session_config_not_allowed")
    if "agentId" not in data:
        policy.add("agent_id_required")
    elif data["agentId"] not in ALLOWED_AGENTS:
        policy.add("agent_not_allowed")
    if policy:  # nor does it order the policy checks among themselves
        statuses = {contract.ERRORS[code] for code in policy}
        return (statuses.pop() if len(statuses) == 1 else None), policy, False
    return 200, {"ok"}, True


# ---------------------------------------------------------------- strategies

# header values as a client can send them: printable ASCII; surrounding blanks are not part of
# a header value in HTTP (the server strips them), so none are drawn
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40).map(str.strip)
_hosts = st.sampled_from(["app.example.com", "APP.Example.COM", "localhost", "evil.com",
                          "app.example.com.evil.com", "sub.app.example.com", "127.0.0.1", "example.com"])
_schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "chrome-extension"])
_ports = st.sampled_from(["", ":443", ":8443", ":3000"])
origins = st.one_of(
    st.none(),
    st.builds(lambda s, h, p: f"{s}://{h}{p}", _schemes, _hosts, _ports),
    st.sampled_from(["null", "", "https://", "https://app.example.com/", "https://app.example.com/path",
                     "https://app.example.com, https://evil.com", "app.example.com", "https://*.example.com",
                     "https://user@app.example.com"]),
    _printable,
)
# Every method the HTTP parser (httptools) knows reaches the app; a token it does not know
# (say FOO) is refused by the server before the app: test_an_unknown_method_never_reaches_the_app.
methods = st.sampled_from(["POST", "POST", "POST", "OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PATCH",
                           "TRACE", "PROPFIND", "MKCOL"])
paths = st.one_of(
    st.sampled_from(["/token", "/token", "/", "/token?x=1", "/%74oken", "/token/", "/tokens", "/TOKEN",
                     "/robots.txt", "/favicon.ico", "/x/token", "/x//token", "/token%00", "/..%2ftoken"]),
    st.sampled_from(["//token", "//", "///", "/%2Ftoken", "//token?x=1"]),  # fold to the endpoint in Flask
    st.builds(lambda s: "/" + s, st.text(st.sampled_from("abz09-_./%~"), max_size=20)),
)
content_types = st.one_of(
    st.sampled_from(["application/json", "application/json", "application/json; charset=utf-8",
                     "APPLICATION/JSON", "application/json ;charset=latin-1", "text/plain",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/jsonp", "application/json-patch+json", "application/json+x", ""]),
    st.none(),
    _printable,
)
_agent_ids = st.one_of(st.sampled_from([*ALLOWED_AGENTS, "agent-9", "a" * 128, "a" * 129, "", "agent 1",
                                        "agent/../1", "agent\n", "agent-1\n", "ágent", "agent%2f1"]),
                       st.text(max_size=140), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
_sources = st.one_of(st.sampled_from(["web", "my-app.v2", "x" * 64, "x" * 65, "", "a:b", "a b", "&agent_id=x"]),
                     st.text(max_size=70), st.booleans())
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                            max_leaves=12)


@st.composite
def token_bodies(draw) -> bytes:
    body = {}
    if draw(st.integers(0, 9)) > 0:
        body["agentId"] = draw(_agent_ids)
    if draw(st.booleans()):
        body["source"] = draw(_sources)
    if draw(st.integers(0, 5)) == 0:
        body.update(draw(st.dictionaries(st.sampled_from(["model", "instructions", "voice", "x", "agent_id"]),
                                         _json_values, min_size=1, max_size=2)))
    return json.dumps(body).encode()


bodies = st.one_of(
    token_bodies(), token_bodies(), token_bodies(),
    st.builds(lambda v: json.dumps(v).encode(), _json_values),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"null", b"[]", b'{"agentId": NaN}', b'{"agentId": "agent-1"} trailing',
                     b'\xff\xfe{"agentId": "agent-1"}', b"[" * 5000 + b"]" * 5000,
                     b'{"a":' * 3000 + b"1" + b"}" * 3000]),
    st.builds(lambda n: json.dumps({"agentId": "agent-1", "pad": "x" * n}).encode(),
              st.sampled_from([16 * 1024 - 40, 16 * 1024 - 34, 16 * 1024, 64 * 1024])),
)
extra_headers = st.dictionaries(
    st.sampled_from(["X-Forwarded-For", "X-Cloud-Trace-Context", "traceparent", "User-Agent", "Authorization",
                     "Cookie", "X-Forwarded-Host", "Host-Override", "Accept", "Access-Control-Request-Method"]),
    _printable, max_size=3)

_valid_origins = st.sampled_from(["https://app.example.com", "https://localhost:8443", "HTTPS://App.Example.com"])
_valid_bodies = st.builds(
    lambda agent, source: json.dumps({"agentId": agent, **({"source": source} if source else {})}).encode(),
    st.sampled_from(ALLOWED_AGENTS), st.sampled_from([None, "web", "my-app.v2"]))


@st.composite
def hostile_requests(draw):
    """A request, random in every part; in three of four, every part starts out valid and up
    to two parts (the body most often) are then replaced by random ones, so that valid
    requests (which do reach the stand-in) and near-misses (which must not) are both common."""
    fields = {"method": methods, "path": paths, "origin": origins, "content_type": content_types,
              "body": bodies}
    if draw(st.integers(0, 3)) == 0:
        request = {name: draw(strategy) for name, strategy in fields.items()}
    else:
        request = {"method": "POST", "path": draw(st.sampled_from(["/token", "/"])),
                   "origin": draw(_valid_origins), "content_type": "application/json", "body": draw(_valid_bodies)}
        mutate = st.sampled_from(["body", "body", "body", "content_type", "origin", "method", "path"])
        for name in set(draw(st.lists(mutate, max_size=2))):
            request[name] = draw(fields[name])
    request["headers"] = draw(extra_headers)
    return request


# ---------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def stack():
    with own_stack(**ENV) as (upstream, server):
        yield upstream, server


def send(session, url, method, content_type, origin, headers, body) -> requests.Response:
    headers = dict(headers)
    if origin is not None:
        headers["Origin"] = origin
    # requests would otherwise add its own Content-Type or none: send exactly what was drawn
    headers["Content-Type"] = content_type if content_type is not None else None
    request = requests.Request(method, url, data=body, headers=headers)
    prepared = session.prepare_request(request)
    if content_type is None:
        prepared.headers.pop("Content-Type", None)
    prepared.url = url  # keep the drawn path exactly (no re-quoting)
    return session.send(prepared, timeout=CLIENT_TIMEOUT, allow_redirects=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=hostile_requests())
def test_every_answer_is_the_contracts(stack, request):
    upstream, server = stack
    method, path, origin, content_type, headers, body = (
        request[k] for k in ("method", "path", "origin", "content_type", "headers", "body"))
    before = len(upstream.requests)
    response = send(SESSION, server.url + path, method, content_type, origin, headers, body)
    reached = upstream.requests[before:]
    status, acceptable, valid = expected(method, path, origin, content_type, body)

    got = contract.outcome(response.status_code, response.headers, response.content, method=method)
    event(f"{response.status_code} {got}")
    if method == "HEAD":
        assert response.status_code == status, (method, path, origin, content_type, body[:200])
    else:
        assert got in acceptable, (got, acceptable, method, path, origin, content_type, body[:200])
        if status is not None:
            assert response.status_code == status
    # nothing reaches Outspeed unless the request was valid; a valid one arrives once, intact
    assert len(reached) == (1 if valid else 0), (valid, method, path, origin, content_type, body[:200])
    if valid:
        data = json.loads(body)
        assert reached[0].headers.get("Authorization") == f"Bearer {API_KEY}"
        assert reached[0].query.get("agent_id") == [data["agentId"]]
        assert reached[0].query.get("source") == ([data["source"]] if "source" in data else None)
        assert response.json()["client_secret"]["value"] in upstream.minted
    # CORS: only an allowed origin is ever echoed
    allow_origin = response.headers.get("Access-Control-Allow-Origin")
    if origin_allowed(origin):
        assert allow_origin == origin
    else:
        assert allow_origin is None
    # no secret in any response: not the key; no ephemeral key but a 200's own
    text = response.content.decode("latin-1") + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    assert API_KEY not in text
    own = response.json()["client_secret"]["value"] if got == "ok" else None
    RESPONSES.append((text, own))


def test_an_unknown_method_never_reaches_the_app(stack):
    """httptools parses only the methods it knows (the IANA list); any other token is a parse
    error that uvicorn answers itself, before the app: a plain 400 with the connection closed.
    It never reaches the app or Outspeed and logs no ERROR (the gthread server passed such a
    method to the app, which answered 405; both refuse it)."""
    upstream, server = stack
    before, lines_before = len(upstream.requests), len(log_lines(server))
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"FOO /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 17\r\n\r\n{\"agentId\": \"a\"}")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert len(upstream.requests) == before
    new = log_lines(server)[lines_before:]
    assert not [line for line in new if line.get("severity") == "ERROR"]
    assert "Traceback" not in server.output()


def test_no_secret_anywhere_after_the_barrage(stack):
    upstream, server = stack
    minted = set(upstream.minted)
    assert minted, "no valid request was drawn: the scan would prove nothing"
    for text, own in RESPONSES:
        leaked = [value for value in minted if value != own and value in text]
        assert not leaked, "a response carried another caller's ephemeral key"
    output = server.output()
    assert output
    assert API_KEY not in output
    assert not [value for value in minted if value in output], "ephemeral keys in the server output"
