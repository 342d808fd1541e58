"""outspeed-token's own program: stack config -> TokenEndpointArgs -> one TokenEndpoint -> outputs.

Stack config is one consumer of the package's component, not a second code path: the keys
declared in Pulumi.yaml are read as they are, turned into the component's typed args, and
validated by the component (a bad value fails preview naming the key). Nothing here looks at
the stack's name. The physical-name prefix stays `<project>-<stack>` and the children keep
their names and aliases (`legacy_child_names`), so stacks created before the package existed
upgrade without replacing anything (tests/infra/test_infra_urns.py).

Started by the Pulumi CLI as the package's plugin (PulumiPlugin.yaml) rather than as a
program, this same file serves the provider instead: see outspeed_token/provider.py.
"""
import pulumi
from pulumi.runtime.settings import get_monitor

if get_monitor() is None:  # no resource monitor: the language host started us as the plugin
    from outspeed_token.provider import serve

    serve()
    raise SystemExit(0)

from outspeed_token.endpoint import TokenEndpoint
from outspeed_token.endpoint_args import TokenEndpointArgs, from_config
from outspeed_token.settings import check_secret_config
from outspeed_token.stackfiles import declared_keys
from outspeed_token.names import stack_prefix

config = pulumi.Config()
values = {key: config.get(key) for key in declared_keys() if key != "outspeedApiKey"}
# What only stack config can get wrong: quotas.redisUrl set without --secret (the component
# stores it as a secret either way; a plain value would already sit in the stack file). The CLI
# lists an object key among the secret keys when it holds a secure value (pulumi#3343, #6896).
check_secret_config(values, lambda key: pulumi.runtime.is_config_secret(config.full_key(key)))
args: TokenEndpointArgs = {
    **from_config(values),  # only the keys that are set: the component applies the defaults
    "outspeed_api_key": config.get_secret("outspeedApiKey"),
    "name_prefix": stack_prefix(pulumi.get_project(), pulumi.get_stack()),
}
endpoint = TokenEndpoint("outspeed-token", args, legacy_child_names=True)

pulumi.export("functionName", endpoint.function_name)
pulumi.export("secretId", endpoint.secret_id)
pulumi.export("serviceAccount", endpoint.service_account)
pulumi.export("tokenUrl", endpoint.token_url)
if endpoint.edge is not None:
    pulumi.export("ipAddress", endpoint.ip_address)
pulumi.export("logsUrl", endpoint.logs_url)
if endpoint.monitoring is not None:
    pulumi.export("dashboardUrl", endpoint.dashboard_url)
