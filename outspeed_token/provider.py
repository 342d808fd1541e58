"""The plugin side of the package: a Pulumi provider that hosts `TokenEndpoint` for programs in
any Pulumi language (`pulumi package add github.com/<org>/<repo>@vX.Y.Z`).

How the CLI starts it (pulumi-language-python's RunPlugin): PulumiPlugin.yaml (`runtime:
python`) sits at the repository root, and since the root has a `__main__.py` the language
host runs `python <root> <engine address> ...`. That `__main__.py` is also the repository's
own Pulumi program, so it dispatches: run by the CLI as a program (the Pulumi runtime is
configured: a resource monitor exists) it deploys the stack; started as the plugin (no
monitor) it calls `serve()` here. The repo root is on sys.path either way (Python puts the
directory it runs on sys.path[0]).

The schema is inferred by the SDK's analyzer (pulumi.provider.experimental) from the type
annotations of `TokenEndpointArgs` and the `pulumi.Output` attributes of `TokenEndpoint`;
the analyzer has no notion of secret inputs, so `schema_with_secrets` marks the two
secrets itself (the component also wraps the key in `pulumi.Output.secret` whatever the
caller passes).
"""
from __future__ import annotations

import json
from typing import Any, Optional

from ._version import __version__

PACKAGE = "outspeed-token"
TOKEN = f"{PACKAGE}:index:TokenEndpoint"
# (type token or None for the resource, property) -> marked `secret: true` in the schema.
SECRET_INPUTS = ((None, "outspeedApiKey"), (f"{PACKAGE}:index:QuotasArgs", "redisUrl"))


def schema_with_secrets(schema: dict[str, Any]) -> dict[str, Any]:
    for type_token, prop in SECRET_INPUTS:
        props = (schema["resources"][TOKEN]["inputProperties"] if type_token is None
                 else schema["types"][type_token]["properties"])
        props[prop]["secret"] = True
    return schema


def build_provider():
    """The provider: TokenEndpoint's inferred schema, secrets marked."""
    from pulumi.provider.experimental.component import ComponentProvider

    from .endpoint import TokenEndpoint

    class Provider(ComponentProvider):
        def __init__(self) -> None:
            super().__init__([TokenEndpoint], PACKAGE, None, __version__)
            self.schema = json.dumps(schema_with_secrets(json.loads(self.schema)))

    return Provider()


def serve(args: Optional[list[str]] = None) -> None:
    """Serve the provider over gRPC: prints its port on stdout, as the engine expects
    (what `component_provider_host([TokenEndpoint], name="outspeed-token", version=...)`
    does, with the schema's secrets marked)."""
    import sys

    from pulumi.provider import main

    main(build_provider(), sys.argv[1:] if args is None else args)
