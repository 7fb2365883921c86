"""What the Terraform estate must always say, as checks over the parsed tree.

Each check takes the loaded tree (``hcl_tree.load_tree``) and returns the violations it found,
one sentence each naming the file and the resource, so that a failing test says what is wrong
and where. The tests run them over ``terraform/`` and over deliberately broken copies of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hcl_tree import Block, Module, blocks, first, refers_to, resolve

Tree = dict[Path, Module]

#: Ports that may be reached from anywhere: TLS only.
PUBLIC_PORTS = {443}
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:north|south|east|west|central|northeast|southeast|southwest|northwest)-\d\b")
ACCOUNT_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


def _modules(tree: Tree, kind: str | None = None) -> list[tuple[Path, Module]]:
    """The tree's modules; ``kind`` restricts to ``terraform/modules/<kind>`` itself."""
    out = []
    for rel, module in tree.items():
        if kind is None or rel.parts == ("modules", kind):
            out.append((rel, module))
    return out


def _is_example(rel: Path) -> bool:
    return "examples" in rel.parts


def _calls_of(tree: Tree, kind: str) -> list[tuple[Path, Module, str, dict[str, Any]]]:
    """Every call of ``modules/<kind>`` outside the module's own examples."""
    out = []
    for rel, module in tree.items():
        for name, call in module.module_calls.items():
            source = str(call.get("source", ""))
            if re.search(rf"(^|/)modules/{kind}/?$", source) or source.rstrip("/").endswith(f"../{kind}"):
                out.append((rel, module, name, call))
    return out


def variables_typed_and_described(tree: Tree) -> list[str]:
    """Every variable has a type and a non-empty description; every output a description."""
    bad = []
    for rel, module in tree.items():
        for name, body in module.variables.items():
            if not body.get("type"):
                bad.append(f"{rel}: variable {name} has no type")
            if not str(body.get("description", "")).strip():
                bad.append(f"{rel}: variable {name} has no description")
        for name, body in module.outputs.items():
            if not str(body.get("description", "")).strip():
                bad.append(f"{rel}: output {name} has no description")
    return bad


def modules_well_formed(tree: Tree) -> list[str]:
    """terraform-aws-modules layout: versions.tf with version constraints, an example, no
    hard-coded regions or account ids inside a module."""
    bad = []
    for rel, module in tree.items():
        if len(rel.parts) != 2 or rel.parts[0] != "modules":
            continue
        versions = module.path / "versions.tf"
        if not versions.exists():
            bad.append(f"{rel}: no versions.tf")
            continue
        terraform = [t for t in module.terraform if t]
        if not any(t.get("required_version") for t in terraform):
            bad.append(f"{rel}: versions.tf sets no required_version")
        for t in terraform:
            for providers in blocks(t, "required_providers"):
                for pname, spec in providers.items():
                    if not isinstance(spec, dict) or not spec.get("version"):
                        bad.append(f"{rel}: provider {pname} has no version constraint")
        if not (module.path / "examples").is_dir():
            bad.append(f"{rel}: no examples/")
        for tf in module.files:
            text = tf.read_text(encoding="utf-8")
            for line_no, line in enumerate(text.splitlines(), 1):
                code = line.split("#", 1)[0].split("//", 1)[0]
                if REGION.search(code):
                    bad.append(f"{tf}:{line_no}: hard-coded region: {line.strip()}")
                if ACCOUNT_ID.search(code):
                    bad.append(f"{tf}:{line_no}: hard-coded account id: {line.strip()}")
    return bad


def three_azs(tree: Tree) -> list[str]:
    """The network module insists on 3 AZs, and every use of it passes at least 3."""
    bad = []
    networks = _modules(tree, "network")
    if not networks:
        return ["no modules/network"]
    for rel, module in networks:
        azs = module.variables.get("azs")
        if azs is None:
            bad.append(f"{rel}: no variable azs")
            continue
        minimum = 0
        for validation in blocks(azs, "validation"):
            m = re.search(r"length\(var\.azs\)\s*>=\s*(\d+)", str(validation.get("condition", "")))
            if m:
                minimum = max(minimum, int(m.group(1)))
        if minimum < 3:
            bad.append(f"{rel}: variable azs does not require at least 3 zones (validation minimum {minimum})")
    calls = _calls_of(tree, "network")
    if not any(not _is_example(rel) for rel, *_ in calls):
        bad.append("no environment uses modules/network")
    for rel, module, name, call in calls:
        azs = resolve(module, call.get("azs"))
        if not isinstance(azs, list):
            bad.append(f"{rel}: module {name} passes azs as an expression the check cannot read ({azs!r}); use a literal list")
        elif len(set(map(str, azs))) < 3:
            bad.append(f"{rel}: module {name} spans {len(set(azs))} AZs ({azs}); at least 3 are required")
    return bad


