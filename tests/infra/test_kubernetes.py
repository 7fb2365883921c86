"""deploy/k8s/ validates strictly against the Kubernetes API schemas and says what the
availability design needs (k8s_invariants.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from k8s_invariants import all_checks, fudo_metric_names, load_manifests

#: The oldest Kubernetes minor the manifests must work on (EKS standard support) and the newest.
KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]


def validate(kubernetes_validate: str, folder: Path, version: str) -> subprocess.CompletedProcess[str]:
    files = sorted(str(p) for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    return subprocess.run(
        [kubernetes_validate, "--strict", "-k", version, *files], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly(kubernetes_validate: str, k8s_root: Path, version: str) -> None:
    proc = validate(kubernetes_validate, k8s_root, version)
    assert proc.returncode == 0 and "ERROR" not in proc.stdout, proc.stdout + proc.stderr


def test_manifests_say_what_the_design_needs(k8s_root: Path) -> None:
    objects = load_manifests(k8s_root)
    violations = all_checks(objects, fudo_metric_names(REPO / "src" / "metrics.rs"))
    assert not violations, "\n".join(violations)


def test_kustomization_lists_every_manifest(k8s_root: Path) -> None:
    import yaml

    listed = set(yaml.safe_load((k8s_root / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in k8s_root.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present, f"kustomization.yaml lists {sorted(listed)}, folder has {sorted(present)}"
