"""The spend ceiling's infra (issue 15): `quotas` and `callerAuth.idToken.allowAnonymous` in
stack config, validated at preview; the QUOTA_* environment (DESIGN.md "Function environment");
the store (Memorystore on a private VPC reached by Direct VPC egress, or an external Redis) with
its URL only in Secret Manager; the real program under mocks for both stacks."""
from __future__ import annotations

import ipaddress
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from outspeed_token.quota_store import redis_instance_id, network_name
from outspeed_token.settings import Budget, ConfigError, function_environment, parse, parse_mapping
from infra_helpers import REGION, of_type, one, run
from tools.plan import PLAN_REDIS_AUTH, PLAN_REDIS_CA, render

ISSUER = "https://securetoken.google.com/my-project"
ID_TOKEN = {"issuer": ISSUER, "audience": "my-project"}
PROD_OK = {"authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
           "allowedHostnames": ["app.example.com"], "callerAuth": {"idToken": ID_TOKEN}}
BUDGETS = {"perCaller": [{"count": 5, "windowSeconds": 3600}, {"count": 20, "windowSeconds": 86400}],
           "global": [{"count": 500, "windowSeconds": 3600}]}
MEMORYSTORE = {**BUDGETS, "store": "memorystore"}
EXTERNAL_PASSWORD = "ext-store-password-8d1f0b2a"
EXTERNAL_URL = f"rediss://:{EXTERNAL_PASSWORD}@redis.example.net:6380/2"
EXTERNAL = {"global": [{"count": 100, "windowSeconds": 60}], "store": "external", "redisUrl": EXTERNAL_URL,
            "failOpen": True}

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
INSTANCE = "gcp:redis/instance:Instance"
NETWORK = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
ACCESSOR = "gcp:secretmanager/secretIamMember:SecretIamMember"
QUOTA_VARS = {"QUOTA_PER_CALLER", "QUOTA_GLOBAL", "QUOTA_FAIL_OPEN", "QUOTA_KEY_PREFIX", "QUOTA_REDIS_URL",
              "QUOTA_REDIS_CA_CERT"}
# Google's naming rules, as the APIs state them.
RFC1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # Compute Engine names (networks, subnets)
REDIS_ID = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")  # Memorystore instance ids: 1-40, letter first
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # Secret Manager secret ids


def prod(quotas=None, **changes):
    values = {**PROD_OK, **changes}
    if quotas is not None:
        values["quotas"] = quotas
    return parse_mapping(values)


def quota_env(settings, prefix="outspeed-token-prod"):
    return {k: v for k, v in function_environment(settings, "p", key_prefix=prefix).items() if k.startswith("QUOTA_")}


# --- settings and environment ----------------------------------------------------------------------

def test_budgets_map_to_the_design_variables():
    s = prod(MEMORYSTORE)
    assert s.quotas.per_caller == (Budget(5, 3600), Budget(20, 86400))
    assert s.quotas.global_ == (Budget(500, 3600),)
    assert s.quotas.memorystore and s.quotas.redis_url is None
    assert quota_env(s) == {"QUOTA_PER_CALLER": "5/3600,20/86400", "QUOTA_GLOBAL": "500/3600",
                            "QUOTA_FAIL_OPEN": "false", "QUOTA_KEY_PREFIX": "outspeed-token-prod"}


def test_global_only_fail_open_external_and_cli_json_parse_alike():
    typed = prod(EXTERNAL)
    from_cli = parse({**{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in PROD_OK.items()},
                      "quotas": json.dumps(EXTERNAL)}.get, is_secret=lambda key: key == "quotas")
    assert typed.quotas == from_cli.quotas
    assert quota_env(typed) == {"QUOTA_GLOBAL": "100/60", "QUOTA_FAIL_OPEN": "true",
                                "QUOTA_KEY_PREFIX": "outspeed-token-prod"}
    assert typed.quotas.redis_url == EXTERNAL_URL
    # The store URL is never a plain variable, and never in the settings' repr.
    assert EXTERNAL_PASSWORD not in repr(typed) and EXTERNAL_PASSWORD not in json.dumps(function_environment(typed, "p"))


def test_no_quotas_sets_no_quota_variable_and_empty_object_is_none():
    for s in (prod(), prod({}), parse_mapping({"authEnabled": False})):
        assert s.quotas is None
        assert not set(function_environment(s, "p")) & QUOTA_VARS


def test_the_key_prefix_defaults_to_the_project_for_local_tools():
    assert function_environment(prod(MEMORYSTORE), "p")["QUOTA_KEY_PREFIX"] == "outspeed-token"


