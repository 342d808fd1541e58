"""The real __main__.py under Pulumi mocks, per stack, with each stack file's own config."""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from outspeed_token.source import DEFAULT_SOURCE_DIR, deployable_files, source_hash, write_zip, zip_bytes
from outspeed_token.token_function import KEEP_IMAGES
from infra_helpers import REGION, TEST_API_KEY, by_name, of_type, one, run, stack_settings
from tools.plan import PLACEHOLDER_PROJECT

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
ACCOUNT = "gcp:serviceaccount/account:Account"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_IAM = "gcp:secretmanager/secretIamMember:SecretIamMember"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
RUN_IAM = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
REPO = "gcp:artifactregistry/repository:Repository"
REPO_IAM = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
API = "gcp:projects/service:Service"
BUCKET_OBJECT = "gcp:storage/bucketObject:BucketObject"
ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
CERT = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
FORWARDING = "gcp:compute/globalForwardingRule:GlobalForwardingRule"

FUNCTION_APIS = {"cloudfunctions.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com",
                 "artifactregistry.googleapis.com", "secretmanager.googleapis.com", "storage.googleapis.com",
                 "iam.googleapis.com"}


def service_config(run):
    return one(run, FUNCTION)["inputs"]["serviceConfig"]


def account(run, suffix):
    return next(a for a in of_type(run, ACCOUNT) if a["inputs"]["accountId"].endswith(suffix))


def email(acct):
    return f"{acct['inputs']['accountId']}@{PLACEHOLDER_PROJECT}.iam.gserviceaccount.com"


