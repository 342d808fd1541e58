"""outspeed-token: a Pulumi package for a token endpoint for Outspeed voice agents on Google Cloud.

    from outspeed_token import TokenEndpoint
    endpoint = TokenEndpoint("voice", {"outspeed_api_key": key, "auth_enabled": False})

The repository's own program (`__main__.py`), tools and tests import it from the checkout;
pip installs it with the function's source inside (pyproject.toml).

Kept import-light on purpose: `settings`, `endpoint_args` and `stackfiles` are pure (no
Pulumi runtime, no pulumi_gcp), so tools such as `make run` can derive the function's
environment from a stack file exactly as the deployed stack does. `TokenEndpoint` (which
imports pulumi_gcp) is loaded on first access. The components live in `endpoint` (the public
one), `token_function`, `edge` and `monitoring`, with `apis` enabling the APIs each needs.
"""
from ._version import __version__

__all__ = ["TokenEndpoint", "TokenEndpointArgs", "__version__"]


def __getattr__(name: str):
    if name == "TokenEndpoint":
        from .endpoint import TokenEndpoint
        return TokenEndpoint
    if name == "TokenEndpointArgs":
        from .endpoint_args import TokenEndpointArgs
        return TokenEndpointArgs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
