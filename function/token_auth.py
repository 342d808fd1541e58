"""Caller tokens, verified (DESIGN.md, "Caller authentication"): pure functions, no I/O.

The request's headers give a token; token_keys finds the signing key its `kid` names; this
module decides. Signature checks and claim validation are PyJWT's (with `cryptography`);
what is decided here is the policy around them: which algorithms a key may verify (the
asymmetric one it declares, never `none`, never HMAC), which claims are required, the issuer
and audience each kind of token must carry.

Nothing here ever puts a token, or any part of one, into a message: a refusal is a short
reason code (for the log line), and a verified token yields only its claims.

PyJWT (and with it `cryptography` and OpenSSL) is imported on first use, not with this module:
it costs about 0.1 s, which every cold start would pay, auth on or off, before serving its first
request. token_caller loads it off the event loop (load_library in a worker thread) the first
time a token needs checking.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
import sys
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

import token_json
from token_settings import AppCheckCheck, IdTokenCheck

if TYPE_CHECKING:
    import jwt


def load_library() -> None:
    """Import PyJWT and its cryptography backend (idempotent, thread-safe: the import lock)."""
    import jwt  # noqa: F401, PLC0415 - deferred on purpose, see the module docstring
    import jwt.algorithms  # noqa: F401, PLC0415


def library_loaded() -> bool:
    return "jwt.algorithms" in sys.modules


def _jwt():
    import jwt  # noqa: PLC0415 - a dict lookup once loaded
    return jwt

LEEWAY_SECONDS = 60
# Signature algorithms a published key may verify. Symmetric (HS*) keys are shared secrets:
# one in a public JWKS is a misconfiguration, and accepting HS* would let anyone holding the
# public key sign tokens (the classic RS256 -> HS256 confusion).
# No ES512: its curve, P-521, is not one a key may use (below).
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "EdDSA"})
# Key strength: RSA moduli of at least 2048 bits (NIST SP 800-131A), EC keys on P-256 or P-384,
# each verifying only its own algorithm (RFC 7518 3.4). A weaker published key is unusable.
MIN_RSA_BITS = 2048
_EC_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384"}
# A compact JWS: three base64url parts. Anything longer than this is not an ID token (Firebase's
# are ~1 KiB) and is refused before any parsing.
MAX_TOKEN_CHARS = 8 * 1024
_COMPACT_JWS_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_KID_RE = re.compile(r"[\x21-\x7e]{1,256}")
_BEARER_RE = re.compile(r"(?i:bearer)[ ]+(\S+)[ ]*")


class JwksRefused(Exception):
    """A JWKS none of which may be trusted; the message says why, never quoting key material."""


# Members only a private (or secret) key has: RFC 7518 6.3.2 (RSA), 6.2.2 (EC), 6.4 (oct, whose
# `k` is the secret itself), RFC 8037 2 (OKP). A key server that publishes one is compromised or
# misconfigured, so nothing it serves is trusted.
_PRIVATE_MEMBERS = {"RSA": ("d", "p", "q", "dp", "dq", "qi", "oth"), "EC": ("d",), "OKP": ("d",), "oct": ("k",)}


class Refused(NamedTuple):
    """Why a token did not pass: a short code for the log line, never token content."""
    reason: str


class TokenHeader(NamedTuple):
    kid: str
    alg: str


# ---- headers -> tokens ------------------------------------------------------------------

def bearer_token(authorization: str | None) -> str | Refused:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive)."""
    if authorization is None or not authorization.strip():
        return Refused("missing")
    match = _BEARER_RE.fullmatch(authorization.strip())
    if match is None:
        # Another scheme (Basic ...), "Bearer" alone, or junk after the token.
        return Refused("not_bearer")
    return match.group(1)


def app_check_token(header: str | None) -> str | Refused:
    """The token of `X-Firebase-AppCheck: <token>`."""
    token = (header or "").strip()
    return token if token else Refused("missing")


def token_header(token: str) -> TokenHeader | Refused:
    """The unverified JOSE header, as far as key selection needs it: a `kid` and an `alg`
    that a published key could verify. Everything else is decided by the signature check."""
    if len(token) > MAX_TOKEN_CHARS:
        return Refused("too_long")
    if not _COMPACT_JWS_RE.fullmatch(token):
        return Refused("malformed")
    # Only the JOSE header is decoded here (it names the key); PyJWT then checks the whole token,
    # header included, against that key. Decoding it by hand instead of with
    # jwt.get_unverified_header saves a second full parse of every token (PyJWT's per-character
    # base64url check is most of its cost).
    segment = token.split(".", 1)[0]
    try:
        header = token_json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return Refused("malformed")
    if not isinstance(header, dict):
        return Refused("malformed")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        return Refused("algorithm_not_allowed")  # none, HS*, or something unknown
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        return Refused("no_kid")
    return TokenHeader(kid, alg)


# ---- published keys ---------------------------------------------------------------------

def key_from_jwk(jwk: Any) -> jwt.PyJWK | None:
    """A verification key from one JWKS entry, or None when the entry is unusable here: no
    `kid`, a symmetric or unknown key type, an algorithm that is not asymmetric, a key
    published for encryption (`use` other than `sig`), or a weak key (RSA under 2048 bits,
    an EC curve other than P-256/P-384 or not matching the algorithm)."""
    if not isinstance(jwk, Mapping):
        return None
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        return None
    if jwk.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    alg = jwk.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS):
        return None  # a list or object `alg` is unhashable: checked for a string first
    jwt = _jwt()
    try:
        key = jwt.PyJWK(dict(jwk))
    except (jwt.exceptions.PyJWKError, jwt.exceptions.PyJWTError, ValueError, TypeError):
        return None
    return key if key.algorithm_name in ASYMMETRIC_ALGORITHMS and _strong_enough(key) else None


