"""A Pulumi program as a team would write it in its own repository, run under Pulumi mocks
in a fresh venv where only the built wheel (and its dependencies) is installed. Written
into a temp directory and run there by test_package_consumer.py: it imports nothing of the
repository. Writes what it saw as JSON to argv[1]."""
import json
import sys

import pulumi

RESOURCES = []


def _zip(path):
    """The uploaded source zip: its path, entries and the sha256 of its bytes."""
    import hashlib
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = sorted(archive.namelist())
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return {"path": str(path), "entries": entries, "sha256": digest}


class Mocks(pulumi.runtime.Mocks):
    """Inputs echoed back, plus the computed fields the component reads."""

    def new_resource(self, args):
        state = dict(args.inputs)
        project = state.get("project") or "consumer-project"
        name = state.get("name") or args.name
        if args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{state['accountId']}@{project}.iam.gserviceaccount.com"
        elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
            state["version"] = "1"
        elif args.typ == "gcp:cloudfunctionsv2/function:Function":
            service = dict(state.get("serviceConfig") or {})
            service.update(service=f"projects/{project}/locations/{state['location']}/services/{name}",
                           uri=f"https://{name}-xyz.a.run.app")
            state["serviceConfig"] = service
        elif args.typ == "gcp:compute/globalAddress:GlobalAddress":
            state["address"] = "203.0.113.7"
        source = args.inputs.get("source")
        RESOURCES.append({
            "type": args.typ, "name": args.name, "inputs_name": state.get("name"),
            "account_id": state.get("accountId"),
            "archive": _zip(source.path) if isinstance(source, pulumi.FileAsset) else None,
        })
        return f"projects/{project}/x/{name}", state

    def call(self, args):
        return {}, None


pulumi.runtime.set_mocks(Mocks(), project="voice-app", stack="shared", preview=False)
pulumi.runtime.set_all_config({"gcp:project": "consumer-project", "gcp:region": "europe-west1"})

import outspeed_token  # noqa: E402  (after set_mocks, as Pulumi's testing guide requires)
import outspeed_token.source  # noqa: E402
from outspeed_token import TokenEndpoint  # noqa: E402

OUTPUTS = ("token_url", "function_name", "secret_id", "service_account", "logs_url", "ip_address", "dashboard_url")


@pulumi.runtime.test
def program():
    dev = TokenEndpoint("dev", {
        "outspeed_api_key": pulumi.Output.secret("osk-consumer-dev"),
        "auth_enabled": False,
        "allowed_hostnames": ["localhost"],
    })
    prod = TokenEndpoint("prod", {
        "outspeed_api_key": "osk-consumer-prod",
        "domain": "token.example.com",
        "allowed_hostnames": ["app.example.com"],
        "agent_ids": ["agent-1"],
        "caller_auth": {"id_token": {"issuer": "https://securetoken.google.com/p", "audience": "p"}},
        "rate_limit": {"requests_per_minute": 30},
        "monitoring": {"alert_emails": ["oncall@example.com"]},
    })
    errors = {}
    for label, bad in {"rate": {"auth_enabled": False, "rate_limit": {"requests_per_minute": 0}},
                       "key": {"auth_enabled": False}}.items():
        try:
            TokenEndpoint(f"bad-{label}", {"outspeed_api_key": "k", **bad} if label != "key" else bad)
        except Exception as exc:  # noqa: BLE001 - the message is what the test checks
            errors[label] = f"{type(exc).__name__}: {exc}"

    def write(values):
        n = len(OUTPUTS)
        result = {
            "version": outspeed_token.__version__,
            "package_dir": outspeed_token.__path__[0],
            "source_dir": str(outspeed_token.source.DEFAULT_SOURCE_DIR),
            "outputs": {"dev": dict(zip(OUTPUTS, values[:n])), "prod": dict(zip(OUTPUTS, values[n:]))},
            "errors": errors,
            "resources": RESOURCES,
        }
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)

    return pulumi.Output.all(*(getattr(e, o) for e in (dev, prod) for o in OUTPUTS)).apply(write)


program()