@pytest.mark.parametrize("value, env", [(True, "true"), ("true", "true"), (False, None), (None, None)])
def test_allow_anonymous_maps_to_its_variable_and_defaults_to_refusing(value, env):
    id_token = {**ID_TOKEN, **({} if value is None else {"allowAnonymous": value})}
    s = prod(callerAuth={"idToken": id_token})
    assert s.caller_auth.id_token.allow_anonymous is (env == "true")
    assert function_environment(s, "p").get("AUTH_ID_TOKEN_ALLOW_ANONYMOUS") == env  # unset = refused


def test_prod_without_quotas_warns_and_dev_or_prod_with_quotas_does_not():
    warned = [w for w in prod().warnings if "quotas" in w]
    assert len(warned) == 1 and "outspeed-token:quotas is unset" in warned[0] and "perCaller" in warned[0]
    assert not [w for w in prod(MEMORYSTORE).warnings if "quotas" in w]
    assert not [w for w in parse_mapping({"authEnabled": False}).warnings if "quotas" in w]


def test_more_instances_than_the_memorystore_subnet_holds_warns():
    assert not [w for w in prod(MEMORYSTORE, maxInstances=20).warnings if "maxInstances" in w]
    (warned,) = [w for w in prod(MEMORYSTORE, maxInstances=21).warnings if "maxInstances" in w]
    assert "/26" in warned and "21" in warned
    assert not [w for w in prod(EXTERNAL, maxInstances=100).warnings if "maxInstances" in w]  # no subnet


PER_CALLER_APP_CHECK_ONLY = {"callerAuth": {"appCheck": {"projectNumber": "123456789012"}}}


@pytest.mark.parametrize("label, quotas, changes, key, phrase", [
    ("zero count", {**MEMORYSTORE, "perCaller": [{"count": 0, "windowSeconds": 60}]}, {},
     "quotas.perCaller[0].count", "positive"),
    ("text count", {**MEMORYSTORE, "global": [{"count": "ten", "windowSeconds": 60}]}, {},
     "quotas.global[0].count", "whole number"),
    ("fractional count", {**MEMORYSTORE, "global": [{"count": 1.5, "windowSeconds": 60}]}, {},
     "quotas.global[0].count", "whole number"),
    ("zero window", {**MEMORYSTORE, "global": [{"count": 5, "windowSeconds": 0}]}, {},
     "quotas.global[0].windowSeconds", "positive"),
    ("window over a year", {**MEMORYSTORE, "global": [{"count": 5, "windowSeconds": 366 * 86400 + 1}]}, {},
     "quotas.global[0].windowSeconds", "between 1 and 31622400"),
    ("count over the function's bound", {**MEMORYSTORE, "global": [{"count": 10 ** 9 + 1, "windowSeconds": 5}]}, {},
     "quotas.global[0].count", "between 1 and 1000000000"),
    ("missing window", {**MEMORYSTORE, "global": [{"count": 5}]}, {}, "quotas.global[0].windowSeconds", "missing"),
    ("unknown budget field", {**MEMORYSTORE, "global": [{"count": 5, "windowSeconds": 60, "burst": 2}]}, {},
     "quotas.global[0]", "unknown field"),
    ("two budgets for one window", {**MEMORYSTORE, "global": [{"count": 5, "windowSeconds": 60},
                                                             {"count": 9, "windowSeconds": 60}]}, {},
     "quotas.global[1]", "second budget"),
    ("budgets not a list", {**MEMORYSTORE, "global": {"count": 5, "windowSeconds": 60}}, {},
     "quotas.global", "list"),
    ("per-caller without ID tokens", MEMORYSTORE, PER_CALLER_APP_CHECK_ONLY, "quotas.perCaller", "callerAuth.idToken"),
    ("budgets without a store", BUDGETS, {}, "quotas.store", "required"),
    ("unknown store", {**BUDGETS, "store": "redis"}, {}, "quotas.store", "memorystore or external"),
    ("store without budgets", {"store": "memorystore"}, {}, "quotas", "no budget"),
    ("external without url", {**BUDGETS, "store": "external"}, {}, "quotas.redisUrl", "required"),
    ("external plain redis", {**BUDGETS, "store": "external", "redisUrl": f"redis://:{EXTERNAL_PASSWORD}@10.0.0.3:6379"},
     {}, "quotas.redisUrl", "redis://"),
    ("external loopback redis", {**BUDGETS, "store": "external", "redisUrl": f"redis://:{EXTERNAL_PASSWORD}@127.0.0.1:6379"},
     {}, "quotas.redisUrl", "cannot reach"),
    ("external https url", {**BUDGETS, "store": "external", "redisUrl": f"https://:{EXTERNAL_PASSWORD}@h.example.com"},
     {}, "quotas.redisUrl", "rediss://"),
    ("external bad db", {**BUDGETS, "store": "external", "redisUrl": f"rediss://:{EXTERNAL_PASSWORD}@h.example.com:6380/16"},
     {}, "quotas.redisUrl", "0 to 15"),
    ("external bad port", {**BUDGETS, "store": "external", "redisUrl": f"rediss://:{EXTERNAL_PASSWORD}@h.example.com:99999"},
     {}, "quotas.redisUrl", "well-formed"),
    ("memorystore with url", {**MEMORYSTORE, "redisUrl": EXTERNAL_URL}, {}, "quotas.redisUrl", "memorystore"),
    ("fail open not a bool", {**MEMORYSTORE, "failOpen": "sometimes"}, {}, "quotas.failOpen", "true or false"),
    ("unknown quotas field", {**MEMORYSTORE, "perIp": []}, {}, "quotas", "unknown field"),
    ("quotas not an object", [1], {}, "quotas", "object"),
    ("allowAnonymous not a bool", None, {"callerAuth": {"idToken": {**ID_TOKEN, "allowAnonymous": "yes"}}},
     "callerAuth.idToken.allowAnonymous", "true or false"),
])
def test_bad_quotas_config_names_the_key_and_the_fix_and_never_the_password(label, quotas, changes, key, phrase):
    with pytest.raises(ConfigError) as caught:
        prod(quotas, **changes)
    assert caught.value.key == key, label
    message = str(caught.value)
    assert f"config outspeed-token:{key}:" in message and phrase in message, message
    assert message.split("Fix: ", 1)[1].strip()
    assert EXTERNAL_PASSWORD not in message


