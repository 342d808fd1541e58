"""outspeed-token: read stack config -> build the components -> export what frontends need.

Everything stack-specific comes from config (see Pulumi.yaml); nothing here looks at the
stack's name. `authEnabled` decides whether the edge (load balancer + Cloud Armor) exists;
`monitoring.enabled` whether the metrics, alerts and dashboard do.
"""
import os
from pathlib import Path

import pulumi
import pulumi_gcp as gcp

from infra.edge import Edge, EdgeArgs
from infra.monitoring import Monitoring, MonitoringArgs, logs_url
from infra.settings import ConfigError, parse
from infra.source import DEFAULT_SOURCE_DIR
from infra.token_function import TokenFunction, TokenFunctionArgs, stack_prefix

config = pulumi.Config()
# Raises ConfigError: preview fails with one clear message. is_secret: quotas.redisUrl must be one;
# the CLI lists an object key among the secret keys when it holds a secure value (pulumi#3343, #6896).
settings = parse(config.get, is_secret=lambda key: pulumi.runtime.is_config_secret(config.full_key(key)))
for warning in settings.warnings:
    pulumi.log.warn(warning)

project = gcp.config.project
if not project:
    raise ConfigError("gcp:project", "is not set", "pulumi config set gcp:project <your-project-id>")
region = gcp.config.region
if not region:
    raise ConfigError("gcp:region", "is not set", "pulumi config set gcp:region us-central1")

prefix = stack_prefix(pulumi.get_project(), pulumi.get_stack())
# Only tests and `make plan` point this elsewhere (to hash a modified copy of function/).
source_dir = Path(os.environ.get("OUTSPEED_TOKEN_FUNCTION_DIR") or DEFAULT_SOURCE_DIR)

token = TokenFunction("token", TokenFunctionArgs(
    settings=settings,
    api_key=config.require_secret("outspeedApiKey"),
    project=project,
    region=region,
    source_dir=source_dir,
    prefix=prefix,
))

pulumi.export("functionName", token.function.name)
pulumi.export("secretId", token.secret.secret_id)
pulumi.export("serviceAccount", token.runtime_account.email)

if settings.edge_enabled:
    edge = Edge("edge", EdgeArgs(
        settings=settings,
        project=project,
        region=region,
        service_name=token.service_name,
        prefix=prefix,
    ))
    pulumi.export("tokenUrl", edge.token_url)
    pulumi.export("ipAddress", edge.ip_address)
else:
    pulumi.export("tokenUrl", token.token_url)

pulumi.export("logsUrl", token.service_name.apply(lambda name: logs_url(project, name)))
if settings.monitoring.enabled:
    monitoring = Monitoring("monitoring", MonitoringArgs(
        settings=settings.monitoring,
        project=project,
        prefix=prefix,
        service_name=token.service_name,
        # The edge's Cloud Armor denials are watched only where the edge exists.
        armor_policy_name=edge.policy.name if settings.edge_enabled else None,
        quotas=settings.quotas is not None,
    ))
    pulumi.export("dashboardUrl", monitoring.dashboard_url)
