"""tools/demo_issuer.py over real loopback HTTP: what `make run AUTH=demo` and the auth tests rely on."""
from __future__ import annotations

import jwt
import pytest
import requests

from tools.demo_issuer import DemoIssuer


@pytest.fixture
def issuer():
    with DemoIssuer(max_age=120) as issuer:
        yield issuer


def test_discovery_and_jwks(issuer):
    discovery = requests.get(issuer.discovery_url, timeout=5)
    assert discovery.status_code == 200 and discovery.headers["Cache-Control"] == "public, max-age=120"
    assert discovery.json()["issuer"] == issuer.issuer == issuer.url
    jwks = requests.get(discovery.json()["jwks_uri"], timeout=5)
    assert jwks.headers["Cache-Control"] == "public, max-age=120"
    keys = jwks.json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    assert all(k["use"] == "sig" and k["kid"] for k in keys)
    assert not any("d" in k or "p" in k for k in keys), "private key material published"
    assert issuer.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


def test_binds_to_loopback_only(issuer):
    assert issuer.server.server_address[0] == "127.0.0.1"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_its_tokens_verify_against_its_published_keys(issuer, alg):
    token = issuer.id_token(alg=alg, sub="user-1")
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in requests.get(issuer.jwks_uri, timeout=5).json()["keys"] if k["kid"] == kid)
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=[alg], audience=issuer.audience, issuer=issuer.issuer)
    assert claims["sub"] == "user-1" and claims["exp"] > claims["iat"]


def test_app_check_shaped_tokens(issuer):
    claims = jwt.decode(issuer.app_check_token("123", "1:123:web:a"), options={"verify_signature": False})
    assert claims["iss"] == "https://firebaseappcheck.googleapis.com/123"
    assert "projects/123" in claims["aud"] and claims["sub"] == "1:123:web:a"


def test_sign_in_endpoint_returns_a_demo_id_token_with_cors(issuer):
    preflight = requests.options(issuer.url + "/demo/sign-in", timeout=5)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    answer = requests.post(issuer.url + "/demo/sign-in", json={"name": "ada"}, timeout=5)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "*"
    token = answer.json()["idToken"]
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "ada"


def test_scripted_outage_garbage_and_rotation(issuer):
    old = {k["kid"] for k in issuer.jwks()["keys"]}
    issuer.behaviour = "outage"
    assert requests.get(issuer.jwks_uri, timeout=5).status_code == 500
    issuer.behaviour = "garbage"
    assert requests.get(issuer.jwks_uri, timeout=5).headers["Content-Type"] == "text/html"
    issuer.behaviour = "ok"
    issuer.rotate()
    new = {k["kid"] for k in requests.get(issuer.jwks_uri, timeout=5).json()["keys"]}
    assert new and not new & old
    assert issuer.hits["/jwks"] == 3
