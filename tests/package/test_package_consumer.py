"""A consumer outside the repository (issue 19 item 5): build the wheel, install it into a
fresh venv in a temp directory (dependencies from the package index, as a user's pip would
fetch them: nothing is shared with the repository's .venv), and run consumer_program.py
there under Pulumi mocks. It creates a dev and a prod TokenEndpoint in one program.

Slow by nature (the install fetches pulumi and pulumi-gcp: about 1.5 minutes here), so it is
done once per session and every test reads the same run."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from outspeed_token._version import __version__
from outspeed_token.source import deployable_files, source_hash, zip_bytes

ROOT = Path(__file__).resolve().parents[2]
REPO_FUNCTION = ROOT / "function"
# What the wheel is built from (copied, so the build leaves nothing in the working tree).
BUILD_INPUTS = ("pyproject.toml", "outspeed_token", "function", "docs/package.md")


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for rel in BUILD_INPUTS:
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_dir():
            shutil.copytree(ROOT / rel, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / rel, target)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)], src, 600)
    (built,) = out.glob("outspeed_token-*.whl")
    return built


@pytest.fixture(scope="session")
def consumer(tmp_path_factory, wheel) -> dict:
    home = tmp_path_factory.mktemp("consumer")
    assert ROOT not in home.parents
    venv = home / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], home, 120)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], home, 900)
    program = home / "program"
    program.mkdir()
    shutil.copy2(Path(__file__).parent / "consumer_program.py", program / "__main__.py")
    _run([str(python), str(program), str(home / "result.json")], home, 300)
    result = json.loads((home / "result.json").read_text())
    result["venv"] = str(venv)
    return result


def test_wheel_is_named_and_versioned_from_the_one_version(wheel):
    assert wheel.name == f"outspeed_token-{__version__}-py3-none-any.whl"


def test_the_installed_package_is_the_one_imported(consumer):
    assert consumer["version"] == __version__
    package_dir = Path(consumer["package_dir"])
    assert Path(consumer["venv"]) in package_dir.parents and "site-packages" in package_dir.parts


def test_the_function_archive_comes_from_the_installed_package(consumer):
    # The component found its function source inside the installed package (site-packages),
    # not in any repository: the consumer's program imports nothing of this one.
    package_function = Path(consumer["package_dir"]) / "function"
    assert Path(consumer["source_dir"]) == package_function
    archives = [r for r in consumer["resources"] if r["archive"]]
    assert len(archives) == 2  # one per endpoint
    expected = hashlib.sha256(zip_bytes(REPO_FUNCTION)).hexdigest()
    for archive in archives:
        # Exactly the repository's deployable files, byte for byte the zip the repository builds.
        assert archive["archive"]["entries"] == deployable_files(REPO_FUNCTION)
        assert archive["archive"]["sha256"] == expected
        # Same content hash as the repository's copy: the object name (and so the deploy) is the same.
        assert archive["inputs_name"] == f"function-{source_hash(REPO_FUNCTION)[:20]}.zip"


def test_outputs_resolve_for_dev_and_prod(consumer):
    dev, prod = consumer["outputs"]["dev"], consumer["outputs"]["prod"]
    assert dev["token_url"] == f"https://{dev['function_name']}-xyz.a.run.app/token"  # the function's own URL
    assert dev["ip_address"] is None  # no edge in dev
    assert prod["token_url"] == "https://token.example.com/token" and prod["ip_address"] == "203.0.113.7"
    for out in (dev, prod):
        assert out["secret_id"] == f"{out['function_name']}-outspeed-api-key"
        assert out["service_account"].endswith("@consumer-project.iam.gserviceaccount.com")
        assert out["logs_url"].endswith("?project=consumer-project")
        assert out["dashboard_url"].startswith("https://console.cloud.google.com/monitoring/dashboards/builder/")


def test_two_endpoints_in_one_program_share_no_name(consumer):
    resources = consumer["resources"]
    logical = [(r["type"], r["name"]) for r in resources]
    assert len(logical) == len(set(logical))
    # Google-side names (bucket objects are named within their own bucket: the same source
    # zip name in each endpoint's bucket is no clash).
    physical = [(r["type"], r["inputs_name"]) for r in resources
                if r["inputs_name"] and r["type"] != "gcp:storage/bucketObject:BucketObject"]
    assert len(physical) == len(set(physical))
    accounts = [r["account_id"] for r in resources if r["account_id"]]
    assert len(accounts) == len(set(accounts)) == 4 and all(6 <= len(a) <= 30 for a in accounts)
    # Children are named after their endpoint.
    assert {r["name"] for r in resources if r["type"].startswith("outspeed-token:infra:")} >= {
        "dev-token", "dev-monitoring", "prod-token", "prod-edge", "prod-monitoring"}


def test_bad_args_fail_with_the_stack_config_error_naming_them(consumer):
    errors = consumer["errors"]
    assert errors["rate"].startswith("ConfigError: config outspeed-token:rateLimit.requestsPerMinute: ")
    assert "outspeedApiKey" in errors["key"] and "required" in errors["key"]
