"""TokenFunction: the 2nd-gen Cloud Function that holds the Outspeed API key and mints keys,
with what it needs: its APIs, runtime and build accounts and their grants, the secret (version
pinned), the stack's own image repository, the source bucket, and the public invoker grant."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as pulumi_time

from .apis import ProjectApis
from .names import account_id, physical_name
from .quota_store import CA_ENV, URL_ENV, QuotaStore, QuotaStoreArgs
from .settings import Settings, function_environment
from .source import source_hash, write_zip

RUNTIME = "python312"
ENTRY_POINT = "token"
API_KEY_ENV = "OUTSPEED_API_KEY"
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
# Memorystore is private: only addresses in private ranges go through the VPC, so Outspeed, the
# JWKS endpoints and Firebase are still reached directly (Direct VPC egress's own default).
DIRECT_VPC_EGRESS = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
REQUEST_TIMEOUT_SECONDS = 30  # upstream timeout (10 s) plus headroom
# IAM grants and freshly enabled APIs take effect eventually, not when the API call returns;
# a first build that starts at once intermittently cannot read its source (Google's own
# gen2 builder example waits 60 s the same way). Only creation waits; updates do not.
IAM_SETTLE = "60s"

APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
)

# What Cloud Build needs to build a gen2 function as our own build account. Google documents, for
# the build service account of a Cloud Run function ("Configure the build service account",
# cloud.google.com/run/docs/configuring/services/build-service-account): Logs Writer, Artifact
# Registry Writer, and Storage Object Admin "for retrieving the function source from the Cloud
# Storage bucket". No Google page we found says a narrower storage role is enough, so we grant the
# documented one (issue 21 #8; the earlier objectViewer was never tried on a real build):
# - push: roles/artifactregistry.writer on this stack's own image repository only (passed to
#   the function as build_config.docker_repository), not project-wide.
# - the source: roles/storage.objectAdmin, PROJECT-WIDE: the build reads the zip from Cloud
#   Functions' own gcf-v2-sources-<project-number>-<region> bucket, which the first function
#   deploy creates and builds from at once, so no bucket-level grant can exist before it is needed.
# - logs: roles/logging.logWriter is PROJECT-WIDE: log writing has no narrower resource.
BUILD_PROJECT_ROLES = ("roles/logging.logWriter", "roles/storage.objectAdmin")
BUILD_REPOSITORY_ROLE = "roles/artifactregistry.writer"
# Replay protection (callerAuth.appCheck.consume): verifyAppCheckToken needs the permission
# firebaseappcheck.appCheckTokens.verify, which Firebase's reference puts in the App Check
# Token Verifier role (not Admin: nothing to manage); and its API, called as this project.
APP_CHECK_CONSUME_ROLE = "roles/firebaseappcheck.tokenVerifier"
APP_CHECK_API = "firebaseappcheck.googleapis.com"
# Images kept per package of the stack's repository (each deploy pushes one). The serving
# revision runs the newest; the few before it let Cloud Run's traffic go back to a recent
# revision without a rebuild. Rollback past that is `pulumi up` from an older commit, which
# builds anew, so older images only cost storage. The same for every stack: not config.
KEEP_IMAGES = 5
# Artifact Registry ("Cleanup policies overview"): a keep policy only exempts versions from a
# delete policy, so "keep the last N" is a delete-everything policy plus a keep-N policy.
IMAGE_CLEANUP_POLICIES = (
    {"id": "delete-any", "action": "DELETE", "condition": {"tag_state": "ANY"}},
    {"id": f"keep-last-{KEEP_IMAGES}", "action": "KEEP", "most_recent_versions": {"keep_count": KEEP_IMAGES}},
)


@dataclass
class TokenFunctionArgs:
    settings: Settings
    api_key: pulumi.Input[str]  # a Pulumi secret (config.require_secret)
    project: str
    region: str
    source_dir: Path
    prefix: str  # physical-name prefix, e.g. "outspeed-token-dev"


class TokenFunction(pulumi.ComponentResource):
    def __init__(self, name: str, args: TokenFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("outspeed-token:infra:TokenFunction", name, None, opts)
        s, project, region = args.settings, args.project, args.region

        consume = s.caller_auth.app_check is not None and s.caller_auth.app_check.consume
        apis = ProjectApis(f"{name}-apis", project, APIS + ((APP_CHECK_API,) if consume else ()),
                           opts=pulumi.ResourceOptions(parent=self))

        child = functools.partial(apis.child_options, self)

        # Accounts. The runtime account holds no project roles (but App Check's token verifier,
        # when it consumes tokens): its other grants are read access to this stack's secrets
        # (the API key, and the quota store's URL).
        self.runtime_account = gcp.serviceaccount.Account(
            f"{name}-runtime-sa",
            project=project,
            account_id=account_id(args.prefix, "run"),
            display_name=f"{args.prefix} token function (runtime)",
            opts=child(),
        )
        # New projects build with the default compute account, which often lacks the roles a
        # build needs; a dedicated build account makes the first deploy predictable.
        self.build_account = gcp.serviceaccount.Account(
            f"{name}-build-sa",
            project=project,
            account_id=account_id(args.prefix, "build"),
            display_name=f"{args.prefix} token function (build)",
            opts=child(),
        )
        runtime_member = self.runtime_account.email.apply(lambda e: f"serviceAccount:{e}")
        build_member = self.build_account.email.apply(lambda e: f"serviceAccount:{e}")
        build_grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                f"{name}-build-{role.split('/')[-1].replace('.', '-').lower()}",
                project=project,
                role=role,
                member=build_member,
                opts=child(),
            )
            for role in BUILD_PROJECT_ROLES
        ]
        # The function's images go to this stack's own repository (not the shared, implicitly
        # created gcf-artifacts one), so the build account's push right covers exactly it.
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-images",
            project=project,
            location=region,
            repository_id=physical_name(args.prefix, "images", max_len=63),
            format="DOCKER",
            description=f"{args.prefix} token function images (built by Cloud Build)",
            # Every deploy adds an image; without cleanup the repository grows (and bills) forever.
            cleanup_policies=[dict(p) for p in IMAGE_CLEANUP_POLICIES],
            cleanup_policy_dry_run=False,  # delete for real: dry run only logs what it would delete
            opts=child(),
        )
        # Same region and project as the function: Cloud Functions refuses anything else.
        self.docker_repository = pulumi.Output.concat(
            "projects/", project, "/locations/", region, "/repositories/", self.repository.repository_id)
        build_grants.append(gcp.artifactregistry.RepositoryIamMember(
            f"{name}-build-images-writer",
            project=project,
            location=region,
            repository=self.repository.repository_id,
            role=BUILD_REPOSITORY_ROLE,
            member=build_member,
            opts=child(),
        ))

        # The key: a secret whose version holds the config value (encrypted in state, since
        # `api_key` is a Pulumi secret). The function pins this exact version, never "latest",
        # so rotation is `pulumi config set --secret` + `pulumi up`, and redeploys are deterministic.
        self.secret = gcp.secretmanager.Secret(
            f"{name}-api-key",
            project=project,
            secret_id=physical_name(args.prefix, "outspeed-api-key", max_len=255),
            replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
            opts=child(),
        )
        self.secret_version = gcp.secretmanager.SecretVersion(
            f"{name}-api-key-version",
            secret=self.secret.id,
            secret_data=pulumi.Output.secret(args.api_key),
            opts=child(),
        )
        # Scoped to this one secret, not the project: the function can read nothing else.
        accessor = gcp.secretmanager.SecretIamMember(
            f"{name}-api-key-accessor",
            project=project,
            secret_id=self.secret.id,
            role=SECRET_ACCESSOR,
            member=runtime_member,
            opts=child(),
        )
        accessors: list[pulumi.Resource] = [accessor]

        # The quota store (DESIGN.md "Spend ceiling"): its URL is a secret like the key, read
        # by this runtime account only, on that one secret.
        self.quota_store = None
        if s.quotas is not None:
            self.quota_store = QuotaStore(f"{name}-quota", QuotaStoreArgs(
                quotas=s.quotas, project=project, region=region, prefix=args.prefix,
                depends_on=tuple(apis.services)), opts=pulumi.ResourceOptions(parent=self))
            accessors.append(gcp.secretmanager.SecretIamMember(
                f"{name}-quota-url-accessor",
                project=project,
                secret_id=self.quota_store.secret.id,
                role=SECRET_ACCESSOR,
                member=runtime_member,
                opts=child(),
            ))

        # Source: the object's name carries the content hash of function/, and its bytes are a
        # deterministic zip of the same files (outspeed_token/source.py), so an unchanged tree is no diff.
        self.source_hash = source_hash(args.source_dir)
        self.bucket = gcp.storage.Bucket(
            f"{name}-source",
            project=project,
            location=region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=True,  # holds only build inputs; let `pulumi destroy` remove it
            opts=child(),
        )
        self.source_object = gcp.storage.BucketObject(
            f"{name}-source-zip",
            bucket=self.bucket.name,
            name=f"function-{self.source_hash[:20]}.zip",
            source=pulumi.FileAsset(str(write_zip(args.source_dir))),
            opts=pulumi.ResourceOptions(parent=self),
        )

        runtime_grants: list[pulumi.Resource] = list(accessors)
        if consume:
            # On the project: verifyAppCheckToken is a method of the project (no narrower resource).
            # A Firebase project other than the stack's needs this grant there (docs/app-check-replay.md).
            runtime_grants.append(gcp.projects.IAMMember(
                f"{name}-runtime-appcheck-verifier",
                project=project,
                role=APP_CHECK_CONSUME_ROLE,
                member=runtime_member,
                opts=child(),
            ))

        settled = pulumi_time.Sleep(
            f"{name}-iam-settle",
            create_duration=IAM_SETTLE,
            opts=child(*runtime_grants, *build_grants),
        )

        env: pulumi.Input[dict] = function_environment(s, project, key_prefix=args.prefix)
        secret_env = [
            gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs(
                key=API_KEY_ENV,
                project_id=project,
                secret=self.secret.secret_id,
                version=self.secret_version.version,
            )
        ]
        vpc: dict = {}
        store = self.quota_store
        if store is not None:
            # Pinned to the version the stack wrote, like the key: a new URL is a new deploy.
            secret_env.append(gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs(
                key=URL_ENV,
                project_id=project,
                secret=store.secret.secret_id,
                version=store.secret_version.version,
            ))
            if store.ca_cert is not None:
                plain = env
                env = store.ca_cert.apply(lambda pem: dict(sorted({**plain, CA_ENV: pem}.items())))
            if store.subnetwork is not None:
                # Direct VPC egress (no connector): the instances take addresses in the store's /26.
                # Google's guide also has the function's account hold roles/run.invoker: the public
                # invoker grant below (allUsers) covers every identity, so no project-wide grant.
                vpc = dict(
                    direct_vpc_network_interfaces=[gcp.cloudfunctionsv2.FunctionServiceConfigDirectVpcNetworkInterfaceArgs(
                        network=store.network.name,
                        subnetwork=store.subnetwork.name,
                    )],
                    direct_vpc_egress=DIRECT_VPC_EGRESS,
                )
        self.function = gcp.cloudfunctionsv2.Function(
            f"{name}-function",
            project=project,
            location=region,
            name=physical_name(args.prefix, max_len=63),
            description="Mints short-lived Outspeed ephemeral keys for browser frontends",
            build_config=gcp.cloudfunctionsv2.FunctionBuildConfigArgs(
                runtime=RUNTIME,
                entry_point=ENTRY_POINT,
                service_account=self.build_account.id,
                docker_repository=self.docker_repository,
                source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceArgs(
                    storage_source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceStorageSourceArgs(
                        bucket=self.bucket.name,
                        object=self.source_object.name,
                    ),
                ),
            ),
            service_config=gcp.cloudfunctionsv2.FunctionServiceConfigArgs(
                service_account_email=self.runtime_account.email,
                # dev: ALLOW_ALL (frontends call the function URL directly).
                # prod: ALLOW_INTERNAL_AND_GCLB, so the load balancer (and its Cloud Armor
                # policy) cannot be bypassed through the run.app URL.
                ingress_settings=s.ingress,
                min_instance_count=s.min_instances,
                max_instance_count=s.max_instances,
                max_instance_request_concurrency=s.concurrency,
                # Concurrency above 1 needs a whole vCPU (see Settings.available_cpu).
                available_cpu=s.available_cpu,
                available_memory=s.memory,
                timeout_seconds=REQUEST_TIMEOUT_SECONDS,
                all_traffic_on_latest_revision=True,
                environment_variables=env,
                secret_environment_variables=secret_env,
                **vpc,
            ),
            # The runtime account must already read the secrets and the build account hold its
            # roles (and both have taken effect), or the first deploy fails: secret access is
            # checked at deploy time, the build reads the source as the build account.
            opts=child(settled, *runtime_grants, *build_grants,
                       *([store] if store is not None else [])),
        )

        service_config = self.function.service_config
        self.service = service_config.apply(lambda c: c.service)  # projects/<p>/locations/<r>/services/<name>
        self.service_name = self.service.apply(lambda svc: svc.split("/")[-1])
        self.uri = service_config.apply(lambda c: c.uri)
        self.token_url = self.uri.apply(lambda u: u.rstrip("/") + "/token")

        # Gen2 functions are invoked through their Cloud Run service, which checks
        # roles/run.invoker (a cloudfunctions IAM binding cannot grant it). Public on purpose:
        # browsers call without Google credentials; in prod ingress still limits the path to the LB.
        self.invoker = gcp.cloudrunv2.ServiceIamMember(
            f"{name}-public-invoker",
            project=project,
            location=region,
            name=self.service,
            role="roles/run.invoker",
            member="allUsers",
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs({
            "functionName": self.function.name,
            "tokenUrl": self.token_url,
            "secretId": self.secret.secret_id,
            "serviceAccount": self.runtime_account.email,
            "sourceObject": self.source_object.name,
        })
