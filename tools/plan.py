"""`make plan STACK=dev|prod`: what `pulumi up` would create, without cloud credentials.

Runs the real `__main__.py` under Pulumi mocks with the stack's config (Pulumi.yaml defaults,
then Pulumi.<stack>.yaml, plus placeholders for what users set themselves: `gcp:project`
and the secret `outspeedApiKey`), then prints every resource with its key settings, the
stack outputs, warnings, or the config error (exit status 2).

    python -m tools.plan prod
    python -m tools.plan prod --set domain=            # try a config change
    python -m tools.plan dev --json result.json        # machine-readable (used by tests)

This module is also the test harness for tests/infra: `run_isolated()` runs the program in
a fresh interpreter (Pulumi's runtime state is per process) and returns the same data.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import runpy
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "outspeed-token"
PLACEHOLDER_PROJECT = "plan-placeholder-project"
PLACEHOLDER_API_KEY = "plan-placeholder-api-key-0123456789"
SECRET_KEYS = [f"{PROJECT}:outspeedApiKey"]
# What the mocked Memorystore instance answers (tests look for the AUTH string in plain state).
PLAN_REDIS_AUTH = "plan-mock-redis-auth-3f9d2c71e0b84a56"
PLAN_REDIS_CA = "-----BEGIN CERTIFICATE-----\nMIIBplanmockserverca\n-----END CERTIFICATE-----\n"
PLACEHOLDER_REDIS_URL = "rediss://:plan-placeholder-password@redis.plan-placeholder.example:6379"
FUNCTION_DIR_ENV = "OUTSPEED_TOKEN_FUNCTION_DIR"
_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")


# --- config ------------------------------------------------------------------------------------

def stack_runtime_config(stack: str, overrides: Optional[dict[str, Any]] = None,
                         api_key: str = PLACEHOLDER_API_KEY) -> dict[str, str]:
    """Fully-qualified key -> string value, the way the Pulumi CLI hands config to a program
    (lists and objects as JSON). Placeholders for gcp:project and the secret key are only
    added when the stack file does not set them. `overrides`: bare or qualified key -> value;
    None removes the key."""
    from outspeed_token.stackfiles import stack_config

    merged: dict[str, Any] = stack_config(stack, ROOT)
    merged.setdefault("gcp:project", PLACEHOLDER_PROJECT)
    key_name = f"{PROJECT}:outspeedApiKey"
    if not isinstance(merged.get(key_name), str):  # absent, or an encrypted {secure: ...} we cannot read
        merged[key_name] = api_key
    quotas = merged.get(f"{PROJECT}:quotas")
    if isinstance(quotas, dict) and isinstance(quotas.get("redisUrl"), dict):  # `config set --secret --path`
        merged[f"{PROJECT}:quotas"] = {**quotas, "redisUrl": PLACEHOLDER_REDIS_URL}
    for key, value in (overrides or {}).items():
        qualified = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            merged.pop(qualified, None)
        else:
            merged[qualified] = value

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return str(value)

    return {k: text(v) for k, v in merged.items()}


# --- mocks -------------------------------------------------------------------------------------

def secret_keys(config: dict[str, str]) -> list[str]:
    """The keys the CLI would pass as secrets: the API key, and `quotas` once it holds a
    redisUrl (`pulumi config set --secret --path quotas.redisUrl ...` makes the object secret)."""
    quotas = config.get(f"{PROJECT}:quotas")
    try:
        has_url = bool(json.loads(quotas).get("redisUrl")) if quotas else False
    except (ValueError, AttributeError):
        has_url = False
    return SECRET_KEYS + ([f"{PROJECT}:quotas"] if has_url else [])


def _mocks_module():
    import pulumi

    class PlanMocks(pulumi.runtime.Mocks):
        """Plausible provider answers: inputs echoed back plus the computed fields the program
        reads (function URI and Cloud Run service, secret version, account e-mail, IP)."""

        def __init__(self, project: str):
            self.project = project

        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            state = dict(args.inputs)
            kind = args.typ.split(":")[-1]
            project = state.get("project") or self.project
            plural = {"y": kind[:-1] + "ies", "s": kind + "es"}.get(kind[-1], kind + "s")
            collection = plural.lower()
            rid = f"projects/{project}/{collection}/{state.get('name') or args.name}"
            if args.typ == "gcp:serviceaccount/account:Account":
                email = f"{state['accountId']}@{project}.iam.gserviceaccount.com"
                rid = f"projects/{project}/serviceAccounts/{email}"
                state.update(email=email, name=rid, member=f"serviceAccount:{email}")
            elif args.typ == "gcp:secretmanager/secret:Secret":
                rid = f"projects/{project}/secrets/{state['secretId']}"
                state["name"] = rid
            elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
                rid = f"{state['secret']}/versions/1"
                state.update(version="1", name=rid)
            elif args.typ == "gcp:storage/bucket:Bucket":
                state.setdefault("name", f"{args.name}-5f3a9c1")
                state["url"] = f"gs://{state['name']}"
            elif args.typ == "gcp:cloudfunctionsv2/function:Function":
                region, name = state["location"], state["name"]
                service = dict(state.get("serviceConfig") or {})
                service.update(service=f"projects/{project}/locations/{region}/services/{name}",
                               uri=f"https://{name}-abc123xyz-uc.a.run.app")
                state.update(serviceConfig=service, url=f"https://{region}-{project}.cloudfunctions.net/{name}",
                             state="ACTIVE")
                rid = f"projects/{project}/locations/{region}/functions/{name}"
            elif args.typ == "gcp:compute/globalAddress:GlobalAddress":
                state["address"] = "203.0.113.10"
            elif args.typ == "gcp:redis/instance:Instance":
                state.update(host="10.8.1.3", port=6378 if state.get("transitEncryptionMode") == "SERVER_AUTHENTICATION"
                             else 6379, authString=PLAN_REDIS_AUTH, serverCaCerts=[{"cert": PLAN_REDIS_CA}])
            if args.typ.startswith("gcp:compute/"):
                state.setdefault("selfLink", f"https://www.googleapis.com/compute/v1/{rid}")
            return rid, state

        def call(self, args: pulumi.runtime.MockCallArgs):
            return {}, None

    return PlanMocks


def _plain(value: Any) -> Any:
    """Resource inputs as JSON data; a Pulumi secret becomes {"$secret": value}."""
    import pulumi
    from pulumi.output import Unknown

    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            return {"$secret": _plain(value.get("value"))}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.AssetArchive):
        return {"$archive": sorted(value.assets)}
    if isinstance(value, pulumi.FileAsset):
        return {"$asset": str(value.path)}
    if isinstance(value, Unknown):
        return "$unknown"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a double
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _alias(alias) -> dict[str, Any]:
    """An alias as the SDK sent it: {"urn"} or the spec's fields (tests compute its URN as the
    engine does: tests/infra/infra_helpers.alias_urn)."""
    if alias.HasField("urn"):
        return {"urn": alias.urn}
    spec = alias.spec
    out = {k: getattr(spec, k) for k in ("name", "type", "stack", "project") if getattr(spec, k)}
    which = spec.WhichOneof("parent")
    if which == "parentUrn":
        out["parentUrn"] = spec.parentUrn
    elif which == "noParent":
        out["noParent"] = spec.noParent
    return out


def run_program(stack: str, overrides: Optional[dict[str, Any]] = None,
                api_key: str = PLACEHOLDER_API_KEY) -> dict[str, Any]:
    """Run __main__.py under mocks in THIS process (call once per process) and return
    {"stack", "resources": [{type, name, custom, urn, parent, dependencies, inputs, aliases}], "outputs":
    {name: {"value", "secret"}}, "warnings", "error"}."""
    import pulumi
    from pulumi.runtime import mocks as pmocks, settings as psettings
    from pulumi.runtime.rpc import deserialize_properties
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    config = stack_runtime_config(stack, overrides, api_key)
    resources: list[dict[str, Any]] = []
    warnings: list[str] = []
    thread_loops: set = set()  # the engine's executor threads each get a loop to deserialize in

    class Recorder(pmocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                thread_loops.add(_ensure_event_loop())
                resources.append({
                    "type": request.type,
                    "name": request.name,
                    "custom": bool(request.custom),
                    "urn": response.urn,
                    "parent": request.parent,
                    "dependencies": sorted(request.dependencies),
                    "inputs": _plain(deserialize_properties(request.object)),
                    "aliases": [_alias(a) for a in request.aliases],
                })
            return response

    class Capture(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logger = logging.getLogger(f"tools.plan.{stack}")
    logger.propagate = False
    logger.addHandler(Capture())

    mocks = _mocks_module()(config.get("gcp:project", PLACEHOLDER_PROJECT))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                             logger=logger, monitor=Recorder(mocks))
    pulumi.runtime.set_all_config(config, secret_keys(config))

    error = None
    cwd = os.getcwd()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")))
    except Exception as exc:  # the program's own failure is the result, not a harness crash
        error = {"type": type(exc).__name__, "message": str(exc), "key": getattr(exc, "key", None)}
    finally:
        os.chdir(cwd)

    outputs: dict[str, Any] = {}
    root = psettings.get_root_resource()

    async def resolve():
        for name, value in (root.outputs if root is not None else {}).items():
            out = pulumi.Output.from_input(value)
            outputs[name] = {"value": _plain(await out.future()), "secret": bool(await out.is_secret())}

    if error is None:
        _sync_await(resolve())
    # Close the runtime's loops now; left to interpreter shutdown they can print a spurious
    # traceback ("Invalid file descriptor") once their sockets are gone.
    asyncio.get_event_loop().close()
    for loop in thread_loops:
        if not loop.is_closed() and not loop.is_running():
            loop.close()
    return {"stack": stack, "resources": resources, "outputs": outputs, "warnings": warnings, "error": error}


def run_isolated(stack: str, overrides: Optional[dict[str, Any]] = None, function_dir: Optional[Path] = None,
                 api_key: Optional[str] = None, timeout: float = 120.0) -> dict[str, Any]:
    """`run_program` in a fresh interpreter, so no Pulumi runtime state leaks between runs."""
    with tempfile.TemporaryDirectory(prefix="plan-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "tools.plan", stack, "--json", str(out)]
        for key, value in (overrides or {}).items():
            cmd += ["--set-json", f"{key}={json.dumps(value)}"]
        if api_key is not None:
            cmd += ["--api-key", api_key]
        env = dict(os.environ)
        env.pop(FUNCTION_DIR_ENV, None)
        if function_dir is not None:
            env[FUNCTION_DIR_ENV] = str(function_dir)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if not out.is_file():
            raise RuntimeError(f"plan run crashed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result = json.loads(out.read_text())
        result["exit_code"] = proc.returncode
        return result


# --- printing ----------------------------------------------------------------------------------

def _short_type(typ: str) -> str:
    pkg, module, kind = (typ.split(":") + ["", ""])[:3]
    return f"{module.split('/')[0]}.{kind}" if pkg == "gcp" else kind


def _secret_text(value: Any) -> str:
    return "[secret]" if isinstance(value, dict) and "$secret" in value else str(value)


def _caller_checks(env: dict[str, str]) -> str:
    """The caller checks the function will enforce, from its AUTH_* environment."""
    checks = []
    if env.get("AUTH_ID_TOKEN_ISSUER"):
        keys = env.get("AUTH_ID_TOKEN_JWKS_URI") or "OIDC discovery"
        checks.append(f"ID token (iss {env['AUTH_ID_TOKEN_ISSUER']}, aud {env.get('AUTH_ID_TOKEN_AUDIENCE')}, "
                      f"keys {keys})")
    if env.get("AUTH_APP_CHECK_PROJECT_NUMBER"):
        apps = env.get("AUTH_APP_CHECK_APP_IDS") or "any app"
        checks.append(f"App Check (project {env['AUTH_APP_CHECK_PROJECT_NUMBER']}, {apps})")
    return " + ".join(checks) if checks else "not verified (no callerAuth check)"


def _quota_lines(s: dict[str, Any]) -> list[str]:
    """The spend ceiling as the function will enforce it, from its QUOTA_* environment, its
    secret QUOTA_REDIS_URL and its egress."""
    env = s.get("environmentVariables", {})
    if not (env.get("QUOTA_PER_CALLER") or env.get("QUOTA_GLOBAL")):
        return ["quotas none (no budget: keys are limited only by callerAuth, rateLimit and maxInstances)"]

    def budgets(spec: Optional[str]) -> str:
        return ", ".join(f"{c} per {int(w):,} s" for c, w in (b.split("/") for b in spec.split(","))) if spec else "none"

    store = next((f"secret {e.get('secret')} version {e.get('version')}" for e in s.get("secretEnvironmentVariables", [])
                  if e.get("key") == "QUOTA_REDIS_URL"), "NO QUOTA_REDIS_URL")
    tls = "server CA pinned (QUOTA_REDIS_CA_CERT)" if env.get("QUOTA_REDIS_CA_CERT") else "public CAs"
    vpc = s.get("directVpcNetworkInterfaces") or []
    route = (f"Direct VPC egress {s.get('directVpcEgress')} via {vpc[0].get('network')}/{vpc[0].get('subnetwork')}"
             if vpc else "no VPC (an external store on a public address)")
    fail = ("OPEN: store down -> mint and log" if env.get("QUOTA_FAIL_OPEN") == "true"
            else "closed: store down -> 503 quota_unavailable")
    return [f"quotas per caller {budgets(env.get('QUOTA_PER_CALLER'))}; global {budgets(env.get('QUOTA_GLOBAL'))}",
            f"quota store {store}, {tls}, keys under {env.get('QUOTA_KEY_PREFIX')}; {route}; fail {fail}"]


def summarize(resource: dict[str, Any]) -> str:
    """The settings a reviewer compares between stacks, per resource type."""
    i, kind = resource["inputs"], resource["type"]
    if not resource["custom"]:
        return "component"
    if kind == "gcp:projects/service:Service":
        return f"api {i.get('service')} (disableOnDestroy={i.get('disableOnDestroy')})"
    if kind == "gcp:serviceaccount/account:Account":
        return f"account {i.get('accountId')}"
    if kind in ("gcp:projects/iAMMember:IAMMember", "gcp:secretmanager/secretIamMember:SecretIamMember",
                "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
                "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"):
        if kind.startswith("gcp:projects/"):
            scope = f"project {i.get('project')} (project-wide)"
        elif kind.startswith("gcp:artifactregistry/"):
            scope = f"repository {i.get('location')}/{i.get('repository')} only"
        else:
            scope = i.get("secretId") or i.get("name")
        return f"{i.get('role')} -> {i.get('member')} on {scope}"
    if kind == "gcp:artifactregistry/repository:Repository":
        return f"{i.get('format')} repository {i.get('location')}/{i.get('repositoryId')}"
    if kind == "gcp:secretmanager/secret:Secret":
        return f"secret {i.get('secretId')}"
    if kind == "time:index/sleep:Sleep":
        why = ("new log-based metrics become known to Monitoring before the alert policies" if i.get("triggers")
               else "IAM grants take effect before the first build")
        return f"wait {i.get('createDuration')} on create ({why})"
    if kind == "gcp:secretmanager/secretVersion:SecretVersion":
        return f"data {_secret_text(i.get('secretData'))}"
    if kind == "gcp:storage/bucket:Bucket":
        return f"location {i.get('location')}, public access {i.get('publicAccessPrevention')}"
    if kind == "gcp:storage/bucketObject:BucketObject":
        source = (i.get("source") or {}).get("$asset")
        files = zipfile.ZipFile(source).namelist() if source and Path(source).is_file() else []
        return f"object {i.get('name')} ({len(files)} files)"
    if kind == "gcp:cloudfunctionsv2/function:Function":
        b, s = i.get("buildConfig", {}), i.get("serviceConfig", {})
        env = s.get("environmentVariables", {})
        secrets = ", ".join(f"{e.get('key')} <- secret {e.get('secret')} version {e.get('version')}"
                            for e in s.get("secretEnvironmentVariables", []))
        lines = [
            f"{i.get('name')} {b.get('runtime')} entry={b.get('entryPoint')} source={b.get('source', {}).get('storageSource', {}).get('object')}",
            f"build as {b.get('serviceAccount')}, images -> {b.get('dockerRepository')}",
            f"ingress {s.get('ingressSettings')}, instances {s.get('minInstanceCount')}-{s.get('maxInstanceCount')}, "
            f"concurrency {s.get('maxInstanceRequestConcurrency')}, cpu {s.get('availableCpu')}, memory {s.get('availableMemory')}",
            f"callers {_caller_checks(env)}",
            *_quota_lines(s),
            *(f"env {k}={v}" for k, v in sorted(env.items()) if k != "QUOTA_REDIS_CA_CERT"),
            *([f"env QUOTA_REDIS_CA_CERT=<PEM, {len(env['QUOTA_REDIS_CA_CERT'])} characters>"]
              if env.get("QUOTA_REDIS_CA_CERT") else []),
            f"secret env {secrets}",
        ]
        return "\n".join(lines)
    if kind == "gcp:compute/securityPolicy:SecurityPolicy":
        lines = []
        for rule in sorted(i.get("rules", []), key=lambda r: r.get("priority", 0)):
            match = rule.get("match", {})
            what = (match.get("expr") or {}).get("expression") or ",".join((match.get("config") or {}).get("srcIpRanges", []))
            rate = rule.get("rateLimitOptions")
            if rate:
                t = rate.get("rateLimitThreshold", {})
                what = (f"{t.get('count')} req/{t.get('intervalSec')}s per {rate.get('enforceOnKey')} -> "
                        f"{rate.get('exceedAction')}, ban {rate.get('banDurationSec')}s")
            lines.append(f"rule {rule.get('priority')} {rule.get('action')}: {what}")
        return "\n".join(lines)
    if kind == "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup":
        return f"{i.get('networkEndpointType')} cloud_run service {(i.get('cloudRun') or {}).get('service')}"
    if kind == "gcp:compute/backendService:BackendService":
        return (f"scheme {i.get('loadBalancingScheme')}, armor {i.get('securityPolicy')}, "
                f"logging {(i.get('logConfig') or {}).get('enable')}")
    if kind == "gcp:compute/uRLMap:URLMap":
        matchers = {m.get("name"): m for m in i.get("pathMatchers", [])}
        lines = []
        for rule in i.get("hostRules", []):
            matcher = matchers.get(rule.get("pathMatcher"), {})
            redirect = matcher.get("defaultUrlRedirect")
            target = (f"redirect https={redirect.get('httpsRedirect')} code {redirect.get('redirectResponseCode')}"
                      if redirect else f"service {matcher.get('defaultService')}")
            lines.append(f"host {','.join(rule.get('hosts', []))} -> {target}")
        abort = (((i.get("defaultRouteAction") or {}).get("faultInjectionPolicy") or {}).get("abort") or {})
        redirect = i.get("defaultUrlRedirect")
        if abort.get("percentage") == 100:
            lines.append(f"any other host -> {abort.get('httpStatus')} from the load balancer")
        elif redirect:
            lines.append(f"any host -> redirect https={redirect.get('httpsRedirect')} code {redirect.get('redirectResponseCode')}")
        else:
            lines.append(f"any other host -> service {i.get('defaultService')}")
        return "\n".join(lines)
    if kind == "gcp:compute/sSLPolicy:SSLPolicy":
        return f"min {i.get('minTlsVersion')}, profile {i.get('profile')}"
    if kind == "gcp:compute/managedSslCertificate:ManagedSslCertificate":
        return f"managed cert for {', '.join((i.get('managed') or {}).get('domains', []))}"
    if kind == "gcp:compute/targetHttpsProxy:TargetHttpsProxy":
        return f"url map {i.get('urlMap')}, ssl policy {i.get('sslPolicy')}"
    if kind == "gcp:compute/targetHttpProxy:TargetHttpProxy":
        return f"url map {i.get('urlMap')}"
    if kind == "gcp:compute/globalAddress:GlobalAddress":
        return f"reserved {i.get('ipVersion')} address"
    if kind == "gcp:redis/instance:Instance":
        return (f"{i.get('name')} {i.get('tier')} {i.get('memorySizeGb')} GB {i.get('redisVersion')}, "
                f"AUTH {'on' if i.get('authEnabled') else 'OFF'}, TLS {i.get('transitEncryptionMode')}, "
                f"{i.get('connectMode')} on {i.get('authorizedNetwork')} ({i.get('reservedIpRange')})")
    if kind == "gcp:compute/network:Network":
        return f"network {i.get('name')}, auto subnets {i.get('autoCreateSubnetworks')}"
    if kind == "gcp:compute/subnetwork:Subnetwork":
        return f"subnet {i.get('name')} {i.get('ipCidrRange')} in {i.get('region')}"
    if kind == "gcp:logging/metric:Metric":
        d = i.get("metricDescriptor") or {}
        labels = ", ".join(f"{k}={v}" for k, v in sorted((i.get("labelExtractors") or {}).items()))
        lines = [f"{i.get('name')} {d.get('valueType')} {d.get('unit')}", f"filter {i.get('filter')}"]
        if labels:
            lines.append(f"labels {labels}")
        if i.get("valueExtractor"):
            lines.append(f"value {i.get('valueExtractor')}, buckets {i.get('bucketOptions')}")
        return "\n".join(lines)
    if kind == "gcp:monitoring/notificationChannel:NotificationChannel":
        return f"{i.get('type')} {(i.get('labels') or {}).get('email_address')}"
    if kind == "gcp:monitoring/alertPolicy:AlertPolicy":
        return "\n".join(alert_lines(i))
    if kind == "gcp:monitoring/dashboard:Dashboard":
        board = json.loads(i.get("dashboardJson") or "{}")
        titles = [t["widget"]["title"] for t in board.get("mosaicLayout", {}).get("tiles", [])]
        return "\n".join([f"dashboard {board.get('displayName')!r}", *(f"chart {t}" for t in titles)])
    if kind == "gcp:compute/globalForwardingRule:GlobalForwardingRule":
        return f":{i.get('portRange')} {i.get('loadBalancingScheme')} -> {i.get('target')}"
    return ""


def alert_lines(inputs: dict[str, Any]) -> list[str]:
    """An alert policy as a reviewer reads it: name, severity, each condition with its
    threshold and window, and who is notified."""
    channels = inputs.get("notificationChannels") or []
    lines = [f"{inputs.get('displayName')} [{inputs.get('severity')}]"]
    if inputs.get("combiner") == "AND" and len(inputs.get("conditions", [])) > 1:
        lines.append("fires only while ALL of these hold at once:")
    for condition in inputs.get("conditions", []):
        t = condition.get("conditionThreshold") or {}
        window = ", ".join(a.get("alignmentPeriod", "") for a in t.get("aggregations", []))
        op = {"COMPARISON_GT": ">", "COMPARISON_LT": "<"}.get(t.get("comparison"), t.get("comparison"))
        ratio = " (ratio to denominator)" if t.get("denominatorFilter") else ""
        held = f", held {t['duration']}" if t.get("duration") not in (None, "0s") else ""
        lines.append(f"when {condition.get('displayName')}: value {op} {t.get('thresholdValue')}{ratio} per {window}{held}")
        lines.append(f"  filter {t.get('filter')}")
        if t.get("denominatorFilter"):
            lines.append(f"  denominator {t.get('denominatorFilter')}")
    lines.append(f"notifies {', '.join(str(c).split('/')[-1] for c in channels)}" if channels
                 else "notifies nobody (no monitoring.alertEmails)")
    return lines


def render(result: dict[str, Any]) -> str:
    lines = [f"Plan for stack '{result['stack']}' (Pulumi mocks; nothing is created, no credentials used)", ""]
    if result["error"]:
        label = "CONFIG ERROR" if result["error"]["type"] == "ConfigError" else f"PROGRAM ERROR ({result['error']['type']})"
        lines.append(f"{label}: {result['error']['message']}")
        return "\n".join(lines)
    # By name: resource names start with their component's name, so this groups by component.
    rows = [(_short_type(r["type"]), r["name"], summarize(r))
            for r in sorted(result["resources"], key=lambda r: r["name"])]
    width_t = max(len(r[0]) for r in rows)
    width_n = max(len(r[1]) for r in rows)
    lines.append(f"{'TYPE':<{width_t}}  {'NAME':<{width_n}}  KEY SETTINGS")
    for typ, name, summary in rows:
        first, *rest = (summary or "-").split("\n")
        lines.append(f"{typ:<{width_t}}  {name:<{width_n}}  {first}")
        lines.extend(f"{'':<{width_t}}  {'':<{width_n}}    {more}" for more in rest)
    custom = sum(1 for r in result["resources"] if r["custom"])
    lines += ["", f"{custom} cloud resources in {len(rows) - custom} components", "", "Outputs:"]
    for name, out in sorted(result["outputs"].items()):
        lines.append(f"  {name:<15} {'[secret]' if out['secret'] else out['value']}")
    for warning in result["warnings"]:
        lines.append(f"\nWARNING: {warning}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="dev or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (YAML syntax: --set authEnabled=false, --set 'agentIds=[a]'); "
                             "KEY= with nothing removes it")
    parser.add_argument("--set-json", action="append", default=[], metavar="KEY=JSON", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default=PLACEHOLDER_API_KEY, help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="write the raw result as JSON to PATH")
    args = parser.parse_args(argv)

    import yaml

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        overrides[key] = None if raw == "" else yaml.safe_load(raw)
    for item in args.set_json:
        key, _, raw = item.partition("=")
        overrides[key] = json.loads(raw)

    if not (ROOT / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"no stack file Pulumi.{args.stack}.yaml (stacks: dev, prod)", file=sys.stderr)
        return 2
    result = run_program(args.stack, overrides, args.api_key)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    else:
        print(render(result))
    return 2 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
