"""The outspeed-token Pulumi infra package.

Kept import-light on purpose: `infra.settings` and `infra.stackfiles` are pure (no Pulumi
runtime, no pulumi_gcp), so tools such as `make run` can derive the function's environment
from a stack file exactly as the deployed stack does. The components live in
`infra.token_function`, `infra.edge` and `infra.monitoring` (whose config half is pure too),
with `infra.apis` enabling the APIs each needs.
"""
