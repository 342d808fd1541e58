"""token_auth: the pure verification of caller tokens, with keys generated here (fast, in-process).

Every refusal DESIGN.md lists is made here with a real signature (or a real forgery), and the
reason code is checked, so a test cannot pass because a token failed for some other reason.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import token_auth
from token_auth import Refused, bearer_token, app_check_token, key_from_jwk, parse_jwks, token_header
from token_settings import AppCheckCheck, IdTokenCheck
from tools.demo_issuer import SigningKey

ISSUER = "https://issuer.example.com"
AUDIENCE = "my-app"
CHECK = IdTokenCheck(ISSUER, AUDIENCE)
PROJECT = "123456789012"
APP = f"1:{PROJECT}:web:0a1b2c3d"
APP_CHECK = AppCheckCheck(PROJECT, frozenset({APP}))
REASONS = {"missing", "not_bearer", "too_long", "malformed", "algorithm_not_allowed", "no_kid", "expired",
           "not_yet_valid", "bad_iat", "wrong_issuer", "wrong_audience", "missing_claim", "bad_signature",
           "invalid", "bad_subject", "app_not_allowed", "bad_numeric_date"}


@pytest.fixture(scope="module")
def rsa_key():
    return SigningKey("RS256", kid="rsa-1")


@pytest.fixture(scope="module")
def ec_key():
    return SigningKey("ES256", kid="ec-1")


def pyjwk(key: SigningKey) -> jwt.PyJWK:
    found = key_from_jwk(key.jwk())
    assert found is not None
    return found


def claims(**overrides):
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, alg: str | None = None, kid: str | None = None, **overrides) -> str:
    return jwt.encode(claims(**overrides), key.private, algorithm=alg or key.alg,
                      headers={"kid": key.kid if kid is None else kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


def refused(result, reason: str) -> bool:
    assert isinstance(result, Refused), result
    assert result.reason in REASONS
    return result.reason == reason


# ---- headers -----------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER   abc.def.ghi ", " Bearer abc.def.ghi"])
def test_bearer_scheme_is_case_insensitive(header):
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize("header, reason", [
    (None, "missing"), ("", "missing"), ("   ", "missing"),
    ("Basic dXNlcjpwdw==", "not_bearer"), ("Bearer", "not_bearer"), ("Bearer ", "not_bearer"),
    ("Token abc.def.ghi", "not_bearer"), ("Bearer a.b.c d.e.f", "not_bearer"), ("Bearerabc.def.ghi", "not_bearer"),
])
def test_wrong_scheme_or_empty_token_is_refused(header, reason):
    assert refused(bearer_token(header), reason)


def test_app_check_header():
    assert app_check_token(" abc.def.ghi ") == "abc.def.ghi"
    assert refused(app_check_token(None), "missing")
    assert refused(app_check_token(""), "missing")


def test_token_header_gives_kid_and_alg(rsa_key):
    header = token_header(sign(rsa_key))
    assert header == token_auth.TokenHeader("rsa-1", "RS256")


@pytest.mark.parametrize("token, reason", [
    ("not-a-jwt", "malformed"), ("a.b", "malformed"), ("a.b.c.d", "malformed"), ("é.b.c", "malformed"),
    ("abc.def.ghi", "malformed"),  # base64url, but not JSON inside
    ("x" * 9000, "too_long"),
])
def test_token_header_refuses_what_is_not_a_compact_jws(token, reason):
    assert refused(token_header(token), reason)


def test_alg_none_and_hmac_are_refused_before_any_key_lookup(rsa_key):
    unsigned = forge({"alg": "none", "kid": "rsa-1", "typ": "JWT"}, claims()) + ""
    assert refused(token_header(unsigned.rstrip(".") + ".AA"), "algorithm_not_allowed")
    hs = forge({"alg": "HS256", "kid": "rsa-1"}, claims(), b"x" * 32)
    assert refused(token_header(hs), "algorithm_not_allowed")
    for alg in ("None", "NONE", "", None, "HS512", "RS1"):
        assert refused(token_header(forge({"alg": alg, "kid": "rsa-1"}, claims(), b"sig")), "algorithm_not_allowed")


def test_a_token_without_a_kid_is_refused(rsa_key):
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256")
    assert refused(token_header(token), "no_kid")
    assert refused(token_header(forge({"alg": "RS256", "kid": ""}, claims(), b"s")), "no_kid")
    assert token_header(forge({"alg": "RS256", "kid": 7}, claims(), b"s")).reason in ("no_kid", "malformed")


# ---- JWKS entries ------------------------------------------------------------------------

def test_usable_keys(rsa_key, ec_key):
    assert pyjwk(rsa_key).algorithm_name == "RS256" and pyjwk(rsa_key).key_id == "rsa-1"
    assert pyjwk(ec_key).algorithm_name == "ES256"
    no_alg = {k: v for k, v in rsa_key.jwk().items() if k != "alg"}
    assert key_from_jwk(no_alg).algorithm_name == "RS256"  # the key type's default


def test_unusable_jwks_entries_are_skipped(rsa_key):
    jwk = rsa_key.jwk()
    assert key_from_jwk({"kty": "oct", "kid": "hmac", "k": b64(b"secret" * 6), "alg": "HS256"}) is None
    assert key_from_jwk({"kty": "oct", "kid": "hmac", "k": b64(b"secret" * 6)}) is None
    assert key_from_jwk({**jwk, "alg": "HS256"}) is None  # an RSA key may not be used for HMAC
    assert key_from_jwk({**jwk, "alg": "none"}) is None
    assert key_from_jwk({**jwk, "use": "enc"}) is None
    assert key_from_jwk({k: v for k, v in jwk.items() if k != "kid"}) is None
    assert key_from_jwk({**jwk, "n": "!!!"}) is None
    assert key_from_jwk("text") is None and key_from_jwk({"kid": "x"}) is None


@pytest.mark.parametrize("alg", [["RS256"], {"name": "RS256"}, 256, True, ""])
def test_an_entry_with_a_non_string_alg_is_skipped_and_the_rest_kept(rsa_key, ec_key, alg):
    """Issue 18, finding 1: a list or object `alg` raised TypeError (unhashable) out of the
    parser, which broke the whole key cache."""
    assert key_from_jwk({**rsa_key.jwk(), "alg": alg}) is None
    document = {"keys": [{**rsa_key.jwk(), "kid": "odd", "alg": alg}, rsa_key.jwk(), ec_key.jwk()]}
    assert sorted(parse_jwks(document)) == ["ec-1", "rsa-1"]


def _public_jwk(private, **members) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return {**algorithm.to_jwk(private.public_key(), as_dict=True), "kid": "k", **members}


@pytest.mark.parametrize("bits", [1024, 1536, 2040])
def test_rsa_keys_under_2048_bits_are_unusable(bits):
    """Issue 18, finding 3: accepted with only PyJWT's InsecureKeyLengthWarning."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    assert key_from_jwk(_public_jwk(small)) is None
    assert key_from_jwk(_public_jwk(small, alg="RS256")) is None
    assert key_from_jwk(_public_jwk(small, alg="PS256")) is None


