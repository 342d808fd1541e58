"""`make plan` (python -m tools.plan): readable, credential-free, and clear on config errors."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from infra_helpers import stack_settings
from tools.plan import PLACEHOLDER_API_KEY, ROOT


def plan(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "PULUMI_"))}
    return subprocess.run([sys.executable, *python_flags, "-m", "tools.plan", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def dev_plan():
    return plan("dev")


@pytest.fixture(scope="module")
def prod_plan():
    return plan("prod")


def test_dev_plan_shows_the_open_function(dev_plan):
    assert dev_plan.returncode == 0, dev_plan.stderr
    out = dev_plan.stdout
    assert "Plan for stack 'dev'" in out
    assert "ingress ALLOW_ALL" in out
    assert f"env ALLOWED_HOSTNAMES={','.join(stack_settings('dev').allowed_hostnames)}" in out
    assert "secret env OUTSPEED_API_KEY <- secret outspeed-token-dev-outspeed-api-key version 1" in out
    assert "roles/run.invoker -> allUsers" in out
    # Each build grant shows its scope: the image push is the stack's repository only.
    assert ("roles/artifactregistry.writer -> serviceAccount:outspeed-token-dev-build@plan-placeholder-project"
            ".iam.gserviceaccount.com on repository us-central1/outspeed-token-dev-images only") in out
    assert "roles/logging.logWriter -> serviceAccount:outspeed-token-dev-build@" in out
    assert out.count("(project-wide)") == 2 and "storage.objectAdmin" in out
    assert "images -> projects/plan-placeholder-project/locations/us-central1/repositories/outspeed-token-dev-images" in out
    assert "callers not verified (no callerAuth check)" in out  # the shipped dev stack sets none
    assert "compute." not in out and "ipAddress" not in out
    assert "tokenUrl        https://outspeed-token-dev-" in out
    assert PLACEHOLDER_API_KEY not in out + dev_plan.stderr
    assert "data [secret]" in out


def test_prod_plan_shows_the_edge(prod_plan):
    assert prod_plan.returncode == 0, prod_plan.stderr
    out = prod_plan.stdout
    want = stack_settings("prod")
    assert "ingress ALLOW_INTERNAL_AND_GCLB" in out
    token = want.caller_auth.id_token
    assert f"callers ID token (iss {token.issuer}, aud {token.audience}, keys OIDC discovery)" in out
    assert f"env AUTH_ID_TOKEN_ISSUER={token.issuer}" in out and "env ALLOW_ANY_AGENT=false" in out
    rate = want.rate_limit
    assert f"rule 2000 rate_based_ban: {rate.requests_per_minute} req/60s per IP -> deny(429), ban {rate.ban_seconds}s" in out
    assert ("rule 1000 deny(403): has(request.headers['origin'])" in out) == bool(want.allowed_hostnames)
    assert "rule 2147483647 allow" in out
    assert f"managed cert for {want.domain}" in out
    assert ":443 EXTERNAL_MANAGED" in out and ":80 EXTERNAL_MANAGED" in out
    assert "redirect https=True code PERMANENT_REDIRECT" in out
    assert f"tokenUrl        https://{want.domain}/token" in out
    assert "ipAddress       203.0.113.10" in out
    assert PLACEHOLDER_API_KEY not in out + prod_plan.stderr


def test_plan_reports_a_config_error_and_fails():
    result = plan("prod", "--set", "domain=")
    assert result.returncode == 2
    assert "CONFIG ERROR: config outspeed-token:domain: is required when authEnabled is true" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_plan_shows_overrides_and_warnings():
    result = plan("prod", "--set", "allowedHostnames=[]", "--set", "rateLimit={requestsPerMinute: 5, banSeconds: 60}")
    assert result.returncode == 0, result.stderr
    assert "rule 1000" not in result.stdout
    assert "rule 2000 rate_based_ban: 5 req/60s per IP -> deny(429), ban 60s" in result.stdout
    assert "WARNING: outspeed-token:allowedHostnames is empty" in result.stdout


def test_plan_rejects_an_unknown_stack():
    result = plan("staging")
    assert result.returncode == 2 and "Pulumi.staging.yaml" in result.stderr


def test_plan_leaves_no_event_loop_open_at_exit():
    # Unclosed loops of the engine's threads made exit print a spurious traceback now and then;
    # ResourceWarnings show every one of them, every time.
    done = plan("dev", python_flags=("-W", "always::ResourceWarning"))
    assert done.returncode == 0
    assert "unclosed event loop" not in done.stderr, done.stderr


def test_plan_shows_app_check_and_warns_on_anonymous():
    both = plan("prod", "--set", 'callerAuth={appCheck: {projectNumber: "42", appIds: ["1:42:web:a"]}}')
    assert both.returncode == 0, both.stdout
    assert "callers App Check (project 42, 1:42:web:a)" in both.stdout
    anonymous = plan("prod", "--set", "callerAuth={anonymous: true}")
    assert anonymous.returncode == 0, anonymous.stdout
    assert "callers not verified (no callerAuth check)" in anonymous.stdout
    assert "WARNING: outspeed-token:callerAuth.anonymous is true" in anonymous.stdout
    missing = plan("prod", "--set", "callerAuth={}")
    assert missing.returncode == 2 and "CONFIG ERROR: config outspeed-token:callerAuth: sets no caller check" in missing.stdout
