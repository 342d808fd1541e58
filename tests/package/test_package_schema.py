"""The plugin's schema (issue 19 item 4): what the SDK's analyzer infers from TokenEndpoint's
annotations (plus the secrets outspeed_token/provider.py marks), checked in-process, and the same
schema read from the plugin process started as the Pulumi CLI starts it (GetSchema over gRPC)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from outspeed_token import stackfiles
from outspeed_token._version import __version__
from outspeed_token.endpoint_args import camel
from outspeed_token.provider import build_provider

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "outspeed-token:index:TokenEndpoint"
T = "#/types/outspeed-token:index:"

# Every input with its schema type: a JSON type, ("array", item type) or a $ref to a type.
INPUTS = {
    "outspeedApiKey": "string", "project": "string", "region": "string", "namePrefix": "string",
    "authEnabled": "boolean", "allowedHostnames": ("array", "string"), "agentIds": ("array", "string"),
    "sessionConfig": "object", "allowClientSessionConfig": "boolean", "outspeedApiBase": "string",
    "domain": "string", "rateLimit": T + "RateLimitArgs", "minInstances": "integer", "maxInstances": "integer",
    "concurrency": "integer", "memory": "string", "callerAuth": T + "CallerAuthArgs",
    "monitoring": T + "MonitoringConfigArgs", "quotas": T + "QuotasArgs",
}
TYPES = {
    "RateLimitArgs": {"requestsPerMinute": "integer", "banSeconds": "integer"},
    "CallerAuthArgs": {"idToken": T + "IdTokenArgs", "appCheck": T + "AppCheckArgs", "anonymous": "boolean"},
    "IdTokenArgs": {"issuer": "string", "audience": "string", "jwksUri": "string", "allowAnonymous": "boolean"},
    "AppCheckArgs": {"projectNumber": "string", "appIds": ("array", "string"), "consume": "boolean"},
    "MonitoringConfigArgs": {"enabled": "boolean", "alertEmails": ("array", "string"), "mintsPerHourAlert": "integer",
                             "upstreamErrorRatio": "number", "upstreamErrorWindowMinutes": "integer",
                             "upstreamMinCalls": "integer", "alertWindowMinutes": "integer",
                             "armorDenialsPerMinuteAlert": "integer", "runbookUrl": "string",
                             "unauthenticatedPerMinuteAlert": "integer"},
    "QuotasArgs": {"perCaller": ("array", T + "QuotaBudgetArgs"), "global": ("array", T + "QuotaBudgetArgs"),
                   "store": "string", "redisUrl": "string", "failOpen": "boolean"},
    "QuotaBudgetArgs": {"count": "integer", "windowSeconds": "integer"},
}
OUTPUTS = {"tokenUrl", "functionName", "secretId", "serviceAccount", "logsUrl", "ipAddress", "dashboardUrl"}
OPTIONAL_OUTPUTS = {"ipAddress", "dashboardUrl"}  # only with the edge / with monitoring


def kind(prop: dict) -> object:
    if "$ref" in prop:
        return prop["$ref"]
    if prop.get("type") == "array":
        return ("array", kind(prop["items"]))
    return prop["type"]


def check(schema: dict) -> None:
    assert schema["name"] == "outspeed-token" and schema["version"] == __version__
    assert list(schema["resources"]) == [TOKEN]
    res = schema["resources"][TOKEN]
    assert res["isComponent"] is True
    assert {k: kind(v) for k, v in res["inputProperties"].items()} == INPUTS
    assert res["requiredInputs"] == ["outspeedApiKey"]
    assert {k for k, v in res["inputProperties"].items() if v.get("secret")} == {"outspeedApiKey"}
    assert all(v.get("description") for v in res["inputProperties"].values())
    assert set(res["properties"]) == OUTPUTS and all(v["type"] == "string" for v in res["properties"].values())
    assert set(res["required"]) == OUTPUTS - OPTIONAL_OUTPUTS
    types = {k.rsplit(":", 1)[-1]: v for k, v in schema["types"].items()}
    assert {name: {k: kind(v) for k, v in t["properties"].items()} for name, t in types.items()} == TYPES
    assert types["QuotaBudgetArgs"]["required"] == ["count", "windowSeconds"]
    assert all("required" not in t for name, t in types.items() if name != "QuotaBudgetArgs")
    assert {k for k, v in types["QuotasArgs"]["properties"].items() if v.get("secret")} == {"redisUrl"}


def test_inferred_schema():
    check(json.loads(build_provider().schema))


def test_every_stack_config_key_is_an_input_of_the_component():
    """Stack config is one consumer of the component: each key of Pulumi.yaml has its arg."""
    declared = set(stackfiles.declared_keys())
    assert declared <= set(INPUTS), declared - set(INPUTS)
    monitoring_default = stackfiles.declared_keys()["monitoring"]["default"]
    assert set(monitoring_default) <= set(TYPES["MonitoringConfigArgs"])
    assert all(camel(k) == k for k in INPUTS)


def test_the_plugin_serves_the_schema_over_the_provider_protocol(tmp_path):
    """Started as pulumi-language-python's RunPlugin starts it: `python <plugin root> <engine
    address>`, the root being where PulumiPlugin.yaml is. It prints its port, then answers
    GetSchema. (The engine address is only dialled by Construct, so none is needed here.)"""
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    assert yaml.safe_load((ROOT / "PulumiPlugin.yaml").read_text())["runtime"]["name"] == "python"
    proc = subprocess.Popen([sys.executable, str(ROOT), "127.0.0.1:1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"no port on stdout: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            response = stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=30)
        check(json.loads(response.schema))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
