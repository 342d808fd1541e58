"""The function's deployable files and their content hash (pure; no Pulumi runtime).

The hash goes into the uploaded object's name, so a code change yields a new object (and a
redeploy) while an unchanged tree keeps the same name (and no update). Bytecode caches and
tests never ship and never affect the hash.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

# Installed (wheel), the function ships inside the package (pyproject.toml maps function/ to
# outspeed_token/function); in the repository it is the top-level function/ directory.
_PACKAGED_SOURCE_DIR = Path(__file__).resolve().parent / "function"
DEFAULT_SOURCE_DIR = (_PACKAGED_SOURCE_DIR if _PACKAGED_SOURCE_DIR.is_dir()
                      else Path(__file__).resolve().parent.parent / "function")
_EXCLUDED_DIRS = {"__pycache__", "tests", "test", ".pytest_cache", ".mypy_cache", ".venv", "node_modules"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def deployable_files(source_dir: Path) -> list[str]:
    """Sorted POSIX paths (relative to source_dir) of the files that are deployed."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"function source directory {source_dir} does not exist")
    files = []
    for path in source_dir.rglob("*"):
        rel = path.relative_to(source_dir)
        if not path.is_file() or any(part in _EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.suffix in _EXCLUDED_SUFFIXES or rel.name.startswith("test_") or rel.name.endswith("_test.py"):
            continue
        files.append(rel.as_posix())
    return sorted(files)


def source_hash(source_dir: Path) -> str:
    """sha256 over every deployed file's path and bytes (length-prefixed, so no two trees collide)."""
    digest = hashlib.sha256()
    for rel in deployable_files(source_dir):
        data = (Path(source_dir) / rel).read_bytes()
        for chunk in (rel.encode(), data):
            digest.update(len(chunk).to_bytes(8, "big"))
            digest.update(chunk)
    return digest.hexdigest()
