"""`python -m tools.package_usage`: the TypeScript and YAML usage shown in docs/package.md,
generated from the plugin's schema (outspeed_token/provider.py, what the SDK infers from
TokenEndpoint's annotations), so the property names and types in the docs are the schema's.

Each example is a dev and a prod endpoint; every property used is looked up in the schema
(an unknown name or a value of the wrong JSON type is an error), then rendered in the shape
the code generators give it: TypeScript `new outspeedToken.TokenEndpoint(name, {...})` from
the SDK `pulumi package add` generates, YAML `type: outspeed-token:TokenEndpoint`.
tests/package/test_package_docs.py keeps docs/package.md identical to this output."""
from __future__ import annotations

import json
from typing import Any

TOKEN = "outspeed-token:index:TokenEndpoint"
# The examples, in the schema's (camelCase) names. "$secret:<config key>" is the secret config value.
EXAMPLES = {
    "dev": {"outspeedApiKey": "$secret:outspeedApiKey", "authEnabled": False, "allowedHostnames": ["localhost"]},
    "prod": {
        "outspeedApiKey": "$secret:outspeedApiKey",
        "domain": "token.example.com",
        "allowedHostnames": ["app.example.com"],
        "agentIds": ["your-agent-id"],
        "callerAuth": {"idToken": {"issuer": "https://securetoken.google.com/your-firebase-project",
                                   "audience": "your-firebase-project"}},
        "monitoring": {"alertEmails": ["oncall@example.com"]},
    },
}
OUTPUTS = {"dev": ("tokenUrl",), "prod": ("tokenUrl", "ipAddress")}  # ipAddress: prod (the edge) only
_JSON_TYPES = {"string": str, "boolean": bool, "integer": int, "number": (int, float), "array": list, "object": dict}


def _check(schema: dict, props: dict[str, Any], values: dict[str, Any], where: str) -> None:
    for key, value in values.items():
        prop = props.get(key)
        if prop is None:
            raise KeyError(f"{where}.{key} is not in the schema")
        if "$ref" in prop:
            _check(schema, schema["types"][prop["$ref"].removeprefix("#/types/")]["properties"], value, f"{where}.{key}")
        elif not (isinstance(value, str) and value.startswith("$secret:")) and not isinstance(value, _JSON_TYPES[prop["type"]]):
            raise TypeError(f"{where}.{key}: {value!r} is not of the schema's type {prop['type']}")


def _ts(value: Any, indent: int) -> str:
    pad = "    " * indent
    if isinstance(value, str) and value.startswith("$secret:"):
        return f'config.requireSecret("{value.split(":", 1)[1]}")'
    if isinstance(value, dict):
        inner = "".join(f"{pad}    {k}: {_ts(v, indent + 1)},\n" for k, v in value.items())
        return "{\n" + inner + pad + "}"
    return json.dumps(value)


def typescript() -> str:
    lines = ['import * as pulumi from "@pulumi/pulumi";', 'import * as outspeedToken from "@pulumi/outspeed-token";', "",
             "const config = new pulumi.Config();"]
    for name, args in EXAMPLES.items():
        lines.append(f'const {name} = new outspeedToken.TokenEndpoint("{name}", {_ts(args, 0)});')
    for name in EXAMPLES:
        lines += [f"export const {name}{o[0].upper()}{o[1:]} = {name}.{o};" for o in OUTPUTS[name]]
    return "\n".join(lines)


def _yaml(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("$secret:"):
        return f"${{{value.split(':', 1)[1]}}}"
    if isinstance(value, dict):
        return {k: _yaml(v) for k, v in value.items()}
    return value


def yaml_program() -> str:
    import yaml

    doc = {
        "config": {"outspeedApiKey": {"type": "string", "secret": True}},
        "resources": {name: {"type": "outspeed-token:TokenEndpoint", "properties": _yaml(args)}
                      for name, args in EXAMPLES.items()},
        "outputs": {f"{n}{o[0].upper()}{o[1:]}": f"${{{n}.{o}}}" for n in EXAMPLES for o in OUTPUTS[n]},
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip()


def render(schema: dict) -> str:
    resource = schema["resources"][TOKEN]
    for name, args in EXAMPLES.items():
        _check(schema, resource["inputProperties"], args, name)
    for outputs in OUTPUTS.values():
        for output in outputs:
            assert output in resource["properties"], output
    return f"```typescript\n{typescript()}\n```\n\n```yaml\n{yaml_program()}\n```\n"


def main() -> None:
    from outspeed_token.provider import build_provider

    print(render(json.loads(build_provider().schema)), end="")


if __name__ == "__main__":
    main()
