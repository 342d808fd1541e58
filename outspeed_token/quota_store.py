"""QuotaStore: where the function counts its mint budgets (DESIGN.md "Spend ceiling").

- `store: memorystore`: Memorystore for Redis (BASIC, 1 GB, AUTH on, TLS SERVER_AUTHENTICATION)
  on this stack's own VPC network, with a /26 subnet the function joins by Direct VPC egress.
  The AUTH string and the instance's address become a `rediss://` URL in a Secret Manager
  secret; the instance's server CA becomes QUOTA_REDIS_CA_CERT.
- `store: external`: the configured `redisUrl` (a Pulumi secret) goes into the same kind of
  secret; no network.

The runtime account's read access to the secret is granted by TokenFunction, which owns that
account (as it does for the API key's secret).

Why these choices (Google's documentation, read for this change):
- Direct VPC egress, not a Serverless VPC Access connector: "Connect to a Redis instance from
  Cloud Run functions" (cloud.google.com/memorystore/docs/redis/connect-redis-instance-functions)
  uses Direct VPC egress to the instance's authorized network and recommends it over connectors
  (no connector instances to pay for). Cloud Functions (2nd gen) supports it ("Configure Direct
  VPC egress for 2nd gen functions", cloud.google.com/functions/docs/running/direct-vpc), and
  pulumi-gcp's cloudfunctionsv2 service_config has `direct_vpc_network_interfaces` and
  `direct_vpc_egress` (the Terraform provider's fields, GA since magic-modules#16396).
- connect_mode DIRECT_PEERING (the API default): the function reaches the instance through the
  authorized network, which is the setup that guide describes; PRIVATE_SERVICE_ACCESS would add
  a service-networking connection and an allocated range for nothing here.
- The subnet is a /26: Cloud Run reserves IPs in blocks of 16 and needs "/26 or larger" for
  Direct VPC egress, using about two addresses per instance (cloud.google.com/run/docs/configuring/
  vpc-direct-vpc, "IP address allocation"): 60 usable addresses hold the default maxInstances 10
  (preview warns above 20). The same page warns that connections may take a minute or more to
  establish when an instance starts: the function's store bound then answers 503
  quota_unavailable (or mints, with failOpen) until the path is up.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import pulumi
import pulumi_gcp as gcp

from .apis import ProjectApis
from .names import physical_name
from .settings import Quotas

# Memorystore needs its API; the network and subnet are Compute Engine resources. Direct VPC
# egress needs no vpcaccess API (that is the connector's).
MEMORYSTORE_APIS = ("redis.googleapis.com", "compute.googleapis.com")
SUBNET_RANGE = "10.8.0.0/26"      # the function's addresses (Direct VPC egress)
REDIS_RANGE = "10.8.1.0/29"       # DIRECT_PEERING: a /29 of the authorized network, apart from the subnet
REDIS_VERSION = "REDIS_7_2"       # EVAL (the function reserves all windows in one Lua script) and TLS
REDIS_TIER = "BASIC"              # one node: a store outage means 503 quota_unavailable (or failOpen)
REDIS_MEMORY_GB = 1               # the smallest size; counters are a few bytes per caller and window
REDIS_TLS = "SERVER_AUTHENTICATION"
REDIS_CONNECT_MODE = "DIRECT_PEERING"
URL_ENV = "QUOTA_REDIS_URL"
CA_ENV = "QUOTA_REDIS_CA_CERT"


def network_name(prefix: str, suffix: str) -> str:
    """A Compute Engine name: RFC 1035, `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`, at most 63 characters
    (cloud.google.com/compute/docs/naming-resources)."""
    return physical_name(prefix, suffix, max_len=63)


def redis_instance_id(prefix: str) -> str:
    """A Memorystore for Redis instance id: 1-40 characters, lowercase letters, digits and
    hyphens, starting with a letter and not ending with a hyphen (instances.create, instanceId)."""
    return physical_name(prefix[:34], "quota", max_len=40)


def redis_url(auth_string: str, host: str, port: int) -> str:
    """rediss://:<AUTH>@host:port, the AUTH string percent-encoded (it is used as the password)."""
    return f"rediss://:{quote(auth_string, safe='')}@{host}:{int(port)}"


