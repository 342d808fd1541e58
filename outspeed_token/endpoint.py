"""TokenEndpoint: the one public component. Typed args in, the token function (+ edge in prod,
+ monitoring) out as children. Type token `outspeed-token:index:TokenEndpoint`.

No `from __future__ import annotations`: the SDK's schema analyzer reads the `args`
annotation and the `pulumi.Output[...]` class attributes as objects.
"""
import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import pulumi
import pulumi_gcp as gcp

from .edge import Edge, EdgeArgs
from .endpoint_args import TokenEndpointArgs, to_config
from .monitoring import Monitoring, MonitoringArgs, logs_url
from .settings import ConfigError, Settings, parse_mapping
from .source import DEFAULT_SOURCE_DIR
from .names import physical_name
from .token_function import TokenFunction, TokenFunctionArgs

TYPE = "outspeed-token:index:TokenEndpoint"
# Only tests and `make plan` point this elsewhere (to hash a modified copy of function/).
FUNCTION_DIR_ENV = "OUTSPEED_TOKEN_FUNCTION_DIR"
MAX_PREFIX = 40
# A default prefix must stay unique in its first 23 characters: service-account ids are
# `<prefix[:23]>-run` / `-build` and may be at most 30 long (IAM's accountId rule: 6-30
# characters, lower-case letters, digits, dashes, starting with a letter).
DEFAULT_PREFIX_HEAD = 16


def default_prefix(project: str, stack: str, name: str) -> str:
    """Readable head (endpoint name + stack) and a hash of Pulumi project, stack and endpoint
    name, so two endpoints (or two Pulumi projects) in one Google Cloud project never share
    a physical name, not even in the 23 characters an account id keeps."""
    digest = hashlib.sha256(f"{project}\0{stack}\0{name}".encode()).hexdigest()[:6]
    return f"{physical_name(name, stack, max_len=DEFAULT_PREFIX_HEAD)}-{digest}"