REDIS_LITERALS = {
    "multi_az_enabled": True,
    "automatic_failover_enabled": True,
    "at_rest_encryption_enabled": True,
    "transit_encryption_enabled": True,
}


INHERITED_BY_SECONDARY = ("at_rest_encryption_enabled", "transit_encryption_enabled")


def redis_ha_and_encrypted(tree: Tree) -> list[str]:
    """Every ElastiCache replication group: Multi-AZ with automatic failover, encrypted at rest
    with a KMS key and in transit, with AUTH (or RBAC users) and at least 2 nodes."""
    bad = []
    groups = [(rel, r) for rel, m in tree.items() for r in m.resources_of("aws_elasticache_replication_group")]
    if not any(rel.parts == ("modules", "redis") for rel, _ in groups):
        bad.append("modules/redis declares no aws_elasticache_replication_group")
    for rel, group in groups:
        # A Global Datastore secondary inherits encryption at rest and in transit from the
        # global group (the provider rejects the two arguments there); the global group takes
        # them from its primary member, which must set them, so it is checked in their place.
        secondary = bool(group.body.get("global_replication_group_id"))
        if secondary:
            primaries = [
                g
                for g in tree[rel].resources_of("aws_elasticache_replication_group")
                if not g.body.get("global_replication_group_id")
                and all(g.body.get(k) is True for k in INHERITED_BY_SECONDARY)
            ]
            if not primaries or not tree[rel].resources_of("aws_elasticache_global_replication_group"):
                bad.append(f"{group.where()}: a Global Datastore secondary with no encrypted primary and global group beside it")
        for key, want in REDIS_LITERALS.items():
            if secondary and key in INHERITED_BY_SECONDARY:
                continue
            if group.body.get(key) is not want:
                bad.append(f"{group.where()}: {key} must be the literal {str(want).lower()}, is {group.body.get(key)!r}")
        if not group.body.get("kms_key_id"):
            bad.append(f"{group.where()}: no kms_key_id (encryption at rest with the default key)")
        if not (group.body.get("auth_token") or group.body.get("user_group_ids")):
            bad.append(f"{group.where()}: neither auth_token nor user_group_ids (no AUTH)")
        if group.body.get("transit_encryption_mode") not in (None, "required"):
            bad.append(f"{group.where()}: transit_encryption_mode lets clients in without TLS")
        nodes = group.body.get("num_cache_clusters")
        module = tree[rel]
        nodes = resolve(module, nodes)
        if isinstance(nodes, int) and nodes < 2:
            bad.append(f"{group.where()}: num_cache_clusters {nodes} < 2 leaves no replica to fail over to")
    return bad


def _attached(module: Module, rtype: str, bucket: Block) -> list[Block]:
    """The ``rtype`` resources (encryption, policy, lock, ...) whose ``bucket`` is ``bucket``."""
    return [r for r in module.resources_of(rtype) if refers_to(r.body.get("bucket"), bucket)]


def _first_attached(module: Module, rtype: str, bucket: Block) -> Block | None:
    return next(iter(_attached(module, rtype, bucket)), None)


def _denies_plain_http(module: Module, policy_expr: Any, bucket: Block) -> bool:
    m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json", str(policy_expr))
    if not m:
        return False
    doc = module.data_of("aws_iam_policy_document", m.group(1))
    if doc is None:
        return False
    for statement in blocks(doc.body, "statement"):
        if statement.get("effect") != "Deny":
            continue
        if not refers_to(statement.get("resources", []), bucket):
            continue
        for condition in blocks(statement, "condition"):
            if (
                condition.get("test") == "Bool"
                and condition.get("variable") == "aws:SecureTransport"
                and [str(v).lower() for v in condition.get("values", [])] == ["false"]
            ):
                return True
    return False


