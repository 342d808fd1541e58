"""The function's deployable files and their content hash (pure; no Pulumi runtime).

The hash goes into the uploaded object's name, so a code change yields a new object (and a
redeploy) while an unchanged tree keeps the same name (and no update). Bytecode caches and
tests never ship and never affect the hash.

The zip itself is built here, byte for byte a function of the files' paths and contents (sorted
entries, fixed timestamps and modes, no compression, so not even the zlib version matters): an
engine-built archive may differ between runs and machines, and a BucketObject whose source
bytes change is replaced on every `up` (pulumi-gcp #3146).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
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


def function_module(name: str, source_dir: Path = DEFAULT_SOURCE_DIR):
    """A stdlib-only module of the function (function/ is deployed as-is, not a package),
    loaded by path under a private name, once: the infra applies the function's own rules
    (function/token_rules.py) so preview refuses what the function would refuse."""
    import importlib.util
    import sys

    qualified = f"{__package__}._function_{name}"  # under this package, whatever it is named
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, Path(source_dir) / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[qualified]
            raise
    return sys.modules[qualified]


_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def zip_bytes(source_dir: Path) -> bytes:
    """The deployable files as a zip whose bytes depend only on their paths and contents."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for rel in deployable_files(source_dir):
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--, whatever the checkout says
            info.create_system = 3  # unix, on every platform
            archive.writestr(info, (Path(source_dir) / rel).read_bytes(), compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def write_zip(source_dir: Path, directory: Path | None = None) -> Path:
    """zip_bytes written to <directory>/function-<hash>.zip (atomically; same tree, same file)."""
    directory = Path(directory or Path(tempfile.gettempdir()) / "outspeed-token")
    directory.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(source_dir)
    path = directory / f"function-{hashlib.sha256(data).hexdigest()[:20]}.zip"
    if not path.is_file() or path.read_bytes() != data:
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return path
