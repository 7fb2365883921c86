"""The Terraform estate's invariants hold over terraform/ (terraform_invariants.py says what
each one means)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hcl_tree import load_tree
from terraform_invariants import ALL_CHECKS


@pytest.fixture(scope="module")
def tree(terraform_root: Path):
    return load_tree(terraform_root)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_invariant(tree, check) -> None:
    violations = check(tree)
    assert not violations, "\n".join(violations)


def test_every_module_and_environment_is_there(tree) -> None:
    names = {str(p) for p in tree}
    for module in ("network", "cluster", "redis", "edge", "security", "audit", "monitoring"):
        assert f"modules/{module}" in names, f"modules/{module} missing"
        assert f"modules/{module}/examples/complete" in names, f"modules/{module}/examples/complete missing"
    assert {"envs/prod", "envs/staging"} <= names
