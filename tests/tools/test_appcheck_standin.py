"""tools/appcheck_standin.py over real loopback HTTP: that it answers as Firebase's
verifyAppCheckToken and the metadata server are documented to, which the replay-protection
tests (tests/function/test_server_consume.py) rely on."""
from __future__ import annotations

import pytest
import requests

from tools.appcheck_standin import TOKEN_PATH, AppCheckStandIn
from tools.demo_issuer import DemoIssuer

PROJECT = "123456789012"


@pytest.fixture
def google():
    with DemoIssuer() as issuer, AppCheckStandIn(PROJECT, issuer=issuer) as standin:
        yield standin


def access_token(google) -> str:
    answer = requests.get(f"http://{google.metadata_host}{TOKEN_PATH}", headers={"Metadata-Flavor": "Google"},
                          timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    return body["access_token"]


def verify(google, token, *, bearer=None, project=PROJECT):
    return requests.post(f"{google.url}/v1beta/projects/{project}:verifyAppCheckToken",
                         json={"appCheckToken": token}, timeout=5,
                         headers={"Authorization": f"Bearer {bearer}"} if bearer else {})


def test_metadata_needs_its_flavor_header_and_counts_fetches(google):
    assert requests.get(f"http://{google.metadata_host}{TOKEN_PATH}", timeout=5).status_code == 403
    assert google.metadata_fetches == 0
    first, second = access_token(google), access_token(google)
    assert first != second and google.metadata_fetches == 2


def test_tokens_are_consumed_once_and_invalid_ones_are_403(google):
    bearer = access_token(google)
    token = google.issuer.app_check_token(PROJECT, f"1:{PROJECT}:web:a", jti="one")
    assert verify(google, token).status_code == 401  # no access token
    first = verify(google, token, bearer=bearer)
    assert first.status_code == 200 and first.json() == {}  # first use: the field is absent
    again = verify(google, token, bearer=bearer)
    assert again.status_code == 200 and again.json() == {"alreadyConsumed": True}
    # signed by someone else, for another project, or marked invalid: 403, consumed or not
    assert verify(google, google.issuer.app_check_token("999", f"1:999:web:a"), bearer=bearer).status_code == 403
    assert verify(google, "a.b.c", bearer=bearer).status_code == 403
    google.invalid_tokens.add(token)
    assert verify(google, token, bearer=bearer).status_code == 403
    google.granted = False
    denied = verify(google, google.issuer.app_check_token(PROJECT, f"1:{PROJECT}:web:a", jti="two"), bearer=bearer)
    assert denied.status_code == 403
    assert denied.json()["error"]["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
    assert google.verify_calls == 7 and google.authorizations[1] == f"Bearer {bearer}"


def test_binds_to_loopback_only(google):
    assert google.server.server_address[0] == "127.0.0.1"
