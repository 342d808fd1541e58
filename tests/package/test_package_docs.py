"""docs/package.md shows the TypeScript and YAML usage exactly as tools.package_usage generates
it from the schema, so a renamed input cannot leave the docs behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from outspeed_token.provider import build_provider
from tools import package_usage

ROOT = Path(__file__).resolve().parents[2]


def test_docs_show_the_generated_usage():
    generated = package_usage.render(json.loads(build_provider().schema))
    assert generated in (ROOT / "docs" / "package.md").read_text()


def test_the_generator_refuses_a_name_or_type_the_schema_does_not_have():
    schema = json.loads(build_provider().schema)
    props = schema["resources"][package_usage.TOKEN]["inputProperties"]
    with pytest.raises(KeyError, match="prod.rateLimt"):
        package_usage._check(schema, props, {"rateLimt": {}}, "prod")
    with pytest.raises(TypeError, match="authEnabled"):
        package_usage._check(schema, props, {"authEnabled": "yes"}, "dev")
    with pytest.raises(KeyError, match="callerAuth.idToken.issur"):
        package_usage._check(schema, props, {"callerAuth": {"idToken": {"issur": "x"}}}, "dev")