def _strong_enough(key: jwt.PyJWK) -> bool:
    if key.key_type == "RSA":
        return key.key.key_size >= MIN_RSA_BITS
    if key.key_type == "EC":
        return _EC_CURVE_ALGORITHMS.get(key.key.curve.name) == key.algorithm_name
    return True  # OKP: Ed25519 and Ed448, both strong enough


def _refuse_private_material(entries: list) -> None:
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        kty = entry.get("kty")
        members = _PRIVATE_MEMBERS.get(kty) if isinstance(kty, str) else None
        if members and any(member in entry for member in members):
            kid = entry.get("kid")
            named = f", kid {kid}" if isinstance(kid, str) and _KID_RE.fullmatch(kid) else ""
            raise JwksRefused(f"publishes private key material (entry {index}, kty {kty}{named})")


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """kid -> key for every usable key of a JWKS document ({"keys": [...]}); unusable entries
    are skipped (a JWKS may carry keys for other purposes), a kid published twice is dropped
    (which one signs would be ambiguous). JwksRefused when any entry holds private key
    material: the whole document is refused."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        return {}
    _refuse_private_material(document["keys"])
    keys: dict[str, jwt.PyJWK] = {}
    seen: set[str] = set()
    for entry in document["keys"]:
        key = key_from_jwk(entry)
        if key is None:
            continue
        kid = key.key_id
        if kid in seen:
            keys.pop(kid, None)
            continue
        seen.add(kid)
        keys[kid] = key
    return keys


# ---- verification -----------------------------------------------------------------------

# PyJWT exception class name -> reason code (by name: the classes are imported late).
_REASONS = (
    ("ExpiredSignatureError", "expired"),
    ("ImmatureSignatureError", "not_yet_valid"),  # iat or nbf in the future
    ("InvalidIssuedAtError", "bad_iat"),
    ("InvalidIssuerError", "wrong_issuer"),
    ("InvalidAudienceError", "wrong_audience"),
    ("MissingRequiredClaimError", "missing_claim"),
    ("InvalidAlgorithmError", "algorithm_not_allowed"),
    ("InvalidSignatureError", "bad_signature"),
)


def _reason(error: Exception) -> str:
    exceptions = _jwt().exceptions
    for name, reason in _REASONS:
        if isinstance(error, getattr(exceptions, name)):
            return reason
    return "invalid"


_TIME_CLAIMS = ("exp", "nbf", "iat")


def _decode(token: str, key: jwt.PyJWK, issuer: str, audience: str) -> dict[str, Any] | Refused:
    if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
        return Refused("algorithm_not_allowed")
    jwt = _jwt()
    try:
        claims = jwt.decode(
            token, key,
            # Only the algorithm the key itself declares: never taken from the token.
            algorithms=[key.algorithm_name],
            audience=audience, issuer=issuer, leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True,
                     "verify_exp": True, "verify_iat": True, "verify_nbf": True,
                     "verify_iss": True, "verify_aud": True, "verify_sub": True,
                     "enforce_minimum_key_length": True},  # key_from_jwk already refuses them
        )
    except jwt.exceptions.PyJWTError as error:
        return Refused(_reason(error))
    except (ValueError, TypeError):  # a claim of a type PyJWT did not expect
        return Refused("invalid")
    for name in _TIME_CLAIMS:
        # A NumericDate is a JSON number (RFC 7519 2); PyJWT applies int(), which takes the
        # string "9999999999" and the booleans (bool is an int subclass: hence `type is`).
        value = claims.get(name, 0)
        if type(value) is not int and not (type(value) is float and math.isfinite(value)):
            return Refused("bad_numeric_date")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        return Refused("bad_subject")
    return claims


def verify_id_token(token: str, key: jwt.PyJWK, check: IdTokenCheck) -> dict[str, Any] | Refused:
    """Claims of a valid ID token: signed by `key` (the JWKS key its kid names), iss exact,
    aud equal to (or, as a list, containing) the audience, exp in the future and iat/nbf not,
    within 60 s of leeway, and a subject."""
    return _decode(token, key, check.issuer, check.audience)


def is_anonymous(claims: Mapping[str, Any]) -> bool:
    """A Firebase anonymous user: `firebase.sign_in_provider` is "anonymous" (Firebase puts the
    claim in every ID token it issues; tokens of other issuers carry no such claim)."""
    firebase = claims.get("firebase")
    return isinstance(firebase, Mapping) and firebase.get("sign_in_provider") == "anonymous"


def verify_app_check(token: str, key: jwt.PyJWK, check: AppCheckCheck) -> dict[str, Any] | Refused:
    """Claims of a valid App Check token (https://firebase.google.com/docs/app-check/custom-resource-backend):
    iss https://firebaseappcheck.googleapis.com/<projectNumber>, aud containing
    projects/<projectNumber>, and its subject (the app id) allowed when app ids are listed."""
    claims = _decode(token, key, check.issuer, check.audience)
    if isinstance(claims, Refused):
        return claims
    if check.app_ids and claims["sub"] not in check.app_ids:
        return Refused("app_not_allowed")
    return claims
