"""Fixtures shared by tests/ and tests/browser/: the documentation site, built once per session."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# conftest files are plugins, not test modules: --doctest-modules would import this one and
# tests/browser/conftest.py under the same module name
collect_ignore_glob = ["conftest.py", "browser/conftest.py"]
DOCS_HINT = "install the docs tools: `.venv/bin/pip install -e '.[docs]'` (included in '.[dev]')"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a dotted name whose parent package is missing
        return False


@dataclass
class BuiltSite:
    """The output of ``mkdocs build --strict``: folder, exit status, seconds, log."""

    dir: Path
    returncode: int
    seconds: float
    log: str


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> BuiltSite:
    """The README's docs command, ``mkdocs build --strict``, into a temporary folder.

    Without MkDocs the docs tests skip on a developer machine and fail in CI (``CI`` true),
    like the browser tests.
    """
    missing = [m for m in ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python", "latex2mathml")
               if not _installed(m)]
    if missing:
        msg = f"docs: {', '.join(missing)} not installed; {DOCS_HINT}"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2.0, not a warning
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return BuiltSite(out, proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr)