@dataclass
class QuotaStoreArgs:
    quotas: Quotas
    project: str
    region: str
    prefix: str  # physical-name prefix, e.g. "outspeed-token-prod"
    depends_on: tuple[pulumi.Resource, ...] = ()  # e.g. the Secret Manager API being enabled


class QuotaStore(pulumi.ComponentResource):
    """The store's secret URL (and, for memorystore, the network and the instance)."""

    def __init__(self, name: str, args: QuotaStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("outspeed-token:infra:QuotaStore", name, None, opts)
        q, project, region, prefix = args.quotas, args.project, args.region, args.prefix
        self.network: Optional[gcp.compute.Network] = None
        self.subnetwork: Optional[gcp.compute.Subnetwork] = None
        self.instance: Optional[gcp.redis.Instance] = None
        self.ca_cert: Optional[pulumi.Output[str]] = None

        if q.memorystore:
            apis = ProjectApis(f"{name}-apis", project, MEMORYSTORE_APIS, opts=pulumi.ResourceOptions(parent=self))

            child = functools.partial(apis.child_options, self)

            # Custom mode: only the subnet below, no auto-created subnet in every region.
            self.network = gcp.compute.Network(
                f"{name}-network",
                project=project,
                name=network_name(prefix, "quota"),
                auto_create_subnetworks=False,
                description=f"{prefix}: the token function's private path to its quota store",
                opts=child(),
            )
            self.subnetwork = gcp.compute.Subnetwork(
                f"{name}-subnet",
                project=project,
                region=region,
                name=network_name(prefix, "quota-fn"),
                network=self.network.id,
                ip_cidr_range=SUBNET_RANGE,
                description=f"{prefix}: addresses of the token function's instances (Direct VPC egress)",
                opts=child(),
            )
            self.instance = gcp.redis.Instance(
                f"{name}-redis",
                project=project,
                region=region,
                name=redis_instance_id(prefix),
                display_name=f"{prefix} mint budgets",
                tier=REDIS_TIER,
                memory_size_gb=REDIS_MEMORY_GB,
                redis_version=REDIS_VERSION,
                # AUTH + TLS: the instance is private, but the password and TLS keep anything else
                # in the network (or a misrouted packet) from reading or spending the budgets.
                auth_enabled=True,
                transit_encryption_mode=REDIS_TLS,
                connect_mode=REDIS_CONNECT_MODE,
                authorized_network=self.network.id,
                reserved_ip_range=REDIS_RANGE,
                # Only counters that expire with their window live here: `pulumi destroy` may remove it.
                deletion_protection=False,
                opts=child(self.subnetwork),
            )
            # auth_string is a secret output of the provider; Output.secret keeps the URL one
            # even where a provider (or the mocks) does not mark it.
            url: pulumi.Input[str] = pulumi.Output.secret(pulumi.Output.all(
                self.instance.auth_string, self.instance.host, self.instance.port,
            ).apply(lambda v: redis_url(v[0], v[1], v[2])))
            # The server CAs sign the instance's TLS certificate; the function trusts them alone. All
            # of them: "one or more unique Certificate Authorities" (Memorystore, in-transit
            # encryption), so a CA rotation's new CA is trusted from the next `pulumi up` on.
            self.ca_cert = self.instance.server_ca_certs.apply(
                lambda certs: "".join(c.cert if c.cert.endswith("\n") else c.cert + "\n" for c in certs or [] if c.cert))
        else:
            url = pulumi.Output.secret(q.redis_url)

        secret_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.secret = gcp.secretmanager.Secret(
            f"{name}-redis-url",
            project=project,
            # Secret ids: 1-255 of [A-Za-z0-9_-] (Secret Manager, secrets.create).
            secret_id=network_name(prefix, "quota-redis-url"),
            replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
            opts=secret_opts,
        )
        self.secret_version = gcp.secretmanager.SecretVersion(
            f"{name}-redis-url-version",
            secret=self.secret.id,
            secret_data=url,
            opts=secret_opts,
        )
        self.register_outputs({
            "store": q.store,
            "secretId": self.secret.secret_id,
            **({"instance": self.instance.name, "network": self.network.name} if self.instance is not None else {}),
        })