def buckets_encrypted_and_tls_only(tree: Tree) -> list[str]:
    """Every S3 bucket: server-side encryption, all public access blocked and a policy that
    denies every request not made over TLS."""
    bad = []
    for rel, module in tree.items():
        for bucket in module.resources_of("aws_s3_bucket"):
            sse = _first_attached(module, "aws_s3_bucket_server_side_encryption_configuration", bucket)
            if sse is None:
                bad.append(f"{bucket.where()}: no server-side encryption configuration")
            else:
                algo = first(sse.body, "rule", "apply_server_side_encryption_by_default", "sse_algorithm")
                if algo not in ("aws:kms", "aws:kms:dsse", "AES256"):
                    bad.append(f"{bucket.where()}: server-side encryption algorithm {algo!r}")
                if algo in ("aws:kms", "aws:kms:dsse") and not first(sse.body, "rule", "apply_server_side_encryption_by_default", "kms_master_key_id"):
                    bad.append(f"{bucket.where()}: SSE-KMS without a customer-managed key")
            pab = _first_attached(module, "aws_s3_bucket_public_access_block", bucket)
            if pab is None or not all(pab.body.get(k) is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")):
                bad.append(f"{bucket.where()}: public access not fully blocked")
            policies = _attached(module, "aws_s3_bucket_policy", bucket)
            if not any(_denies_plain_http(module, p.body.get("policy"), bucket) for p in policies):
                bad.append(f"{bucket.where()}: no bucket policy denying requests without TLS (aws:SecureTransport = false)")
    return bad


def audit_bucket_compliance(tree: Tree) -> list[str]:
    """The audit module's buckets are locked in COMPLIANCE mode (nobody, root included, can
    shorten retention or delete a version), versioned and replicated to the other region."""
    bad = []
    audits = _modules(tree, "audit")
    if not audits:
        return ["no modules/audit"]
    for rel, module in audits:
        locked = [b for b in module.resources_of("aws_s3_bucket") if b.body.get("object_lock_enabled") is True]
        if not locked:
            bad.append(f"{rel}: no bucket with object_lock_enabled = true")
        for bucket in locked:
            lock = _first_attached(module, "aws_s3_bucket_object_lock_configuration", bucket)
            mode = first(lock.body, "rule", "default_retention", "mode") if lock else None
            if mode != "COMPLIANCE":
                bad.append(f"{bucket.where()}: object lock default retention mode is {mode!r}, not COMPLIANCE")
            versioning = _first_attached(module, "aws_s3_bucket_versioning", bucket)
            if versioning is None or first(versioning.body, "versioning_configuration", "status") != "Enabled":
                bad.append(f"{bucket.where()}: versioning not Enabled")
        if not module.resources_of("aws_s3_bucket_replication_configuration"):
            bad.append(f"{rel}: the audit bucket is not replicated to another region")
    return bad


def _requirement(pool: dict[str, Any], key: str) -> list[str] | None:
    for req in first(pool, "spec", "template", "spec", "requirements") or []:
        if isinstance(req, dict) and req.get("key") == key:
            if req.get("operator") != "In":
                return None
            return [str(v) for v in req.get("values", [])]
    return None


def _taints(pool: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in first(pool, "spec", "template", "spec", "taints") or [] if isinstance(t, dict)]


def spot_never_holds_baseline(tree: Tree) -> list[str]:
    """The HA baseline runs on on-demand capacity only: the system node group is on-demand,
    the Karpenter pool labelled ``fudo.io/pool = baseline`` admits only on-demand, and every
    pool that admits spot is tainted ``fudo.io/capacity=spot:NoSchedule`` so that only the
    burst workload, which tolerates the taint, can land on it."""
    bad = []
    clusters = _modules(tree, "cluster")
    if not clusters:
        return ["no modules/cluster"]
    for rel, module in clusters:
        for group in module.resources_of("aws_eks_node_group"):
            if group.body.get("capacity_type") != "ON_DEMAND":
                bad.append(f"{group.where()}: capacity_type {group.body.get('capacity_type')!r}, must be ON_DEMAND")
        pools = module.locals.get("node_pools")
        if not isinstance(pools, dict) or not pools:
            bad.append(f"{rel}: locals.node_pools (the Karpenter NodePools as literals) is missing")
            continue
        baseline = [n for n, p in pools.items() if (first(p, "spec", "template", "metadata", "labels") or {}).get("fudo.io/pool") == "baseline"]
        if len(baseline) != 1:
            bad.append(f"{rel}: {len(baseline)} node pools labelled fudo.io/pool=baseline, want 1")
        for name, pool in pools.items():
            capacity = _requirement(pool, "karpenter.sh/capacity-type")
            if capacity is None:
                bad.append(f"{rel}: node pool {name} does not say which capacity types it admits")
                continue
            if name in baseline and capacity != ["on-demand"]:
                bad.append(f"{rel}: baseline node pool {name} admits {capacity}; the HA baseline must be on-demand only")
            if "spot" in capacity and not any(
                t.get("key") == "fudo.io/capacity" and t.get("value") == "spot" and t.get("effect") == "NoSchedule" for t in _taints(pool)
            ):
                bad.append(f"{rel}: node pool {name} admits spot but lacks the taint fudo.io/capacity=spot:NoSchedule")
            budgets = first(pool, "spec", "disruption", "budgets") or []
            if not any(isinstance(b, dict) and str(b.get("nodes")) == "0" and b.get("schedule") for b in budgets):
                bad.append(f"{rel}: node pool {name} has no budget blocking disruption during market hours")
    return bad


def _port_range(body: dict[str, Any]) -> tuple[Any, Any]:
    return body.get("from_port"), body.get("to_port")


def _opens_non_public_port(from_port: Any, to_port: Any, protocol: Any) -> bool:
    if str(protocol) in ("-1", "all"):
        return True
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        return True  # a port the check cannot read counts as open
    return not (low == high and low in PUBLIC_PORTS)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _cidr_is_open(module: Module, value: Any) -> bool:
    values = _as_list(value)
    for v in values:
        if v is None:
            continue
        if str(v) in OPEN_CIDRS:
            return True
        m = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", str(v))
        if m:
            var = module.variables.get(m.group(1), {})
            guarded = any("0.0.0.0/0" in str(v.get("condition", "")) for v in blocks(var, "validation"))
            if not guarded:
                return True
    return False


def no_world_open_ports(tree: Tree) -> list[str]:
    """No security group lets 0.0.0.0/0 or ::/0 in on any port but 443; a CIDR taken from a
    variable counts as open unless the variable's validation rejects 0.0.0.0/0."""
    bad = []
    for rel, module in tree.items():
        for sg in module.resources_of("aws_security_group"):
            for rule in blocks(sg.body, "ingress"):
                cidrs = _as_list(rule.get("cidr_blocks")) + _as_list(rule.get("ipv6_cidr_blocks"))
                if _cidr_is_open(module, cidrs) and _opens_non_public_port(*_port_range(rule), rule.get("protocol")):
                    bad.append(f"{sg.where()}: ingress from anywhere on ports {_port_range(rule)}")
        for rule in module.resources_of("aws_vpc_security_group_ingress_rule"):
            if _cidr_is_open(module, [rule.body.get("cidr_ipv4"), rule.body.get("cidr_ipv6")]) and _opens_non_public_port(
                *_port_range(rule.body), rule.body.get("ip_protocol")
            ):
                bad.append(f"{rule.where()}: ingress from anywhere on ports {_port_range(rule.body)}")
        for rule in module.resources_of("aws_security_group_rule"):
            if rule.body.get("type") != "ingress":
                continue
            cidrs = _as_list(rule.body.get("cidr_blocks")) + _as_list(rule.body.get("ipv6_cidr_blocks"))
            if _cidr_is_open(module, cidrs) and _opens_non_public_port(*_port_range(rule.body), rule.body.get("protocol")):
                bad.append(f"{rule.where()}: ingress from anywhere on ports {_port_range(rule.body)}")
    return bad


ALL_CHECKS = [
    variables_typed_and_described,
    modules_well_formed,
    three_azs,
    redis_ha_and_encrypted,
    buckets_encrypted_and_tls_only,
    audit_bucket_compliance,
    spot_never_holds_baseline,
    no_world_open_ports,
]
