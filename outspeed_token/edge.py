"""Edge: external HTTPS load balancer + Cloud Armor in front of the function (authEnabled stacks)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .apis import ProjectApis
from .settings import RATE_LIMIT_INTERVAL_SECONDS, Settings

ORIGIN_RULE_PRIORITY = 1000
RATE_RULE_PRIORITY = 2000
DEFAULT_RULE_PRIORITY = 2147483647
# Identical on the backend service and both forwarding rules (mixing schemes is rejected).
LB_SCHEME = "EXTERNAL_MANAGED"
# TLS 1.2 minimum with the RESTRICTED profile: only ECDHE key exchange with AES-GCM or
# ChaCha20 (no CBC/SHA-1 suites, which MODERN still offers at TLS 1.2). The callers are
# current browsers and app TLS stacks, which all negotiate these; nothing here needs the
# older suites, and the endpoint hands out credentials.
MIN_TLS_VERSION = "TLS_1_2"
TLS_PROFILE = "RESTRICTED"
# A Host other than `domain` (the bare IP, a stranger's DNS name) is answered by the load
# balancer itself: the URL map's default route aborts every such request with this status
# before any backend is chosen (fault injection, supported by EXTERNAL_MANAGED, not classic).
UNKNOWN_HOST_STATUS = 404
PATH_MATCHER = "token-endpoint"


def unknown_host_abort() -> gcp.compute.URLMapDefaultRouteActionArgs:
    return gcp.compute.URLMapDefaultRouteActionArgs(
        fault_injection_policy=gcp.compute.URLMapDefaultRouteActionFaultInjectionPolicyArgs(
            abort=gcp.compute.URLMapDefaultRouteActionFaultInjectionPolicyAbortArgs(
                http_status=UNKNOWN_HOST_STATUS, percentage=100.0),
        ),
    )


def origin_regex(hostnames: Sequence[str]) -> str:
    """RE2 pattern for an allowed Origin: https, one of the hostnames, any port.

    Hostnames are validated (a-z 0-9 . -), so the only metacharacter is '.', written as
    '[.]' to avoid escaping inside a CEL string literal.
    """
    alternatives = "|".join(h.replace(".", "[.]") for h in hostnames)
    return f"^https://({alternatives})(:[0-9]+)?$"


def origin_deny_expression(hostnames: Sequence[str]) -> str:
    """Cloud Armor CEL: an Origin header is present and is not an allowed https origin.

    Two subexpressions whatever the list length (Armor allows five per rule); the header is
    lower-cased first because hostnames compare case-insensitively (as in the function).
    A request without Origin (curl, native apps) is left to the function's own check.
    """
    return (f"has(request.headers['origin']) && "
            f"!request.headers['origin'].lower().matches('{origin_regex(hostnames)}')")


def armor_rules(settings: Settings) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """Rules in evaluation order. A rate rule's conform action is allow, which ends
    evaluation, so the Origin deny must come before it."""
    every_ip = gcp.compute.SecurityPolicyRuleMatchArgs(
        versioned_expr="SRC_IPS_V1",
        config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
    )
    rules = []
    if settings.allowed_hostnames:
        rules.append(gcp.compute.SecurityPolicyRuleArgs(
            priority=ORIGIN_RULE_PRIORITY,
            action="deny(403)",
            description="Deny browsers calling from an Origin outside allowedHostnames (the function checks again)",
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(
                    expression=origin_deny_expression(settings.allowed_hostnames)),
            ),
        ))
    rules.append(gcp.compute.SecurityPolicyRuleArgs(
        priority=RATE_RULE_PRIORITY,
        action="rate_based_ban",
        description="Per-IP rate limit; over it, 429 and a temporary ban",
        match=every_ip,
        rate_limit_options=gcp.compute.SecurityPolicyRuleRateLimitOptionsArgs(
            enforce_on_key="IP",
            conform_action="allow",
            exceed_action="deny(429)",
            rate_limit_threshold=gcp.compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                count=settings.rate_limit.requests_per_minute,
                interval_sec=RATE_LIMIT_INTERVAL_SECONDS,
            ),
            ban_duration_sec=settings.rate_limit.ban_seconds,
        ),
    ))
    rules.append(gcp.compute.SecurityPolicyRuleArgs(
        priority=DEFAULT_RULE_PRIORITY,
        action="allow",
        description="Default rule",
        match=every_ip,
    ))
    return rules


@dataclass
class EdgeArgs:
    settings: Settings
    project: str
    region: str
    service_name: pulumi.Input[str]  # the function's Cloud Run service (short name)
    prefix: str


class Edge(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("outspeed-token:infra:Edge", name, None, opts)
        s, project = args.settings, args.project

        apis = ProjectApis(f"{name}-apis", project, ["compute.googleapis.com"], opts=pulumi.ResourceOptions(parent=self))

        child = functools.partial(apis.child_options, self)

        self.policy = gcp.compute.SecurityPolicy(
            f"{name}-armor",
            project=project,
            name=f"{args.prefix}-armor",
            type="CLOUD_ARMOR",
            description="outspeed-token edge policy: origin allowlist, per-IP rate limit",
            rules=armor_rules(s),
            opts=child(),
        )
        # Serverless NEG: the LB reaches the function through its Cloud Run service; this is
        # the "internal and GCLB" path that prod ingress admits.
        self.neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-neg",
            project=project,
            region=args.region,
            name=f"{args.prefix}-neg",
            network_endpoint_type="SERVERLESS",
            cloud_run=gcp.compute.RegionNetworkEndpointGroupCloudRunArgs(service=args.service_name),
            opts=child(),
        )
        # No health check, timeout or balancing mode: serverless NEG backends reject them.
        self.backend = gcp.compute.BackendService(
            f"{name}-backend",
            project=project,
            name=f"{args.prefix}-backend",
            load_balancing_scheme=LB_SCHEME,
            protocol="HTTPS",  # Cloud Run terminates TLS itself; the LB re-encrypts to it
            backends=[gcp.compute.BackendServiceBackendArgs(group=self.neg.id)],
            security_policy=self.policy.id,
            # Request logs carry Armor's verdict (rate-limit bans, origin denials).
            log_config=gcp.compute.BackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            opts=child(),
        )
        # Only `domain` reaches the function. Everything else matches no host rule and gets
        # the default: the service is named (the API needs one) but never used, since the
        # default route aborts 100% of those requests with a 404 at the load balancer.
        self.url_map = gcp.compute.URLMap(
            f"{name}-urlmap",
            project=project,
            name=f"{args.prefix}-urlmap",
            host_rules=[gcp.compute.URLMapHostRuleArgs(hosts=[s.domain], path_matcher=PATH_MATCHER)],
            path_matchers=[gcp.compute.URLMapPathMatcherArgs(name=PATH_MATCHER, default_service=self.backend.id)],
            default_service=self.backend.id,
            default_route_action=unknown_host_abort(),
            opts=child(),
        )
        self.ssl_policy = gcp.compute.SSLPolicy(
            f"{name}-tls",
            project=project,
            name=f"{args.prefix}-tls",
            min_tls_version=MIN_TLS_VERSION,
            profile=TLS_PROFILE,
            description="outspeed-token edge: TLS 1.2+ with forward-secret AEAD ciphers only",
            opts=child(),
        )
        # Google-managed certificate: provisions once the domain's A record points at the address.
        # Auto-named (no `name`): a new domain replaces the certificate create-before-delete,
        # so the proxy moves to the new one; a fixed name would have to delete the one in use.
        self.certificate = gcp.compute.ManagedSslCertificate(
            f"{name}-cert",
            project=project,
            managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[s.domain]),
            opts=child(),
        )
        self.https_proxy = gcp.compute.TargetHttpsProxy(
            f"{name}-https-proxy",
            project=project,
            name=f"{args.prefix}-https-proxy",
            url_map=self.url_map.id,
            ssl_certificates=[self.certificate.id],
            ssl_policy=self.ssl_policy.id,  # without one, the proxy also accepts TLS 1.0/1.1
            opts=child(),
        )
        # Reserved so the DNS A record stays valid across LB changes; both forwarding rules
        # use its literal IP (the provider reads back an IP, so an id would diff forever).
        self.address = gcp.compute.GlobalAddress(
            f"{name}-ip",
            project=project,
            name=f"{args.prefix}-ip",
            ip_version="IPV4",
            opts=child(),
        )
        self.https_rule = gcp.compute.GlobalForwardingRule(
            f"{name}-https",
            project=project,
            name=f"{args.prefix}-https",
            target=self.https_proxy.id,
            ip_address=self.address.address,
            ip_protocol="TCP",
            port_range="443",
            load_balancing_scheme=LB_SCHEME,
            opts=child(),
        )
        # Port 80 only redirects, and only for `domain`. 308 (not 301) so a POST stays a POST
        # with its body. Other hosts get the same load-balancer 404 as on :443 (the named
        # service is never reached: the abort applies to every such request).
        self.redirect_map = gcp.compute.URLMap(
            f"{name}-http-redirect",
            project=project,
            name=f"{args.prefix}-http-redirect",
            host_rules=[gcp.compute.URLMapHostRuleArgs(hosts=[s.domain], path_matcher=PATH_MATCHER)],
            path_matchers=[gcp.compute.URLMapPathMatcherArgs(
                name=PATH_MATCHER,
                default_url_redirect=gcp.compute.URLMapPathMatcherDefaultUrlRedirectArgs(
                    https_redirect=True,
                    redirect_response_code="PERMANENT_REDIRECT",
                    strip_query=False,
                ),
            )],
            default_service=self.backend.id,
            default_route_action=unknown_host_abort(),
            opts=child(),
        )
        self.http_proxy = gcp.compute.TargetHttpProxy(
            f"{name}-http-proxy",
            project=project,
            name=f"{args.prefix}-http-proxy",
            url_map=self.redirect_map.id,
            opts=child(),
        )
        self.http_rule = gcp.compute.GlobalForwardingRule(
            f"{name}-http",
            project=project,
            name=f"{args.prefix}-http",
            target=self.http_proxy.id,
            ip_address=self.address.address,
            ip_protocol="TCP",
            port_range="80",
            load_balancing_scheme=LB_SCHEME,
            opts=child(),
        )

        self.ip_address = self.address.address
        self.token_url = pulumi.Output.from_input(f"https://{s.domain}/token")
        self.register_outputs({"ipAddress": self.ip_address, "tokenUrl": self.token_url})
