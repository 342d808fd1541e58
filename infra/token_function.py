"""TokenFunction: the 2nd-gen Cloud Function that holds the Outspeed API key and mints keys,
with what it needs: its APIs, runtime and build accounts and their grants, the secret (version
pinned), the stack's own image repository, the source bucket, and the public invoker grant."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as pulumi_time

from .apis import ProjectApis
from .settings import Settings, function_environment
from .source import deployable_files, source_hash

RUNTIME = "python312"
ENTRY_POINT = "token"
API_KEY_ENV = "OUTSPEED_API_KEY"
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

# What Cloud Build needs to build a gen2 function as our own build account (Google's "custom
# build service account" guide: write build logs, read the source, push the image), each as
# narrow as Cloud Functions allows:
# - push: roles/artifactregistry.writer on this stack's own image repository only (passed to
#   the function as build_config.docker_repository), not project-wide.
# - read the source: still PROJECT-WIDE, but read-only (objectViewer, down from the guide's
#   objectAdmin: gen2 images go to Artifact Registry, so nothing is written to Cloud Storage).
#   The build does not read our source bucket: Cloud Functions copies the zip into its own
#   gcf-v2-sources-<project-number>-<region> bucket and the build fetches it from there. That
#   bucket is created by the first function deploy, which starts the build at once, so no
#   bucket-level grant can exist before the first build needs it.
# - logs: roles/logging.logWriter is PROJECT-WIDE: log writing has no narrower resource.
BUILD_PROJECT_ROLES = ("roles/logging.logWriter", "roles/storage.objectViewer")
BUILD_REPOSITORY_ROLE = "roles/artifactregistry.writer"


def physical_name(*parts: str, max_len: int = 63) -> str:
    """A lower-case, dash-separated GCP name from parts, trimmed to max_len."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name[:1].isalpha():
        name = "x" + name
    return name[:max_len].rstrip("-")


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

        apis = ProjectApis(f"{name}-apis", project, APIS, opts=pulumi.ResourceOptions(parent=self))

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[*apis.services, *depends_on])

        # Accounts. The runtime account holds no project roles at all: its only grant is
        # read access to this stack's one secret.
        self.runtime_account = gcp.serviceaccount.Account(
            f"{name}-runtime-sa",
            project=project,
            account_id=physical_name(args.prefix[:23], "run", max_len=30),
            display_name=f"{args.prefix} token function (runtime)",
            opts=child(),
        )
        # New projects build with the default compute account, which often lacks the roles a
        # build needs; a dedicated build account makes the first deploy predictable.
        self.build_account = gcp.serviceaccount.Account(
            f"{name}-build-sa",
            project=project,
            account_id=physical_name(args.prefix[:23], "build", max_len=30),
            display_name=f"{args.prefix} token function (build)",
            opts=child(),
        )
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
            role="roles/secretmanager.secretAccessor",
            member=self.runtime_account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=child(),
        )

        # Source: the object's name carries the content hash of function/.
        files = deployable_files(args.source_dir)
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
            source=pulumi.AssetArchive({rel: pulumi.FileAsset(str(Path(args.source_dir) / rel)) for rel in files}),
            opts=pulumi.ResourceOptions(parent=self),
        )

        settled = pulumi_time.Sleep(
            f"{name}-iam-settle",
            create_duration=IAM_SETTLE,
            opts=child(accessor, *build_grants),
        )

        env = function_environment(s, project)
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
                secret_environment_variables=[
                    gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs(
                        key=API_KEY_ENV,
                        project_id=project,
                        secret=self.secret.secret_id,
                        version=self.secret_version.version,
                    )
                ],
            ),
            # The runtime account must already read the secret and the build account hold its
            # roles (and both have taken effect), or the first deploy fails: secret access is
            # checked at deploy time, the build reads the source as the build account.
            opts=child(settled, accessor, *build_grants),
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
