"""The function deploys a locked dependency set (function/requirements.txt, compiled from
requirements.in by `make lock`), and the local venv the tests run in has exactly those
versions: what CI proves is what Cloud Functions installs."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "function"
_PIN = re.compile(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)")
# The deployed runtime (outspeed_token/token_function.py RUNTIME) and the local one.
PYTHONS = ("3.11", "3.12")


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def locked() -> dict[str, str]:
    pins = {}
    for line in _requirement_lines(FUNCTION_DIR / "requirements.txt"):
        match = _PIN.fullmatch(line)
        assert match, f"function/requirements.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_line_of_the_lock_is_an_exact_pin_and_no_local_option_leaks():
    text = (FUNCTION_DIR / "requirements.txt").read_text()
    assert "--find-links" not in text and "--index-url" not in text and "--extra-index-url" not in text
    assert len(locked()) >= 10


def test_direct_requirements_are_locked_at_their_pinned_versions():
    pins = locked()
    for line in _requirement_lines(FUNCTION_DIR / "requirements.in"):
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in requirements.in but not in the lock: run make lock"
        assert req.specifier.contains(pins[name]), f"{req.name}: lock has {pins[name]}, requirements.in wants {req.specifier}"


def test_the_lock_is_closed_under_dependencies_on_both_pythons():
    """Every package a locked package needs (on the runtime's Python and the local one) is
    itself pinned, at a version it accepts: nothing is left for the build to pick."""
    pins = locked()
    for name, version in pins.items():
        for spec in metadata.requires(name) or ():
            req = Requirement(spec)
            for python in PYTHONS:
                env = {"python_version": python, "python_full_version": python + ".0", "extra": "",
                       "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                dep = canonicalize_name(req.name)
                assert dep in pins, f"{name}=={version} needs {req} on Python {python}, which the lock does not pin"
                assert req.specifier.contains(pins[dep], prereleases=True), \
                    f"{name} needs {req}, the lock pins {dep}=={pins[dep]}"


def test_the_installed_versions_are_the_locked_ones():
    for name, version in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{name} is locked but not installed: make test reinstalls the venv") from None
        assert installed == version, f"{name}: installed {installed}, locked {version}"
