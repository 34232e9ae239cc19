"""Can any node of the cluster ever run one trial? Checked before the wait, not after it.

Ray Tune waits forever for a trial whose request no node can meet (Ray only warns "No available
node types can fulfill resource request"). The runner checks one trial's request against the
largest node before any trial starts and fails within seconds with the request, the largest node
and the overrides that fit:

* locally (no ``--address``), before Ray starts: the node ``ray.init`` would create
  (``--num-cpus`` or ``os.cpu_count()``; GPUs are checked once Ray has counted them);
* on a cluster, right after connecting: every alive node (``ray.nodes()``), plus, when the cluster
  autoscales, every node type of its autoscaler config (a type that fits can still be launched).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

#: Ray's names of the built-in resources, and how a study names them.
BUILTIN = {"CPU": "resources.cpu", "GPU": "resources.gpu"}


class UnsatisfiableResourcesError(RuntimeError):
    """No node of the cluster (and no node type it can launch) can run one trial."""


@dataclass(frozen=True)
class Node:
    """A node's total resources (``CPU``, ``GPU``, custom ones) and how to name it."""

    name: str
    resources: dict[str, float]


def trial_request(
    cpu: float, gpu: float, custom: dict[str, float] | None = None
) -> dict[str, float]:
    """One trial's request in Ray's names (zero amounts dropped)."""
    req = {"CPU": float(cpu), "GPU": float(gpu), **{k: float(v) for k, v in (custom or {}).items()}}
    return {k: v for k, v in req.items() if v > 0}


def fits(request: dict[str, float], node: Node) -> bool:
    return all(node.resources.get(k, 0.0) + 1e-9 >= v for k, v in request.items())


def _fmt(x: float) -> str:
    return f"{x:g}"


def _describe(res: dict[str, float], keys: list[str]) -> str:
    shown = [k for k in keys if k in res or k == "CPU" or (k == "GPU" and "CPU" not in res)]

    def one(k: str) -> str:
        v = res.get(k, 0.0)
        return f"{_fmt(v)} {k}{'s' if k in BUILTIN and v != 1 else ''}"

    return ", ".join(one(k) for k in shown)


def largest(nodes: list[Node], request: dict[str, float]) -> Node:
    """The node that covers the most of the request (ties: the most CPUs)."""

    def score(n: Node) -> tuple[float, float, float]:
        covered = sum(min(1.0, n.resources.get(k, 0.0) / v) for k, v in request.items())
        return covered, n.resources.get("GPU", 0.0), n.resources.get("CPU", 0.0)

    return max(nodes, key=score)


def fitting_overrides(request: dict[str, float], nodes: list[Node]) -> list[str]:
    """Command-line changes after which a trial fits on some node, one per way out."""
    out: list[str] = []
    max_cpu = max(n.resources.get("CPU", 0.0) for n in nodes)
    max_gpu = max(n.resources.get("GPU", 0.0) for n in nodes)
    want_cpu, want_gpu = request.get("CPU", 0.0), request.get("GPU", 0.0)
    if want_cpu > max_cpu and max_cpu >= 1:
        out.append(f"-o resources.cpu={int(max_cpu)}")
    if want_gpu > max_gpu:
        if max_gpu > 0:
            out.append(f"--gpus-per-trial {_fmt(max_gpu if max_gpu < 1 else int(max_gpu))}")
        out.append("--cpu-only")
    for key, v in request.items():
        if key not in BUILTIN and v > max(n.resources.get(key, 0.0) for n in nodes):
            have = max(n.resources.get(key, 0.0) for n in nodes)
            out.append(
                f"start a node with --resources '{{\"{key}\": {_fmt(v)}}}'"
                if have == 0
                else f"ask for at most {_fmt(have)} '{key}' per trial"
            )
    return out


def check_request(
    request: dict[str, float],
    nodes: list[Node],
    where: str,
    autoscaling: bool = False,
    shown: dict[str, float] | None = None,
) -> None:
    """Raise :class:`UnsatisfiableResourcesError` when no node in ``nodes`` fits ``request``
    (``shown``: the whole request, named in the message, when only part of it is checked)."""
    if not request or any(fits(request, n) for n in nodes):
        return
    if not nodes:
        raise UnsatisfiableResourcesError(f"{where}: the Ray cluster has no alive node")
    fixes = fitting_overrides(request, nodes)
    keys = list(shown or request)
    request = shown or request
    big = largest(nodes, request)
    kind = "node or node type" if autoscaling else "node"
    lines = [
        f"one trial asks for {_describe(request, keys)} "
        f"({', '.join(BUILTIN.get(k, f'custom resource {k!r}') for k in keys)}), but no {kind} "
        f"of {where} has that: the largest, {big.name}, has {_describe(big.resources, keys)}; "
        "Ray would wait forever.",
    ]
    if fixes:
        lines.append("Overrides that fit: " + "; or ".join(fixes))
    raise UnsatisfiableResourcesError("\n".join(lines))


def local_node(ray_init_kwargs: dict[str, Any] | None) -> Node:
    """The node a local ``ray.init`` would start (before it starts; GPUs unknown, so omitted)."""
    kw = ray_init_kwargs or {}
    cpus = kw.get("num_cpus")
    res = {"CPU": float(cpus if cpus is not None else (os.cpu_count() or 1))}
    res.update({k: float(v) for k, v in (kw.get("resources") or {}).items()})
    if kw.get("num_gpus") is not None:
        res["GPU"] = float(kw["num_gpus"])
    return Node(f"this machine ({_fmt(res['CPU'])} CPUs)", res)


def check_local(request: dict[str, float], ray_init_kwargs: dict[str, Any] | None) -> None:
    """Before a local Ray starts: CPUs and custom resources (GPUs wait for Ray's own count)."""
    node = local_node(ray_init_kwargs)
    known = {k: v for k, v in request.items() if k != "GPU" or "GPU" in node.resources}
    if fits(known, node):
        return
    check_request(known, [node], "the local Ray instance (no --address)", shown=request)


def cluster_nodes() -> tuple[list[Node], bool]:
    """The connected cluster's alive nodes and, when it autoscales, its launchable node types
    (``autoscaling`` True then)."""
    import ray

    nodes = [
        Node(f"node {n['NodeManagerAddress']} ({n['NodeID'][:8]})", dict(n["Resources"]))
        for n in ray.nodes()
        if n.get("Alive")
    ]
    autoscaling = False
    try:  # Ray's autoscaler config in the GCS (absent on clusters started by hand)
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - a private API; without it only alive nodes count
        config = None
    if config is not None:
        for group in config.node_group_configs:
            if group.max_count != 0:
                autoscaling = True
                nodes.append(Node(f"node type {group.name!r}", dict(group.resources)))
    return nodes, autoscaling


def check_cluster(request: dict[str, float], address: str | None) -> None:
    """After ``ray.init``: the request against every node (and node type) of the cluster."""
    nodes, autoscaling = cluster_nodes()
    where = f"the Ray cluster at {address}" if address else "the local Ray instance"
    check_request(request, nodes, where, autoscaling)
