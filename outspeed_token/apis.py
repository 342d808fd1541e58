"""Enable Google Cloud APIs a component needs, so a first `pulumi up` on an empty project works."""
from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_gcp as gcp


class ProjectApis(pulumi.ComponentResource):
    """One `projects.Service` per API; dependants pass `.services` to `depends_on`."""

    def __init__(self, name: str, project: str, apis: Sequence[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("outspeed-token:infra:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=project,
                service=api,
                # Leave APIs on at destroy: other workloads in the project may use them, and
                # disabling is slow and can break a later `pulumi up`.
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in apis
        ]
        self.register_outputs({"apis": list(apis)})

    def child_options(self, parent: pulumi.Resource, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a child of `parent` that must wait for these APIs (and for `depends_on`)."""
        return pulumi.ResourceOptions(parent=parent, depends_on=[*self.services, *depends_on])