def _plain(key: str, value: Any) -> Any:
    """Values that decide which resources exist must be known at preview: refuse an Output by name."""
    if isinstance(value, pulumi.Output):
        raise ConfigError(key, "is an Output (a value only known at deploy time); this component needs it "
                               "known at preview, since it decides which resources exist and how they are named",
                          "pass a plain value (only outspeed_api_key may be an Output; quotas.redis_url is "
                               "stored as a secret by the component itself)")
    if isinstance(value, dict):
        return {k: _plain(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(key, v) for v in value]
    return value


class TokenEndpoint(pulumi.ComponentResource):
    """A token endpoint for Outspeed voice agents on Google Cloud: a 2nd-gen Cloud Function holding
    the Outspeed API key (Secret Manager) that mints short-lived ephemeral keys for browser
    frontends; with auth_enabled (prod) behind an external HTTPS load balancer with Cloud Armor;
    with log-based metrics, alert policies and a dashboard."""

    token_url: pulumi.Output[str]
    """Where frontends POST for a key (https://<domain>/token in prod, the function's URL + /token in dev)."""
    function_name: pulumi.Output[str]
    """The Cloud Function's name."""
    secret_id: pulumi.Output[str]
    """Secret Manager secret holding the API key."""
    service_account: pulumi.Output[str]
    """E-mail of the function's runtime service account."""
    logs_url: pulumi.Output[str]
    """Cloud console Logs Explorer link for the function."""
    ip_address: pulumi.Output[Optional[str]]
    """The load balancer's reserved IPv4 address (auth_enabled only): point the domain's A record here."""
    dashboard_url: pulumi.Output[Optional[str]]
    """Cloud console link of the monitoring dashboard (monitoring enabled only)."""

    def __init__(self, name: str, args: TokenEndpointArgs, opts: Optional[pulumi.ResourceOptions] = None, *,
                 legacy_child_names: bool = False):
        """`legacy_child_names` (Python only, not in the schema): children named `token`, `edge`,
        `monitoring` instead of `<name>-token`, ..., aliased from the stack root. Only this
        repository's own program sets it, so stacks created before the package existed keep
        every URN (their children were top-level resources with those names); with it a
        program can hold one TokenEndpoint only."""
        args = dict(args or {})
        # Everything is validated before the component registers: bad args leave no resource behind.

        api_key = args.get("outspeed_api_key")
        if api_key is None or (isinstance(api_key, str) and not api_key.strip()):
            raise ConfigError("outspeedApiKey", "is required (the Outspeed API key)",
                              "pulumi config set --secret outspeedApiKey (it prompts), or pass outspeed_api_key")

        # One validation path: args -> the stack-config mapping -> the settings parser.
        settings: Settings = parse_mapping({k: _plain(k, v) for k, v in to_config(args).items()})

        project = _plain("project", args.get("project")) or gcp.config.project
        if not project:
            raise ConfigError("gcp:project", "is not set", "pulumi config set gcp:project <your-project-id>, or pass project")
        region = _plain("region", args.get("region")) or gcp.config.region
        if not region:
            raise ConfigError("gcp:region", "is not set", "pulumi config set gcp:region us-central1, or pass region")
        prefix = _plain("namePrefix", args.get("name_prefix"))
        if prefix is None:
            prefix = default_prefix(pulumi.get_project(), pulumi.get_stack(), name)
        elif not (isinstance(prefix, str) and len(prefix) <= MAX_PREFIX and physical_name(prefix, max_len=MAX_PREFIX) == prefix):
            raise ConfigError("namePrefix", f"must be lower-case letters, digits and single dashes, starting with a "
                                            f"letter, at most {MAX_PREFIX} characters, got {prefix!r}",
                              "e.g. name_prefix='voice-prod', or leave it unset for a derived one")
        source_dir = Path(os.environ.get(FUNCTION_DIR_ENV) or DEFAULT_SOURCE_DIR)

        super().__init__(TYPE, name, None, opts)
        self.settings = settings  # plain Python attribute (not an output): what was validated
        for warning in settings.warnings:
            pulumi.log.warn(warning, resource=self)

        def child_opts(role: str) -> tuple[str, pulumi.ResourceOptions]:
            if legacy_child_names:
                # Same name and type as before, one level down: the old URN is the alias.
                return role, pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
            return f"{name}-{role}", pulumi.ResourceOptions(parent=self)

        token_name, token_opts = child_opts("token")
        self.function = TokenFunction(token_name, TokenFunctionArgs(
            settings=settings,
            api_key=pulumi.Output.secret(api_key),
            project=project,
            region=region,
            source_dir=source_dir,
            prefix=prefix,
        ), opts=token_opts)

        self.edge: Optional[Edge] = None
        if settings.edge_enabled:
            edge_name, edge_opts = child_opts("edge")
            self.edge = Edge(edge_name, EdgeArgs(
                settings=settings,
                project=project,
                region=region,
                service_name=self.function.service_name,
                prefix=prefix,
            ), opts=edge_opts)

        self.monitoring: Optional[Monitoring] = None
        if settings.monitoring.enabled:
            monitoring_name, monitoring_opts = child_opts("monitoring")
            self.monitoring = Monitoring(monitoring_name, MonitoringArgs(
                settings=settings.monitoring,
                project=project,
                prefix=prefix,
                service_name=self.function.service_name,
                # The edge's Cloud Armor denials are watched only where the edge exists.
                armor_policy_name=self.edge.policy.name if self.edge else None,
                quotas=settings.quotas is not None,
            ), opts=monitoring_opts)

        self.token_url = self.edge.token_url if self.edge else self.function.token_url
        self.function_name = self.function.function.name
        self.secret_id = self.function.secret.secret_id
        self.service_account = self.function.runtime_account.email
        self.logs_url = self.function.service_name.apply(lambda service: logs_url(project, service))
        self.ip_address = self.edge.ip_address if self.edge else pulumi.Output.from_input(None)
        self.dashboard_url = self.monitoring.dashboard_url if self.monitoring else pulumi.Output.from_input(None)
        self.register_outputs({
            "tokenUrl": self.token_url,
            "functionName": self.function_name,
            "secretId": self.secret_id,
            "serviceAccount": self.service_account,
            "logsUrl": self.logs_url,
            "ipAddress": self.ip_address,
            "dashboardUrl": self.dashboard_url,
        })