# --- both stacks -------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_function_build_and_scaling(stack_runs, stack):
    run = stack_runs[stack]
    fn = one(run, FUNCTION)["inputs"]
    build = fn["buildConfig"]
    assert re.fullmatch(r"python3(\d+)", build["runtime"]) and int(build["runtime"][7:]) >= 12
    assert build["entryPoint"] == "token"
    sc, want = fn["serviceConfig"], stack_settings(stack)
    assert (sc["minInstanceCount"], sc["maxInstanceCount"]) == (want.min_instances, want.max_instances)
    assert sc["maxInstanceRequestConcurrency"] == want.concurrency
    assert sc.get("availableCpu") == want.available_cpu
    assert sc["environmentVariables"]["THREADS"] == str(sc["maxInstanceRequestConcurrency"])
    assert sc["availableMemory"] == want.memory
    assert sc["environmentVariables"]["GOOGLE_CLOUD_PROJECT"] == PLACEHOLDER_PROJECT
    assert sc["environmentVariables"]["OUTSPEED_API_BASE"] == want.api_base


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_runtime_and_build_accounts_are_separate_and_used(stack_runs, stack):
    run = stack_runs[stack]
    runtime, build = account(run, "-run"), account(run, "-build")
    fn = one(run, FUNCTION)["inputs"]
    assert fn["serviceConfig"]["serviceAccountEmail"] == email(runtime)
    assert fn["buildConfig"]["serviceAccount"] == f"projects/{PLACEHOLDER_PROJECT}/serviceAccounts/{email(build)}"
    # Project-wide, only what has no narrower scope, and the storage role Google documents for a
    # function's build account (issue 21 #8); the runtime account gets no project-wide role at all.
    grants = of_type(run, PROJECT_IAM)
    assert {g["inputs"]["role"] for g in grants} == {"roles/logging.logWriter", "roles/storage.objectAdmin"}
    assert {g["inputs"]["member"] for g in grants} == {f"serviceAccount:{email(build)}"}
    assert not any(g["inputs"]["role"] == "roles/artifactregistry.writer" for g in grants)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_build_pushes_only_to_the_stacks_own_repository(stack_runs, stack):
    run = stack_runs[stack]
    repo = one(run, REPO)["inputs"]
    fn = one(run, FUNCTION)["inputs"]
    assert repo["format"] == "DOCKER" and repo["location"] == fn["location"] == REGION  # same region, or GCF refuses
    assert repo["repositoryId"].startswith(f"outspeed-token-{stack}")
    # The documented pattern projects/{project}/locations/{location}/repositories/{repository}.
    assert fn["buildConfig"]["dockerRepository"] == \
        f"projects/{PLACEHOLDER_PROJECT}/locations/{REGION}/repositories/{repo['repositoryId']}"
    # Issue 18: keep the last KEEP_IMAGES images, delete the rest (a keep policy alone deletes
    # nothing: it only exempts versions from a delete policy).
    assert repo["cleanupPolicyDryRun"] is False
    assert sorted(repo["cleanupPolicies"], key=lambda p: p["action"]) == [
        {"id": "delete-any", "action": "DELETE", "condition": {"tagState": "ANY"}},
        {"id": f"keep-last-{KEEP_IMAGES}", "action": "KEEP", "mostRecentVersions": {"keepCount": KEEP_IMAGES}},
    ]
    assert 2 <= KEEP_IMAGES <= 20  # the serving revision's image and a few to go back to
    writer = one(run, REPO_IAM)
    assert writer["inputs"] == {"project": PLACEHOLDER_PROJECT, "location": REGION, "repository": repo["repositoryId"],
                                "role": "roles/artifactregistry.writer",
                                "member": f"serviceAccount:{email(account(run, '-build'))}"}
    # The first build waits for the grant and for it to take effect.
    assert writer["urn"] in one(run, FUNCTION)["dependencies"]
    assert writer["urn"] in by_name(run, "token-iam-settle")["dependencies"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_api_key_is_pinned_to_the_created_secret_version(stack_runs, stack):
    run = stack_runs[stack]
    secret = one(run, SECRET)["inputs"]
    version = one(run, SECRET_VERSION)["inputs"]
    assert version["secret"] == f"projects/{PLACEHOLDER_PROJECT}/secrets/{secret['secretId']}"
    assert version["secretData"] == {"$secret": TEST_API_KEY}
    (binding,) = service_config(run)["secretEnvironmentVariables"]
    assert binding == {"key": "OUTSPEED_API_KEY", "projectId": PLACEHOLDER_PROJECT,
                       "secret": secret["secretId"], "version": "1"}  # the mock's created version, not "latest"
    assert "OUTSPEED_API_KEY" not in service_config(run)["environmentVariables"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_runtime_account_reads_only_its_own_secret(stack_runs, stack):
    run = stack_runs[stack]
    secret = one(run, SECRET)["inputs"]
    accessor = one(run, SECRET_IAM)["inputs"]
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["secretId"] == f"projects/{PLACEHOLDER_PROJECT}/secrets/{secret['secretId']}"
    assert accessor["member"] == f"serviceAccount:{email(account(run, '-run'))}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_public_invocation_is_granted_on_the_functions_cloud_run_service(stack_runs, stack):
    run = stack_runs[stack]
    invoker = one(run, RUN_IAM)["inputs"]
    fn = one(run, FUNCTION)["inputs"]
    assert (invoker["role"], invoker["member"]) == ("roles/run.invoker", "allUsers")
    assert invoker["name"] == f"projects/{PLACEHOLDER_PROJECT}/locations/{fn['location']}/services/{fn['name']}"
    assert invoker["location"] == fn["location"] == REGION


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_required_apis_enabled_kept_on_destroy_and_awaited(stack_runs, stack):
    run = stack_runs[stack]
    apis = {a["inputs"]["service"]: a for a in of_type(run, API)}
    assert FUNCTION_APIS <= set(apis)
    assert all(a["inputs"]["disableOnDestroy"] is False for a in apis.values())
    fn = one(run, FUNCTION)
    for api in FUNCTION_APIS:
        assert apis[api]["urn"] in fn["dependencies"], f"function does not wait for {api}"
    for acct in of_type(run, ACCOUNT):
        assert apis["iam.googleapis.com"]["urn"] in acct["dependencies"]
    assert apis["secretmanager.googleapis.com"]["urn"] in one(run, SECRET)["dependencies"]
    # The first deploy also needs the secret grant and the build roles in place...
    assert one(run, SECRET_IAM)["urn"] in fn["dependencies"]
    assert all(g["urn"] in fn["dependencies"] for g in of_type(run, PROJECT_IAM))
    # ...and in effect: the function waits on a sleep that itself waits on every grant.
    settle = by_name(run, "token-iam-settle")
    assert settle["inputs"]["createDuration"] == "60s" and settle["urn"] in fn["dependencies"]
    assert one(run, SECRET_IAM)["urn"] in settle["dependencies"]
    assert all(g["urn"] in settle["dependencies"] for g in of_type(run, PROJECT_IAM))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_source_object_name_carries_the_content_hash(stack_runs, stack):
    run = stack_runs[stack]
    obj = one(run, BUCKET_OBJECT)["inputs"]
    expected = f"function-{source_hash(DEFAULT_SOURCE_DIR)[:20]}.zip"
    assert obj["name"] == expected
    shipped = zipfile.ZipFile(obj["source"]["$asset"]).namelist()
    assert shipped == deployable_files(DEFAULT_SOURCE_DIR)
    assert "main.py" in shipped and "requirements.txt" in shipped
    storage = one(run, FUNCTION)["inputs"]["buildConfig"]["source"]["storageSource"]
    assert storage["object"] == expected and storage["bucket"] == obj["bucket"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_resource_belongs_to_a_component(stack_runs, stack):
    run = stack_runs[stack]
    for res in run["resources"]:
        if res["custom"]:
            assert "pulumi:pulumi:Stack::" not in res["parent"].split("$")[-1], f"{res['name']} is parented to the stack"
            assert "infra:" in res["parent"], res["name"]
    components = {r["name"] for r in run["resources"] if not r["custom"]}
    for res in run["resources"]:  # names derive from the component's name
        owner = res["parent"].rsplit("::", 1)[-1]
        # Except the repository's TokenEndpoint's own children (token, edge, monitoring): they keep
        # the names they had before the package existed (legacy_child_names; test_infra_urns.py).
        # The package's own naming, <name>-token etc., is tested in tests/package.
        if owner in components and owner != "outspeed-token":
            assert res["name"].startswith(owner + "-"), res["name"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_api_key_is_a_secret_and_never_plain(stack_runs, stack):
    run = stack_runs[stack]
    assert TEST_API_KEY not in json.dumps(run["outputs"])
    # Strip every secret-wrapped value; the key must not remain anywhere in any input.
    def strip(value):
        if isinstance(value, dict):
            return "<secret>" if "$secret" in value else {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    assert TEST_API_KEY not in json.dumps([strip(r["inputs"]) for r in run["resources"]])
    assert TEST_API_KEY in json.dumps(one(run, SECRET_VERSION)["inputs"])  # ...and it is really there, wrapped
    assert set(run["outputs"]) >= {"tokenUrl", "functionName", "secretId", "serviceAccount"}


# --- dev ---------------------------------------------------------------------------------------

def test_dev_is_the_open_function_with_no_edge(dev):
    want = stack_settings("dev")
    sc = service_config(dev)
    assert sc["ingressSettings"] == "ALLOW_ALL"
    env = sc["environmentVariables"]
    assert env["ALLOWED_HOSTNAMES"] == ",".join(want.allowed_hostnames)
    assert {"localhost", "127.0.0.1"} <= set(env["ALLOWED_HOSTNAMES"].split(","))
    assert env.get("ALLOWED_AGENT_IDS", "") == ",".join(want.agent_ids)
    assert env["HTTPS_ORIGINS_ONLY"] == "false" and env["ALLOW_ANY_AGENT"] == "true"
    assert env["ALLOW_CLIENT_SESSION_CONFIG"] == ("true" if want.allow_client_session_config else "false")
    assert [r["type"] for r in dev["resources"] if r["type"].startswith("gcp:compute/")] == []
    assert "compute.googleapis.com" not in {a["inputs"]["service"] for a in of_type(dev, API)}
    assert not [r for r in dev["resources"] if r["type"] == "outspeed-token:infra:Edge"]


def test_dev_outputs_point_at_the_function(dev):
    outputs = {k: v["value"] for k, v in dev["outputs"].items()}
    assert outputs["tokenUrl"] == "https://outspeed-token-dev-abc123xyz-uc.a.run.app/token"  # mock URI + /token
    assert outputs["functionName"] == one(dev, FUNCTION)["inputs"]["name"] == "outspeed-token-dev"
    assert outputs["secretId"] == one(dev, SECRET)["inputs"]["secretId"]
    assert outputs["serviceAccount"] == email(account(dev, "-run"))
    assert "ipAddress" not in outputs


# --- prod --------------------------------------------------------------------------------------

def test_prod_function_only_accepts_the_load_balancer(prod):
    want = stack_settings("prod")
    sc = service_config(prod)
    assert sc["ingressSettings"] == "ALLOW_INTERNAL_AND_GCLB"
    env = sc["environmentVariables"]
    assert env["HTTPS_ORIGINS_ONLY"] == "true" and env["ALLOW_CLIENT_SESSION_CONFIG"] == "false"
    assert env.get("ALLOWED_HOSTNAMES", "") == ",".join(want.allowed_hostnames)
    assert env.get("ALLOWED_AGENT_IDS", "") == ",".join(want.agent_ids)
    assert want.agent_ids or "SESSION_CONFIG" in env  # prod never mints for any agent
    assert env["ALLOW_ANY_AGENT"] == "false"  # ...even when agentIds is empty


def test_prod_edge_chain(prod):
    fn = one(prod, FUNCTION)["inputs"]
    ids = {r["name"]: r for r in prod["resources"]}

    def rid(name, collection):
        physical = ids[name]["inputs"].get("name") or name  # auto-named: the mock uses the logical name
        return f"projects/{PLACEHOLDER_PROJECT}/{collection}/{physical}"

    neg = one(prod, NEG)["inputs"]
    assert neg["networkEndpointType"] == "SERVERLESS" and neg["region"] == fn["location"]
    assert neg["cloudRun"] == {"service": fn["name"]}  # the function's Cloud Run service

    backend = one(prod, BACKEND)["inputs"]
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert backend["logConfig"]["enable"] is True
    assert backend["securityPolicy"] == rid("edge-armor", "securitypolicies")
    assert [b["group"] for b in backend["backends"]] == [rid("edge-neg", "regionnetworkendpointgroups")]
    assert "timeoutSec" not in backend and "healthChecks" not in backend  # serverless NEGs reject both

    url_map = by_name(prod, "edge-urlmap")["inputs"]
    assert url_map["defaultService"] == rid("edge-backend", "backendservices")
    cert = one(prod, CERT)["inputs"]
    assert cert["managed"]["domains"] == [stack_settings("prod").domain]
    # No fixed name: a domain change must create the new certificate before deleting the one
    # the proxy still uses (a fixed name forces delete-first, which GCP refuses).
    assert "name" not in cert
    https_proxy = one(prod, HTTPS_PROXY)["inputs"]
    assert https_proxy["urlMap"] == rid("edge-urlmap", "urlmaps")
    assert https_proxy["sslCertificates"] == [rid("edge-cert", "managedsslcertificates")]

    rules = {r["inputs"]["portRange"]: r["inputs"] for r in of_type(prod, FORWARDING)}
    assert set(rules) == {"443", "80"}
    address = "203.0.113.10"  # the reserved address's IP (mock), shared by both rules
    assert rules["443"]["target"] == rid("edge-https-proxy", "targethttpsproxies")
    assert rules["80"]["target"] == rid("edge-http-proxy", "targethttpproxies")
    for rule in rules.values():
        assert rule["ipAddress"] == address
        assert rule["loadBalancingScheme"] == backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"

    (matcher,) = by_name(prod, "edge-http-redirect")["inputs"]["pathMatchers"]
    redirect = matcher["defaultUrlRedirect"]
    assert redirect["httpsRedirect"] is True and redirect["redirectResponseCode"] == "PERMANENT_REDIRECT"  # 308
    assert one(prod, HTTP_PROXY)["inputs"]["urlMap"] == rid("edge-http-redirect", "urlmaps")
    assert one(prod, ADDRESS)

    compute_api = next(a for a in of_type(prod, API) if a["inputs"]["service"] == "compute.googleapis.com")
    for res in prod["resources"]:
        if res["type"].startswith("gcp:compute/"):
            assert compute_api["urn"] in res["dependencies"], res["name"]


def test_prod_cloud_armor_policy(prod):
    want = stack_settings("prod")
    rules = sorted(one(prod, ARMOR)["inputs"]["rules"], key=lambda r: r["priority"])
    if want.allowed_hostnames:
        origin, rate, default = rules
        assert origin["action"] == "deny(403)" and origin["priority"] < rate["priority"]
        expression = origin["match"]["expr"]["expression"]
        assert expression.startswith("has(request.headers['origin']) && !")
        assert all(h.replace(".", "[.]") in expression for h in want.allowed_hostnames)
    else:  # an empty allowlist omits the origin rule
        rate, default = rules
    assert rate["action"] == "rate_based_ban"
    options = rate["rateLimitOptions"]
    assert options["enforceOnKey"] == "IP"
    assert (options["exceedAction"], options["conformAction"]) == ("deny(429)", "allow")
    assert options["rateLimitThreshold"] == {"count": want.rate_limit.requests_per_minute, "intervalSec": 60}
    assert options["banDurationSec"] == want.rate_limit.ban_seconds
    assert default["priority"] == 2147483647 and default["action"] == "allow"
    assert default["match"] == {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}


def test_prod_outputs(prod):
    outputs = {k: v["value"] for k, v in prod["outputs"].items()}
    assert outputs["tokenUrl"] == f"https://{stack_settings('prod').domain}/token"
    assert outputs["ipAddress"] == "203.0.113.10"  # the reserved address (mock)
    assert outputs["functionName"] == "outspeed-token-prod"
    assert any("allowedHostnames" in w for w in prod["warnings"]) == (not stack_settings("prod").allowed_hostnames)


# --- config changes, each run in its own interpreter ------------------------------------------

def test_prod_without_allowlist_drops_the_origin_rule_and_warns():
    result = run("prod", {"allowedHostnames": [], "rateLimit": {"requestsPerMinute": 120, "banSeconds": 600}})
    assert result["error"] is None
    rules = sorted(one(result, ARMOR)["inputs"]["rules"], key=lambda r: r["priority"])
    assert [r["action"] for r in rules] == ["rate_based_ban", "allow"]
    assert rules[0]["rateLimitOptions"]["rateLimitThreshold"] == {"count": 120, "intervalSec": 60}
    assert rules[0]["rateLimitOptions"]["banDurationSec"] == 600
    assert "ALLOWED_HOSTNAMES" not in service_config(result)["environmentVariables"]
    assert any("allowedHostnames" in w for w in result["warnings"])


def test_config_not_the_stack_name_decides_the_edge():
    # The dev stack file with prod settings gets the full edge; prod with authEnabled false gets none.
    as_prod = run("dev", {"authEnabled": True, "domain": "dev-token.example.com", "agentIds": ["a1"],
                          "callerAuth": {"appCheck": {"projectNumber": "42"}}})
    assert as_prod["error"] is None and one(as_prod, ARMOR) and one(as_prod, NEG)
    assert service_config(as_prod)["ingressSettings"] == "ALLOW_INTERNAL_AND_GCLB"
    assert service_config(as_prod)["environmentVariables"]["ALLOW_ANY_AGENT"] == "false"
    assert as_prod["outputs"]["tokenUrl"]["value"] == "https://dev-token.example.com/token"
    as_dev = run("prod", {"authEnabled": False})
    assert as_dev["error"] is None
    assert not [r for r in as_dev["resources"] if r["type"].startswith("gcp:compute/")]
    assert service_config(as_dev)["ingressSettings"] == "ALLOW_ALL" and "ipAddress" not in as_dev["outputs"]
    assert service_config(as_dev)["environmentVariables"]["ALLOW_ANY_AGENT"] == "true"


@pytest.mark.parametrize("memory, cpu", [("128Mi", "1"), ("1Gi", "1"), ("2Gi", None), ("4Gi", None), ("8Gi", None)])
def test_a_whole_cpu_is_pinned_only_where_the_default_is_a_fraction(memory, cpu):
    # Concurrency above 1 needs a whole vCPU; from 2Gi the default already is one or more, and
    # pinning 1 would cut 4Gi+ functions down (1 vCPU allows at most 4Gi).
    sc = service_config(run("dev", {"memory": memory}))
    assert sc["maxInstanceRequestConcurrency"] > 1 and sc.get("availableCpu") == cpu


def test_single_request_concurrency_needs_no_whole_cpu():
    result = run("dev", {"concurrency": 1, "memory": "512Mi", "minInstances": 1, "maxInstances": 3,
                               "sessionConfig": {"model": "m"}, "allowClientSessionConfig": True})
    sc = service_config(result)
    assert sc["maxInstanceRequestConcurrency"] == 1 and "availableCpu" not in sc
    assert sc["environmentVariables"]["THREADS"] == "1"
    assert (sc["minInstanceCount"], sc["maxInstanceCount"], sc["availableMemory"]) == (1, 3, "512Mi")
    assert json.loads(sc["environmentVariables"]["SESSION_CONFIG"]) == {"model": "m"}
    assert sc["environmentVariables"]["ALLOW_CLIENT_SESSION_CONFIG"] == "true"


PROGRAM_BAD = [
    ("prod", {"allowedHostnames": ["*.example.com"]}, "allowedHostnames"),
    ("prod", {"allowedHostnames": ["https://app.example.com"]}, "allowedHostnames"),
    ("prod", {"allowedHostnames": ["app.example.com/x"]}, "allowedHostnames"),
    ("prod", {"allowedHostnames": ["app.example.com:443"]}, "allowedHostnames"),
    ("prod", {"domain": ""}, "domain"),
    ("prod", {"allowClientSessionConfig": True}, "allowClientSessionConfig"),
    ("prod", {"agentIds": []}, "agentIds"),
    ("prod", {"rateLimit": {"requestsPerMinute": 0, "banSeconds": 300}}, "rateLimit.requestsPerMinute"),
    ("prod", {"rateLimit": {"requestsPerMinute": 10001, "banSeconds": 300}}, "rateLimit.requestsPerMinute"),
    ("dev", {"maxInstances": 0}, "maxInstances"),
    ("dev", {"sessionConfig": "not an object"}, "sessionConfig"),
]


@pytest.mark.parametrize("stack,change,key", PROGRAM_BAD, ids=[f"{s}-{k}-{i}" for i, (s, _, k) in enumerate(PROGRAM_BAD)])
def test_bad_config_fails_the_program_before_any_resource(stack, change, key):
    result = run(stack, change)
    assert result["error"]["type"] == "ConfigError" and result["error"]["key"] == key
    assert f"outspeed-token:{key}" in result["error"]["message"] and "Fix: " in result["error"]["message"]
    assert result["resources"] == [] and result["exit_code"] == 2


def test_missing_api_key_fails_naming_it():
    result = run("dev", {"outspeedApiKey": None, "gcp:project": "p"})
    assert result["error"] is not None and "outspeedApiKey" in result["error"]["message"]


def test_missing_project_fails_naming_gcp_project(monkeypatch):
    for var in ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    result = run("dev", {"gcp:project": None})
    assert result["error"]["key"] == "gcp:project" and "pulumi config set gcp:project" in result["error"]["message"]


def test_function_change_renames_the_source_object_and_unchanged_tree_keeps_it(tmp_path):
    # A private copy: function/ itself is never touched (and may change under us meanwhile).
    copy = tmp_path / "function"
    shutil.copytree(DEFAULT_SOURCE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    clean_hash = source_hash(copy)
    # Noise that never ships must not change the name.
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"\x00bytecode")
    (copy / "tests").mkdir(exist_ok=True)
    (copy / "tests" / "test_main.py").write_text("def test(): pass\n")
    first = one(run("dev", function_dir=copy), BUCKET_OBJECT)["inputs"]
    again = one(run("dev", function_dir=copy), BUCKET_OBJECT)["inputs"]
    assert first["name"] == again["name"] == f"function-{clean_hash[:20]}.zip"
    assert not any("pycache" in f or f.startswith("tests/") for f in zipfile.ZipFile(first["source"]["$asset"]).namelist())
    assert Path(first["source"]["$asset"]).read_bytes() == Path(again["source"]["$asset"]).read_bytes()

    main = copy / "main.py"
    main.write_text(main.read_text() + "\n# a code change\n")
    changed = run("dev", function_dir=copy)
    new_name = one(changed, BUCKET_OBJECT)["inputs"]["name"]
    assert new_name != first["name"]
    assert new_name == f"function-{source_hash(copy)[:20]}.zip"
    assert one(changed, FUNCTION)["inputs"]["buildConfig"]["source"]["storageSource"]["object"] == new_name


@pytest.mark.parametrize("stacks", [("production-eu", "production-us"),
                                    ("customer-acme-staging-1", "customer-acme-staging-2"),
                                    ("a-very-long-stack-name-for-staging-one", "a-very-long-stack-name-for-staging-two")])
def test_account_ids_of_stacks_sharing_a_long_start_stay_apart_and_valid(stacks):
    """Issue 21 #7: ids cut to 23 characters of the prefix collided between such stacks."""
    import conformance
    from outspeed_token.names import account_id, physical_name, stack_prefix

    valid = conformance.FIELD_RULES[("iam.v1", "CreateServiceAccountRequest", "accountId")][0]
    ids = []
    for stack in stacks:
        prefix = stack_prefix("outspeed-token", stack)
        assert len(prefix) <= 40
        for role in ("run", "build"):
            account = account_id(prefix, role)
            assert valid(account) is None and account.endswith(f"-{role}"), account
            ids.append(account)
    assert len(set(ids)) == len(ids), ids
    # what the names were before: the first 23 characters of the prefix, the same for both stacks
    old = {physical_name(physical_name("outspeed-token", s, max_len=40)[:23], "run", max_len=30) for s in stacks}
    assert len(old) == 1


def test_names_that_already_fit_are_kept(stack_runs):
    from outspeed_token.names import account_id, stack_prefix

    assert account_id("outspeed-token-prod", "build") == "outspeed-token-prod-build"
    assert stack_prefix("outspeed-token", "dev") == "outspeed-token-dev"
    for stack in ("dev", "prod"):
        ids = sorted(a["inputs"]["accountId"] for a in of_type(stack_runs[stack], ACCOUNT))
        assert ids == [f"outspeed-token-{stack}-build", f"outspeed-token-{stack}-run"]


def test_the_uploaded_zip_is_the_same_bytes_whatever_the_checkout(tmp_path):
    """Issue 21 #5: the object's bytes depend only on the files' paths and contents, not on when
    or how they were checked out, so an unchanged tree is never re-uploaded or replaced."""
    one_checkout, other = tmp_path / "a", tmp_path / "b"
    for copy in (one_checkout, other):
        shutil.copytree(DEFAULT_SOURCE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for i, path in enumerate(sorted(other.rglob("*"))):  # other times and modes, another creation order
        if path.is_file():
            os.utime(path, (1_700_000_000 + i * 3600, 1_700_000_000 + i * 3600))
            path.chmod(0o755 if i % 2 else 0o600)
    assert zip_bytes(one_checkout) == zip_bytes(other) == zip_bytes(one_checkout)
    assert write_zip(one_checkout, tmp_path / "out1").read_bytes() == write_zip(other, tmp_path / "out2").read_bytes()
    with zipfile.ZipFile(write_zip(one_checkout, tmp_path / "out1")) as archive:
        assert archive.namelist() == deployable_files(one_checkout)
        assert all(archive.read(rel) == (one_checkout / rel).read_bytes() for rel in archive.namelist())
    # ...and different contents make different bytes.
    (other / "main.py").write_text((other / "main.py").read_text() + "\n# changed\n")
    assert zip_bytes(one_checkout) != zip_bytes(other)