def test_rsa_keys_of_2048_bits_and_more_are_usable(rsa_key):
    assert key_from_jwk(rsa_key.jwk()).algorithm_name == "RS256"  # 2048 bits
    bigger = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    assert key_from_jwk(_public_jwk(bigger, alg="PS384")).algorithm_name == "PS384"


@pytest.mark.parametrize("curve, alg", [
    (ec.SECP521R1(), None), (ec.SECP521R1(), "ES512"), (ec.SECP256K1(), None), (ec.SECP256K1(), "ES256"),
    (ec.SECP384R1(), "ES256"), (ec.SECP256R1(), "ES384"),
])
def test_ec_keys_only_on_p256_and_p384_each_with_its_own_algorithm(curve, alg):
    """P-256 signs ES256 and P-384 ES384 (RFC 7518 3.4); any other curve, or a curve declared
    for the other's algorithm, is unusable."""
    jwk = _public_jwk(ec.generate_private_key(curve), **({"alg": alg} if alg else {}))
    assert key_from_jwk(jwk) is None


def test_p256_and_p384_keys_are_usable():
    for curve, alg in ((ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384")):
        private = ec.generate_private_key(curve)
        assert key_from_jwk(_public_jwk(private)).algorithm_name == alg
        assert key_from_jwk(_public_jwk(private, alg=alg)).algorithm_name == alg


def test_es512_tokens_are_refused_before_any_key_lookup():
    """With P-521 keys unusable, ES512 is no longer an algorithm a token may name."""
    assert refused(token_header(forge({"alg": "ES512", "kid": "k"}, claims(), b"s")), "algorithm_not_allowed")
    assert "ES512" not in token_auth.ASYMMETRIC_ALGORITHMS


def test_parse_jwks_keeps_usable_keys_and_drops_ambiguous_kids(rsa_key, ec_key):
    stranger = SigningKey("RS256", kid="rsa-1")
    keys = parse_jwks({"keys": [rsa_key.jwk(), ec_key.jwk(), {"kty": "oct", "kid": "h"}]})
    assert sorted(keys) == ["ec-1", "rsa-1"]
    assert sorted(parse_jwks({"keys": [rsa_key.jwk(), stranger.jwk(), ec_key.jwk()]})) == ["ec-1"]
    assert parse_jwks({"keys": "no"}) == {} and parse_jwks([]) == {} and parse_jwks(None) == {}


_PRIVATE_MEMBERS = [("RSA", m) for m in ("d", "p", "q", "dp", "dq", "qi", "oth")] + [("EC", "d"), ("OKP", "d")]


@pytest.mark.parametrize("kty, member", _PRIVATE_MEMBERS)
def test_a_jwks_publishing_private_material_is_refused_whole(rsa_key, ec_key, kty, member):
    """Issue 18, finding 2: an RSA entry with `d` loaded as a private key (500 and a traceback
    per token), an EC one verified without complaint. A key server that publishes a private key
    is compromised or misconfigured: none of its document is trusted."""
    public = {"RSA": rsa_key.jwk(), "EC": ec_key.jwk(),
              "OKP": {"kty": "OKP", "crv": "Ed25519", "x": b64(b"x" * 32), "kid": "ed-1"}}[kty]
    leaked = {**public, "kid": "leaky", member: b64(b"private" * 5) if member != "oth" else [{"r": "AQAB"}]}
    with pytest.raises(token_auth.JwksRefused) as refusal:
        parse_jwks({"keys": [rsa_key.jwk(), ec_key.jwk(), leaked]})
    assert "private key material" in str(refusal.value) and "leaky" in str(refusal.value)
    assert b64(b"private" * 5) not in str(refusal.value)


def test_real_private_jwks_and_secret_keys_are_refused(rsa_key, ec_key):
    for private in (rsa_key.private, ec_key.private):
        algorithm = jwt.algorithms.RSAAlgorithm if private is rsa_key.private else jwt.algorithms.ECAlgorithm
        entry = {**algorithm.to_jwk(private, as_dict=True), "kid": "whole", "use": "sig"}
        with pytest.raises(token_auth.JwksRefused):
            parse_jwks({"keys": [entry]})
        with pytest.raises(token_auth.JwksRefused):  # even one published for encryption only
            parse_jwks({"keys": [{**entry, "use": "enc"}, rsa_key.jwk()]})
    # a symmetric key in a public document is its secret, published
    with pytest.raises(token_auth.JwksRefused, match="private key material"):
        parse_jwks({"keys": [rsa_key.jwk(), {"kty": "oct", "kid": "h", "k": b64(b"secret" * 6)}]})
    # a member name alone on another key type, or a public key, is not private material
    assert sorted(parse_jwks({"keys": [{**rsa_key.jwk(), "k": "x"}, ec_key.jwk()]})) == ["ec-1", "rsa-1"]


# ---- ID tokens ---------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_valid_id_token_yields_its_claims(alg, rsa_key, ec_key):
    key = rsa_key if alg == "RS256" else ec_key
    verified = token_auth.verify_id_token(sign(key), pyjwk(key), CHECK)
    assert verified["sub"] == "user-1" and verified["iss"] == ISSUER


def test_audience_may_be_a_list_containing_ours(rsa_key):
    assert token_auth.verify_id_token(sign(rsa_key, aud=["other", AUDIENCE]), pyjwk(rsa_key), CHECK)["sub"]
    assert refused(token_auth.verify_id_token(sign(rsa_key, aud=["other", "more"]), pyjwk(rsa_key), CHECK),
                   "wrong_audience")


def test_leeway_is_sixty_seconds(rsa_key):
    now = int(time.time())
    key = pyjwk(rsa_key)
    # within the leeway: accepted
    assert isinstance(token_auth.verify_id_token(sign(rsa_key, exp=now - 30, iat=now - 600), key, CHECK), dict)
    assert isinstance(token_auth.verify_id_token(sign(rsa_key, iat=now + 30, nbf=now + 30), key, CHECK), dict)
    # beyond it: refused
    assert refused(token_auth.verify_id_token(sign(rsa_key, exp=now - 90, iat=now - 600), key, CHECK), "expired")
    assert refused(token_auth.verify_id_token(sign(rsa_key, iat=now + 90), key, CHECK), "not_yet_valid")


@pytest.mark.parametrize("overrides, reason", [
    ({"exp": -1000}, "expired"),
    ({"iat": +3600}, "not_yet_valid"),
    ({"nbf": +3600}, "not_yet_valid"),
    ({"iss": "https://evil.example.com"}, "wrong_issuer"),
    ({"iss": ISSUER + "/"}, "wrong_issuer"),  # exact, not "close enough"
    ({"aud": "someone-else"}, "wrong_audience"),
    ({"exp": None}, "missing_claim"),
    ({"sub": None}, "missing_claim"),
    ({"aud": None}, "missing_claim"),
    ({"iss": None}, "missing_claim"),
    ({"sub": ""}, "bad_subject"),
    ({"sub": 42}, "invalid"),
    ({"iat": "yesterday"}, "bad_iat"),
])
def test_id_token_claims_are_enforced(overrides, reason, rsa_key):
    now = int(time.time())
    relative = {k: (now + v if k in ("exp", "iat", "nbf") and isinstance(v, int) else v) for k, v in overrides.items()}
    assert refused(token_auth.verify_id_token(sign(rsa_key, **relative), pyjwk(rsa_key), CHECK), reason)


@pytest.mark.parametrize("claim, value", [
    ("exp", "9999999999"), ("exp", " 9999999999"), ("iat", "1700000000"), ("iat", True), ("iat", False),
    ("nbf", "0"), ("nbf", True), ("exp", [9999999999]), ("exp", {"at": 9999999999}), ("exp", None),
])
def test_time_claims_must_be_json_numbers(claim, value, rsa_key):
    """Issue 18, finding 4: RFC 7519 2 makes NumericDate a JSON number, but PyJWT applies int()
    ("exp": "9999999999" passed; a boolean iat or nbf is 1 or 0 to int(), so it passed too)."""
    payload = claims()
    payload[claim] = value  # None: an explicit JSON null
    token = jwt.PyJWS().encode(json.dumps(payload).encode(), rsa_key.private, algorithm="RS256",
                               headers={"kid": rsa_key.kid})
    result = token_auth.verify_id_token(token, pyjwk(rsa_key), CHECK)
    assert isinstance(result, Refused), result


def test_integer_and_fractional_time_claims_pass(rsa_key):
    now = time.time()
    for payload in (claims(exp=int(now) + 600, iat=int(now)), claims(exp=now + 600.5, iat=now - 0.25, nbf=now)):
        token = jwt.PyJWS().encode(json.dumps(payload).encode(), rsa_key.private, algorithm="RS256",
                                   headers={"kid": rsa_key.kid})
        assert token_auth.verify_id_token(token, pyjwk(rsa_key), CHECK)["sub"] == "user-1"


def test_a_tampered_payload_fails_the_signature(rsa_key):
    header, _, signature = sign(rsa_key, sub="user-1").split(".")
    payload = b64(json.dumps(claims(sub="admin")).encode())
    assert refused(token_auth.verify_id_token(f"{header}.{payload}.{signature}", pyjwk(rsa_key), CHECK), "bad_signature")


def test_right_kid_with_a_strangers_key_fails(rsa_key):
    stranger = SigningKey("RS256", kid=rsa_key.kid)
    assert refused(token_auth.verify_id_token(sign(stranger), pyjwk(rsa_key), CHECK), "bad_signature")


def test_hs256_signed_with_the_public_key_fails(rsa_key):
    """The algorithm-confusion attack: HMAC keyed with the (public) RSA key as a secret."""
    pem = rsa_key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    for secret in (pem, pem.strip(), json.dumps(rsa_key.jwk()).encode()):
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64(signature)}"
        assert refused(token_header(token), "algorithm_not_allowed")
        assert refused(token_auth.verify_id_token(token, pyjwk(rsa_key), CHECK), "algorithm_not_allowed")


def test_alg_none_fails_even_given_the_key(rsa_key):
    token = forge({"alg": "none", "kid": rsa_key.kid}, claims())
    assert refused(token_auth.verify_id_token(token, pyjwk(rsa_key), CHECK), "algorithm_not_allowed")


def test_the_token_cannot_pick_another_algorithm_for_the_key(rsa_key, ec_key):
    # Same RSA private key, but RS512 in the header: the key declares RS256 only.
    assert refused(token_auth.verify_id_token(sign(rsa_key, alg="RS512"), pyjwk(rsa_key), CHECK), "algorithm_not_allowed")
    # An ES256 token against an RSA key of the same kid.
    assert refused(token_auth.verify_id_token(sign(ec_key, kid=rsa_key.kid), pyjwk(rsa_key), CHECK),
                   "algorithm_not_allowed")


# ---- App Check ---------------------------------------------------------------------------

def app_check(key, project=PROJECT, app=APP, aud=None, **overrides):
    return sign(key, iss=f"https://firebaseappcheck.googleapis.com/{project}", sub=app,
                aud=aud if aud is not None else [f"projects/{project}", "projects/my-firebase-id"], **overrides)


def test_a_valid_app_check_token_yields_the_app_id(rsa_key):
    assert token_auth.verify_app_check(app_check(rsa_key), pyjwk(rsa_key), APP_CHECK)["sub"] == APP


def test_any_app_of_the_project_when_no_app_ids_are_listed(rsa_key):
    any_app = AppCheckCheck(PROJECT)
    assert token_auth.verify_app_check(app_check(rsa_key, app="1:1:web:other"), pyjwk(rsa_key), any_app)["sub"]


@pytest.mark.parametrize("kwargs, reason", [
    ({"project": "999999999999"}, "wrong_issuer"),
    ({"aud": ["projects/999999999999"]}, "wrong_audience"),
    ({"app": f"1:{PROJECT}:web:ffffffff"}, "app_not_allowed"),
    ({"exp": int(time.time()) - 3600}, "expired"),
])
def test_app_check_project_and_app_are_enforced(kwargs, reason, rsa_key):
    assert refused(token_auth.verify_app_check(app_check(rsa_key, **kwargs), pyjwk(rsa_key), APP_CHECK), reason)


def test_an_id_token_is_not_an_app_check_token(rsa_key):
    assert refused(token_auth.verify_app_check(sign(rsa_key), pyjwk(rsa_key), APP_CHECK), "wrong_issuer")


# ---- hostile input -----------------------------------------------------------------------

from hypothesis import given, settings as hypothesis_settings, strategies as st  # noqa: E402

_JWTISH = st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ \x00é",
                           max_size=200), min_size=1, max_size=5).map(".".join)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), _JWTISH, _JWTISH.map(lambda t: "Bearer " + t)))
def test_any_header_value_is_a_token_or_a_refusal_never_an_exception(value):
    for step in (bearer_token, app_check_token):
        result = step(value)
        assert isinstance(result, (str, Refused))
    token = bearer_token(value)
    if isinstance(token, str):
        header = token_header(token)
        assert isinstance(header, (token_auth.TokenHeader, Refused))


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "iat", "nbf", "jti"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3))))
def test_any_claims_verify_or_are_refused_never_an_exception(payload):
    key = _SHARED_KEY  # one key for every example: generating RSA keys is slow
    # Signed as raw JSON: PyJWT's encoder itself refuses some of these claim types.
    token = jwt.PyJWS().encode(json.dumps(payload).encode(), key.private, algorithm="RS256",
                               headers={"kid": key.kid})
    result = token_auth.verify_id_token(token, pyjwk(key), CHECK)
    assert isinstance(result, (dict, Refused))
    if isinstance(result, dict):  # only a complete, valid claim set passes
        assert result["iss"] == ISSUER and result["sub"] and result["exp"] > time.time() - 60


_SHARED_KEY = SigningKey("RS256", kid="fuzz")