def test_an_external_url_that_is_not_a_pulumi_secret_is_refused():
    values = {**PROD_OK, "quotas": EXTERNAL}
    with pytest.raises(ConfigError) as caught:
        parse(values.get, is_secret=lambda key: False)
    assert caught.value.key == "quotas.redisUrl" and "not a Pulumi secret" in str(caught.value)
    assert "--secret --path quotas.redisUrl" in str(caught.value) and EXTERNAL_PASSWORD not in str(caught.value)
    assert parse(values.get, is_secret=lambda key: key == "quotas").quotas.redis_url == EXTERNAL_URL


def test_google_facing_names_meet_the_apis_rules_for_any_prefix():
    for prefix in ("outspeed-token-dev", "outspeed-token-prod", "x" * 40, "outspeed-token-a-very-long-stack-na"):
        for suffix in ("quota", "quota-fn"):
            assert RFC1035.match(network_name(prefix, suffix)), (prefix, suffix)
        assert REDIS_ID.match(redis_instance_id(prefix)) and len(redis_instance_id(prefix)) <= 40, prefix
        assert SECRET_ID.match(network_name(prefix, "quota-redis-url"))
    assert redis_instance_id("outspeed-token-prod") == "outspeed-token-prod-quota"


# --- the program under mocks -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quota_runs() -> dict[str, dict[str, Any]]:
    """prod with a Memorystore store, dev with an external one (a Pulumi secret, as the CLI
    passes it after `config set --secret --path`)."""
    dev_values = {"quotas": EXTERNAL, "callerAuth": {"idToken": {**ID_TOKEN, "allowAnonymous": True}}}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {"memorystore": pool.submit(run, "prod", {"quotas": MEMORYSTORE}),
                   "external": pool.submit(run, "dev", dev_values)}
        runs = {name: f.result() for name, f in futures.items()}
    for name, result in runs.items():
        assert result["error"] is None, f"{name}: {result['error']}"
    return runs


def _service(result) -> dict[str, Any]:
    return one(result, FUNCTION)["inputs"]["serviceConfig"]


