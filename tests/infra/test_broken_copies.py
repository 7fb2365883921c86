"""The checks catch what they claim to: each test copies terraform/ or deploy/k8s/, breaks one
property the way a careless edit would, and asserts the matching check names the breakage.

A check that passes the real tree but also passes these copies proves nothing; this file is
what makes the green run of the others mean something.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hcl_tree import load_tree, remove_blocks
from k8s_invariants import all_checks, fudo_metric_names, load_manifests
from terraform_invariants import (
    audit_bucket_compliance,
    buckets_encrypted_and_tls_only,
    no_world_open_ports,
    redis_ha_and_encrypted,
    spot_never_holds_baseline,
    three_azs,
    variables_typed_and_described,
)
from test_checkov import failed_checks, run_checkov
from test_kubernetes import validate

from conftest import REPO


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    return dst


def edit(folder: Path, pattern: str, replacement: str, count: int = 1, files: str = "*") -> Path:
    """Replaces the first ``count`` matches of ``pattern`` in the .tf/.yaml files of
    ``folder`` named like ``files``; fails if nothing matched (so a renamed file cannot make
    the test vacuous)."""
    left = count
    for path in sorted(folder.rglob(files)):
        if path.suffix not in (".tf", ".yaml") or "examples" in path.parts or not left:
            continue
        text = path.read_text(encoding="utf-8")
        new, n = re.subn(pattern, replacement, text, count=left)
        if n:
            path.write_text(new, encoding="utf-8")
            left -= n
            changed = path
    assert left < count, f"nothing in {folder} matches {pattern!r}"
    return changed


def remove_block(folder: Path, header: str) -> Path:
    """Deletes the first block whose header matches ``header`` (up to its closing brace)."""
    for path in sorted(folder.rglob("*.tf")):
        if "examples" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        edited = remove_blocks(text, header, limit=1)
        if edited != text:
            path.write_text(edited, encoding="utf-8")
            return path
    raise AssertionError(f"no block {header!r} under {folder}")


@pytest.fixture
def tf_copy(tmp_path: Path, terraform_root: Path) -> Path:
    return copy_tree(terraform_root, tmp_path / "terraform")


@pytest.fixture
def k8s_copy(tmp_path: Path, k8s_root: Path) -> Path:
    return copy_tree(k8s_root, tmp_path / "k8s")


def violations(check, root: Path) -> str:
    return "\n".join(check(load_tree(root)))


def test_redis_without_multi_az(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "redis", r"multi_az_enabled(\s*)=\s*true", r"multi_az_enabled\1= false")
    assert "multi_az_enabled must be the literal true" in violations(redis_ha_and_encrypted, tf_copy)


def test_redis_without_tls(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "redis", r"transit_encryption_enabled(\s*)=\s*true", r"transit_encryption_enabled\1= false")
    assert "transit_encryption_enabled must be the literal true" in violations(redis_ha_and_encrypted, tf_copy)


def test_unencrypted_bucket(tf_copy: Path) -> None:
    remove_block(tf_copy / "modules" / "audit", r'resource\s+"aws_s3_bucket_server_side_encryption_configuration"')
    assert "no server-side encryption configuration" in violations(buckets_encrypted_and_tls_only, tf_copy)


def test_bucket_policy_without_tls_only(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "audit", r'"aws:SecureTransport"', '"aws:ViaAWSService"', count=10)
    assert "no bucket policy denying requests without TLS" in violations(buckets_encrypted_and_tls_only, tf_copy)


def test_audit_bucket_in_governance_mode(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "audit", r'"COMPLIANCE"', '"GOVERNANCE"')
    assert "not COMPLIANCE" in violations(audit_bucket_compliance, tf_copy)


def test_two_azs(tf_copy: Path) -> None:
    edit(tf_copy / "envs" / "prod", r',\s*"ap-northeast-1d"', "")
    assert "at least 3 are required" in violations(three_azs, tf_copy)
    edit(tf_copy / "modules" / "network", r"length\(var\.azs\)(\s*)>=\s*3", r"length(var.azs)\1>= 2")
    assert "does not require at least 3 zones" in violations(three_azs, tf_copy)


def test_spot_in_the_baseline_pool(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "cluster", r'\["on-demand"\]', '["spot", "on-demand"]')
    assert "the HA baseline must be on-demand only" in violations(spot_never_holds_baseline, tf_copy)


def test_redis_port_open_to_the_world(tf_copy: Path) -> None:
    (tf_copy / "modules" / "redis" / "broken.tf").write_text(
        'resource "aws_vpc_security_group_ingress_rule" "anyone" {\n'
        "  security_group_id = aws_security_group.this.id\n"
        '  cidr_ipv4         = "0.0.0.0/0"\n'
        "  from_port         = 6379\n"
        "  to_port           = 6379\n"
        '  ip_protocol       = "tcp"\n'
        "}\n"
    )
    assert "ingress from anywhere on ports (6379, 6379)" in violations(no_world_open_ports, tf_copy)


def test_variable_without_description(tf_copy: Path) -> None:
    edit(tf_copy / "modules" / "redis", r'\n\s*description\s*=\s*"[^"\n]*"(?=[^}]*\n\s*type)', "")
    assert "has no description" in violations(variables_typed_and_described, tf_copy)


def test_checkov_fails_an_unencrypted_bucket(tf_copy: Path, checkov: str) -> None:
    audit = tf_copy / "modules" / "audit"
    remove_block(audit, r'resource\s+"aws_s3_bucket_server_side_encryption_configuration"')
    failed = failed_checks(run_checkov(checkov, audit))
    assert any("encrypt" in f.lower() for f in failed), "checkov passed a bucket with no encryption:\n" + "\n".join(failed)


def k8s_violations(folder: Path) -> str:
    return "\n".join(all_checks(load_manifests(folder), fudo_metric_names(REPO / "src" / "metrics.rs")))


def test_baseline_tolerating_spot(k8s_copy: Path) -> None:
    edit(k8s_copy, r"(\n(\s*)tolerations:\n)", r"\1\2  - key: fudo.io/capacity\n\2    operator: Exists\n", files="statefulset-*.yaml")
    assert "the baseline tolerates the spot taint" in k8s_violations(k8s_copy)


def test_readiness_probe_not_grpc(k8s_copy: Path) -> None:
    edit(k8s_copy, r"readinessProbe:\n((?:\s*#.*\n)*)(\s*)grpc:", r"readinessProbe:\n\1\2tcpSocket:", files="statefulset-*.yaml")
    assert "readinessProbe is not a gRPC health probe" in k8s_violations(k8s_copy)


def test_manifest_with_an_unknown_field(k8s_copy: Path, kubernetes_validate: str) -> None:
    edit(k8s_copy, r"\n(\s*)podManagementPolicy:", r"\n\1replicaz: 3\n\1podManagementPolicy:")
    proc = validate(kubernetes_validate, k8s_copy, "1.37.0")
    assert proc.returncode != 0, "kubernetes-validate --strict accepted an unknown field:\n" + proc.stdout
