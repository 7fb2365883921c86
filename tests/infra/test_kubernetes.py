"""deploy/k8s/ validates strictly against the Kubernetes API schemas and says what the
availability design needs (k8s_invariants.py)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from hcl_tree import load_tree
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


def _blocks_for_port(objects: list, port: int) -> set[str]:
    """The ipBlock CIDRs the namespace's NetworkPolicies let pods reach on ``port``."""
    cidrs = set()
    for np in (o for o in objects if o.get("kind") == "NetworkPolicy"):
        for rule in np.get("spec", {}).get("egress", []) or []:
            if any(p.get("port") == port for p in rule.get("ports", []) or []):
                cidrs |= {t["ipBlock"]["cidr"] for t in rule.get("to", []) if "ipBlock" in t}
    return cidrs


def test_network_policy_matches_the_terraform_network(k8s_root: Path, terraform_root: Path) -> None:
    """The NetworkPolicy's CIDRs are the ones Terraform builds for Tokyo: Redis (6379) in
    exactly the intra subnets of the network module's layout, the VPC on 443 (interface
    endpoints, S3 included), and Osaka's VPC for the region links (8001)."""
    tree = load_tree(terraform_root)
    layout = str(tree[Path("modules/network")].locals.get("intra_cidrs"))
    m = re.search(r"cidrsubnet\(var\.cidr,\s*(\d+),\s*(\d+)\s*\+\s*i\)", layout)
    assert m, f"cannot read the intra subnet layout from modules/network: {layout}"
    newbits, first = int(m.group(1)), int(m.group(2))
    cidrs = tree[Path("envs/prod")].locals["cidrs"]
    vpc = ipaddress.ip_network(cidrs["tokyo"])
    subnets = list(vpc.subnets(new_prefix=vpc.prefixlen + newbits))
    intra = {str(subnets[first + i]) for i in range(3)}

    objects = load_manifests(k8s_root)
    assert _blocks_for_port(objects, 6379) == intra, f"Redis egress {_blocks_for_port(objects, 6379)} != intra subnets {intra}"
    assert cidrs["tokyo"] in _blocks_for_port(objects, 443)
    assert cidrs["osaka"] in _blocks_for_port(objects, 8001)


#: What a pod may request on the smallest GPU node the NodePools admit (xlarge: 4 vCPUs,
#: 16 GiB), after EKS's kube/system reservation and the node's daemonsets (VPC CNI,
#: kube-proxy, Pod Identity agent, NVIDIA device plugin, log and metrics agents).
XLARGE_BUDGET = {"cpu": 3.5, "memory_gib": 13.0}


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if str(value).endswith("m") else float(value)


def _gib(value: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024, "Ki": 1 / 1024**2}
    for suffix, scale in units.items():
        if str(value).endswith(suffix):
            return float(str(value)[: -len(suffix)]) * scale
    return float(value) / 1024**3


def test_fudo_pods_fit_the_smallest_gpu_node(k8s_root: Path) -> None:
    """Every fudo workload's pod (its containers plus native sidecars) fits an xlarge GPU node,
    the size the cost model prices and staging allows alone."""
    for w in (o for o in load_manifests(k8s_root) if o.get("kind") in ("StatefulSet", "Deployment")):
        pod = w["spec"]["template"]["spec"]
        sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
        requests = [c.get("resources", {}).get("requests", {}) for c in pod["containers"] + sidecars]
        cpu = sum(_cpu(r.get("cpu", "0")) for r in requests)
        mem = sum(_gib(r.get("memory", "0")) for r in requests)
        name = w["metadata"]["name"]
        assert cpu <= XLARGE_BUDGET["cpu"], f"{name} requests {cpu} CPUs, more than an xlarge node leaves ({XLARGE_BUDGET['cpu']})"
        assert mem <= XLARGE_BUDGET["memory_gib"], f"{name} requests {mem:.2f} GiB, more than an xlarge node leaves"
