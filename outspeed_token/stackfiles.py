"""Read a stack's configuration the way the Pulumi CLI hands it to the program.

Merge order (later wins), as the CLI does it: `Pulumi.yaml` `config:` defaults (project keys)
and values (other namespaces such as `gcp:region`), then `Pulumi.<stack>.yaml`.
Keys come back fully qualified (`outspeed-token:authEnabled`, `gcp:region`); values keep
their YAML types (bool, int, list, dict). Pure: no Pulumi runtime involved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "outspeed-token"


def _qualify(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def project_file(root: Path = ROOT) -> dict[str, Any]:
    with open(root / "Pulumi.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def declared_keys(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """The project's own config declarations (bare key -> declaration) from Pulumi.yaml."""
    out = {}
    for key, decl in (project_file(root).get("config") or {}).items():
        if ":" in key and not key.startswith(PROJECT + ":"):
            continue
        out[key.split(":", 1)[-1]] = decl if isinstance(decl, dict) else {"default": decl}
    return out


def stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """Fully-qualified key -> value for `stack`, defaults from Pulumi.yaml applied."""
    merged: dict[str, Any] = {}
    for key, decl in (project_file(root).get("config") or {}).items():
        qualified = _qualify(key)
        if not isinstance(decl, dict):
            merged[qualified] = decl  # shorthand: a default (project key) or a value (other namespace)
        elif "value" in decl:
            merged[qualified] = decl["value"]
        elif "default" in decl:
            merged[qualified] = decl["default"]
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path.name} (stacks: dev, prod)")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    for key, value in (data.get("config") or {}).items():
        merged[_qualify(key)] = value
    return merged


def project_values(config: dict[str, Any]) -> dict[str, Any]:
    """Bare key -> value for this project's namespace only."""
    prefix = PROJECT + ":"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