def _plain_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string outside a Pulumi secret, with where it is."""
    if isinstance(value, dict):
        if "$secret" in value:
            return []
        return [item for k, v in value.items() for item in _plain_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _plain_strings(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def _secret_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        if "$secret" in value:
            return [json.dumps(value["$secret"])]
        return [s for v in value.values() for s in _secret_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secret_strings(v)]
    return []


def _leaks(result, password: str) -> list[str]:
    where = [f"{r['name']}{path}" for r in result["resources"] for path, text in _plain_strings(r["inputs"])
             if password in text]
    where += [f"output {name}" for name, out in result["outputs"].items()
              if password in json.dumps(out["value"]) and not out["secret"]]
    return where + [f"warning {w}" for w in result["warnings"] if password in w]


def test_memorystore_is_basic_1gb_with_auth_and_tls_on_its_own_network(quota_runs):
    r = quota_runs["memorystore"]
    redis = one(r, INSTANCE)["inputs"]
    network = one(r, NETWORK)["inputs"]
    subnet = one(r, SUBNET)["inputs"]
    assert {k: redis[k] for k in ("tier", "memorySizeGb", "authEnabled", "transitEncryptionMode", "connectMode",
                                  "region")} == {
        "tier": "BASIC", "memorySizeGb": 1, "authEnabled": True, "transitEncryptionMode": "SERVER_AUTHENTICATION",
        "connectMode": "DIRECT_PEERING", "region": REGION}
    assert network["autoCreateSubnetworks"] is False
    network_id = f"projects/{network['project']}/networks/{network['name']}"  # the mocks' id
    assert redis["authorizedNetwork"] == network_id and subnet["network"] == network_id
    assert subnet["region"] == REGION
    subnet_range = ipaddress.ip_network(subnet["ipCidrRange"])
    assert subnet_range.prefixlen == 26 and subnet_range.is_private  # Direct VPC egress needs /26 or larger
    redis_range = ipaddress.ip_network(redis["reservedIpRange"])
    assert redis_range.prefixlen == 29 and not redis_range.overlaps(subnet_range)
    assert RFC1035.match(network["name"]) and RFC1035.match(subnet["name"]) and REDIS_ID.match(redis["name"])
    assert redis["deletionProtection"] is False  # only expiring counters: `pulumi destroy` works


def test_the_function_reaches_the_store_by_direct_vpc_egress_private_ranges_only(quota_runs):
    r = quota_runs["memorystore"]
    service = _service(r)
    assert service["directVpcNetworkInterfaces"] == [{"network": one(r, NETWORK)["inputs"]["name"],
                                                      "subnetwork": one(r, SUBNET)["inputs"]["name"]}]
    assert service["directVpcEgress"] == "VPC_EGRESS_PRIVATE_RANGES_ONLY"  # Outspeed stays a direct call
    assert "vpcConnector" not in service  # no Serverless VPC Access connector
    apis = {res["inputs"]["service"] for res in of_type(r, "gcp:projects/service:Service")}
    assert {"redis.googleapis.com", "compute.googleapis.com"} <= apis and "vpcaccess.googleapis.com" not in apis


def test_the_store_url_is_a_pinned_secret_env_var_and_the_ca_a_plain_one(quota_runs):
    r = quota_runs["memorystore"]
    service = _service(r)
    env = service["environmentVariables"]
    assert {k: env[k] for k in QUOTA_VARS - {"QUOTA_REDIS_URL"}} == {
        "QUOTA_PER_CALLER": "5/3600,20/86400", "QUOTA_GLOBAL": "500/3600", "QUOTA_FAIL_OPEN": "false",
        "QUOTA_KEY_PREFIX": "outspeed-token-prod", "QUOTA_REDIS_CA_CERT": PLAN_REDIS_CA}
    assert "QUOTA_REDIS_URL" not in env
    (bound,) = [e for e in service["secretEnvironmentVariables"] if e["key"] == "QUOTA_REDIS_URL"]
    store_secret = next(s["inputs"] for s in of_type(r, SECRET) if s["name"] == "token-quota-redis-url")
    assert bound["secret"] == store_secret["secretId"] and bound["version"] == "1"  # pinned, never latest
    version = next(v["inputs"] for v in of_type(r, VERSION) if v["name"] == "token-quota-redis-url-version")
    assert version["secretData"] == {"$secret": f"rediss://:{PLAN_REDIS_AUTH}@10.8.1.3:6378"}


def test_no_store_password_in_plain_inputs_outputs_or_warnings(quota_runs):
    for name, password in (("memorystore", PLAN_REDIS_AUTH), ("external", EXTERNAL_PASSWORD)):
        r = quota_runs[name]
        assert _leaks(r, password) == [], name
        # The scan can find it: the password is there, but only inside secrets.
        assert any(password in s for res in r["resources"] for s in _secret_strings(res["inputs"])), name


def test_only_the_runtime_account_reads_the_store_secret(quota_runs):
    r = quota_runs["memorystore"]
    grants = [g["inputs"] for g in of_type(r, ACCESSOR) if "quota" in g["inputs"]["secretId"]]
    assert len(grants) == 1
    assert grants[0]["role"] == "roles/secretmanager.secretAccessor"
    assert grants[0]["member"].startswith("serviceAccount:outspeed-token-prod-run@")
    project_roles = [g["inputs"]["member"] for g in of_type(r, "gcp:projects/iAMMember:IAMMember")]
    assert not [m for m in project_roles if "-run@" in m]  # the runtime account holds no project role


def test_the_function_waits_for_the_store_and_its_grant(quota_runs):
    r = quota_runs["memorystore"]
    fn = one(r, FUNCTION)
    by_urn = {res["urn"]: res["name"] for res in r["resources"]}
    waits = {by_urn.get(d, d) for d in fn["dependencies"]}
    # depends_on the QuotaStore component = on its resources: the instance and the secret version.
    assert {"token-quota-url-accessor", "token-quota-redis", "token-quota-redis-url-version"} <= waits
    redis = one(r, INSTANCE)
    assert {"token-quota-apis-redis", "token-quota-apis-compute", "token-quota-subnet"} <= \
        {by_urn.get(d, d) for d in redis["dependencies"]}


def test_external_store_has_no_network_and_only_the_secret(quota_runs):
    r = quota_runs["external"]
    assert not of_type(r, INSTANCE) and not of_type(r, NETWORK) and not of_type(r, SUBNET)
    service = _service(r)
    assert "directVpcNetworkInterfaces" not in service and "directVpcEgress" not in service
    env = service["environmentVariables"]
    assert "QUOTA_REDIS_CA_CERT" not in env and "QUOTA_REDIS_URL" not in env
    assert env["QUOTA_GLOBAL"] == "100/60" and env["QUOTA_FAIL_OPEN"] == "true"
    assert env["QUOTA_KEY_PREFIX"] == "outspeed-token-dev"
    assert env["AUTH_ID_TOKEN_ALLOW_ANONYMOUS"] == "true"
    assert [e["key"] for e in service["secretEnvironmentVariables"]] == ["OUTSPEED_API_KEY", "QUOTA_REDIS_URL"]
    version = next(v["inputs"] for v in of_type(r, VERSION) if v["name"] == "token-quota-redis-url-version")
    assert version["secretData"] == {"$secret": EXTERNAL_URL}


def test_both_stacks_plan_without_quotas_and_create_no_store(dev, prod):
    for r in (dev, prod):
        assert not of_type(r, INSTANCE) and not of_type(r, NETWORK)
        service = _service(r)
        assert not set(service["environmentVariables"]) & QUOTA_VARS
        assert [e["key"] for e in service["secretEnvironmentVariables"]] == ["OUTSPEED_API_KEY"]
        assert "directVpcNetworkInterfaces" not in service
        assert not [m for m in of_type(r, "gcp:logging/metric:Metric") if m["inputs"]["name"].endswith("-quota")]
    assert any("outspeed-token:quotas is unset" in w for w in prod["warnings"])
    assert not any("quotas" in w for w in dev["warnings"])


def test_monitoring_watches_the_store_and_the_global_budget_only_with_quotas(quota_runs):
    for r in quota_runs.values():
        (metric,) = [m["inputs"] for m in of_type(r, "gcp:logging/metric:Metric") if m["inputs"]["name"].endswith("-quota")]
        assert metric["labelExtractors"]["quota"] == "EXTRACT(jsonPayload.quota)"
        titles = {p["inputs"]["displayName"].split(": ", 1)[1] for p in of_type(r, "gcp:monitoring/alertPolicy:AlertPolicy")}
        assert {"Global mint budget reached", "Quota store failing"} <= titles
        board = json.loads(one(r, "gcp:monitoring/dashboard:Dashboard")["inputs"]["dashboardJson"])
        charts = [t["widget"]["title"] for t in board["mosaicLayout"]["tiles"]]
        assert "Per-caller budget refusals per second" in charts
        assert "Global budget refusals and quota store failures per second" in charts


def test_make_plan_prints_budgets_store_route_and_fail_mode(quota_runs, dev):
    memorystore = render(quota_runs["memorystore"])
    assert "quotas per caller 5 per 3,600 s, 20 per 86,400 s; global 500 per 3,600 s" in memorystore
    assert "Direct VPC egress VPC_EGRESS_PRIVATE_RANGES_ONLY via outspeed-token-prod-quota/outspeed-token-prod-quota-fn" \
        in memorystore
    assert "fail closed: store down -> 503 quota_unavailable" in memorystore
    assert "BASIC 1 GB REDIS_7_2, AUTH on, TLS SERVER_AUTHENTICATION" in memorystore
    assert PLAN_REDIS_AUTH not in memorystore and "BEGIN CERTIFICATE" not in memorystore
    external = render(quota_runs["external"])
    assert "global 100 per 60 s" in external and "fail OPEN" in external and "no VPC" in external
    assert EXTERNAL_PASSWORD not in external
    assert "quotas none" in render(dev)
