"""What fudo's Kubernetes manifests must always say, as checks over the parsed YAML.

kubernetes-validate proves each object is well formed against the API schemas; these checks
prove the objects say what the availability design needs: the HA baseline on on-demand nodes
across zones, gRPC health probes, a drain before termination, a disruption budget for every
workload, scaling on fudo's own metrics with a pre-warm before the market opens, and a
default-deny network policy. Each returns its violations as sentences.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

GRPC_PORT = 8001
#: 09:00 JST, the Tokyo Stock Exchange's morning session.
MARKET_OPEN_MIN_JST = 9 * 60

Objects = list[dict[str, Any]]


def load_manifests(folder: Path) -> Objects:
    """Every object in every .yaml file of ``folder`` but kustomization.yaml, each tagged with
    its file."""
    objects = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                doc["__file__"] = path.name
                objects.append(doc)
    return objects


def _of_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('__file__')}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _workloads(objects: Objects) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in ("StatefulSet", "Deployment")]


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def _fudo_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(workload).get("containers", [])
    return next((c for c in containers if c.get("name") == "fudo"), containers[0] if containers else {})


def _tolerates_spot(pod: dict[str, Any]) -> bool:
    return any(t.get("key") == "fudo.io/capacity" or (t.get("operator") == "Exists" and not t.get("key")) for t in pod.get("tolerations", []) or [])


def baseline_on_demand_across_zones(objects: Objects) -> list[str]:
    """The StatefulSet ``fudo`` is the HA baseline: at least 3 replicas, spread over zones with
    DoNotSchedule, pinned to on-demand baseline nodes and not tolerating the spot taint."""
    bad = []
    baseline = [s for s in _of_kind(objects, "StatefulSet") if s.get("metadata", {}).get("name") == "fudo"]
    if len(baseline) != 1:
        return [f"want one StatefulSet fudo (the HA baseline), found {len(baseline)}"]
    sts = baseline[0]
    pod = _pod_spec(sts)
    if int(sts.get("spec", {}).get("replicas", 1)) < 3:
        bad.append(f"{_name(sts)}: fewer than 3 replicas cannot cover 3 zones")
    selector = pod.get("nodeSelector", {}) or {}
    if selector.get("karpenter.sh/capacity-type") != "on-demand":
        bad.append(f"{_name(sts)}: nodeSelector does not pin karpenter.sh/capacity-type=on-demand")
    if _tolerates_spot(pod):
        bad.append(f"{_name(sts)}: the baseline tolerates the spot taint fudo.io/capacity")
    spreads = pod.get("topologySpreadConstraints", []) or []
    if not any(
        s.get("topologyKey") == "topology.kubernetes.io/zone" and s.get("maxSkew") == 1 and s.get("whenUnsatisfiable") == "DoNotSchedule"
        for s in spreads
    ):
        bad.append(f"{_name(sts)}: no zone topology spread (maxSkew 1, DoNotSchedule)")
    return bad


def grpc_probes_and_drain(objects: Objects) -> list[str]:
    """Every fudo workload: startup, readiness and liveness probes on grpc.health.v1 at the
    gRPC port, a preStop hook that drains, a grace period longer than the drain, and a
    PriorityClass that exists."""
    bad = []
    classes = {p.get("metadata", {}).get("name") for p in _of_kind(objects, "PriorityClass")}
    workloads = _workloads(objects)
    if not workloads:
        return ["no fudo workloads"]
    for w in workloads:
        container = _fudo_container(w)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = (container.get(probe) or {}).get("grpc") or {}
            if grpc.get("port") != GRPC_PORT:
                bad.append(f"{_name(w)}: {probe} is not a gRPC health probe on port {GRPC_PORT}")
        pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command", [])
        if "drain" not in " ".join(map(str, pre_stop)):
            bad.append(f"{_name(w)}: no preStop hook that drains the node")
        sleeps = [int(s) for s in re.findall(r"sleep\s+(\d+)", " ".join(map(str, pre_stop)))]
        grace = int(_pod_spec(w).get("terminationGracePeriodSeconds", 30))
        if sleeps and grace <= sum(sleeps):
            bad.append(f"{_name(w)}: terminationGracePeriodSeconds {grace} does not outlast the preStop drain ({sum(sleeps)} s)")
        if _pod_spec(w).get("priorityClassName") not in classes:
            bad.append(f"{_name(w)}: priorityClassName {_pod_spec(w).get('priorityClassName')!r} is not defined here")
    return bad


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    match = (selector or {}).get("matchLabels", {}) or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def every_workload_has_a_pdb(objects: Objects) -> list[str]:
    """A PodDisruptionBudget covers every workload, so a node drain never takes too many."""
    bad = []
    pdbs = _of_kind(objects, "PodDisruptionBudget")
    for w in _workloads(objects):
        labels = w.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}
        if not any(_selects(p.get("spec", {}).get("selector"), labels) for p in pdbs):
            bad.append(f"{_name(w)}: no PodDisruptionBudget selects its pods")
    return bad


def _cron_start_minutes(start: str) -> int | None:
    fields = start.split()
    if len(fields) != 5 or not fields[0].isdigit() or not fields[1].isdigit():
        return None
    return int(fields[1]) * 60 + int(fields[0])


def scaling_on_fudo_metrics_with_prewarm(objects: Objects, metric_names: set[str]) -> list[str]:
    """The burst workload is scaled by KEDA on metrics fudo really exports, and a cron trigger
    in Asia/Tokyo raises it before 09:00 JST on weekdays. Only the burst workload may tolerate
    spot nodes."""
    bad = []
    scaled = _of_kind(objects, "ScaledObject")
    if not scaled:
        return ["no KEDA ScaledObject"]
    deployments = {d.get("metadata", {}).get("name"): d for d in _of_kind(objects, "Deployment")}
    for so in scaled:
        target = so.get("spec", {}).get("scaleTargetRef", {}).get("name")
        if target not in deployments:
            bad.append(f"{_name(so)}: scales {target!r}, which is not a Deployment here")
        triggers = so.get("spec", {}).get("triggers", []) or []
        queries = [t.get("metadata", {}).get("query", "") for t in triggers if t.get("type") == "prometheus"]
        if not queries:
            bad.append(f"{_name(so)}: no prometheus trigger on fudo's metrics")
        for q in queries:
            used = set(re.findall(r"\bfudo_[a-z_]+", q))
            unknown = {m for m in used if re.sub(r"_(total|bucket|sum|count)$", "", m) not in metric_names}
            if not used or unknown:
                bad.append(f"{_name(so)}: query {q!r} uses metrics fudo does not export: {sorted(unknown) or 'none of fudo'}")
        crons = [t.get("metadata", {}) for t in triggers if t.get("type") == "cron"]
        prewarm = [
            c for c in crons
            if c.get("timezone") == "Asia/Tokyo"
            and (_cron_start_minutes(str(c.get("start", ""))) or 24 * 60) < MARKET_OPEN_MIN_JST
            and re.search(r"1-5|mon-fri", str(c.get("start", "")).lower())
        ]
        if not prewarm:
            bad.append(f"{_name(so)}: no weekday cron trigger in Asia/Tokyo that starts before 09:00")
    for w in _workloads(objects):
        if _tolerates_spot(_pod_spec(w)) and w.get("metadata", {}).get("name") not in {s.get("spec", {}).get("scaleTargetRef", {}).get("name") for s in scaled}:
            bad.append(f"{_name(w)}: tolerates spot but is not the scaled burst workload")
    return bad


def default_deny_network_policy(objects: Objects) -> list[str]:
    """A NetworkPolicy selecting every pod denies all ingress and egress by default."""
    for np in _of_kind(objects, "NetworkPolicy"):
        spec = np.get("spec", {})
        if spec.get("podSelector") in ({}, None) and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"} and not spec.get("ingress") and not spec.get("egress"):
            return []
    return ["no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)"]


def config_map_is_fudo_config(objects: Objects) -> list[str]:
    """The ConfigMap carries a TOML config that parses and serves gRPC on the probed port."""
    bad = []
    maps = [c for c in _of_kind(objects, "ConfigMap") if any(k.endswith(".toml") for k in (c.get("data") or {}))]
    if not maps:
        return ["no ConfigMap with a .toml fudo config"]
    for cm in maps:
        for key, text in cm["data"].items():
            if not key.endswith(".toml"):
                continue
            try:
                config = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                bad.append(f"{_name(cm)}: {key} is not valid TOML: {e}")
                continue
            addr = str(config.get("server", {}).get("grpc_addr", ""))
            if not addr.endswith(f":{GRPC_PORT}"):
                bad.append(f"{_name(cm)}: server.grpc_addr {addr!r} is not on port {GRPC_PORT}")
    return bad


def fudo_metric_names(metrics_rs: Path) -> set[str]:
    """The metric names fudo registers (``registry.register("x", ...)`` → ``fudo_x``)."""
    text = metrics_rs.read_text(encoding="utf-8")
    return {f"fudo_{m}" for m in re.findall(r'register\(\s*"([a-z_]+)"', text)}


def all_checks(objects: Objects, metric_names: set[str]) -> list[str]:
    return (
        baseline_on_demand_across_zones(objects)
        + grpc_probes_and_drain(objects)
        + every_workload_has_a_pdb(objects)
        + scaling_on_fudo_metrics_with_prewarm(objects, metric_names)
        + default_deny_network_policy(objects)
        + config_map_is_fudo_config(objects)
    )
