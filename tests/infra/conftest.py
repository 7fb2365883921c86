"""Paths and tools for the offline infrastructure checks (see tests/infra/README.md)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def terraform_root() -> Path:
    return REPO / "terraform"


@pytest.fixture(scope="session")
def k8s_root() -> Path:
    return REPO / "deploy" / "k8s"


def tool(name: str, env: str) -> str:
    """A command-line tool: $env, else next to this Python, else on PATH."""
    if os.environ.get(env):
        return os.environ[env]
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: set {env} or install it (./scripts/test.sh does)")
    return found


@pytest.fixture(scope="session")
def checkov() -> str:
    return tool("checkov", "FUDO_CHECKOV")


@pytest.fixture(scope="session")
def kubernetes_validate() -> str:
    return tool("kubernetes-validate", "FUDO_KUBERNETES_VALIDATE")
