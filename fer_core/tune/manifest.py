"""``manifest.json`` (provenance) and ``study.yaml`` (the resolved study) of a run directory.

The manifest records the study hash, git commit, package versions, hardware, data hash, storage
URL, Optuna study name and command line; ``--resume`` compares the stored resolved study with the
new one and refuses a changed study with the keys that differ.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from fer_core.tune.results import write_json_atomic
from fer_core.tune.spec import StudySpec

PACKAGES = ("fer-study", "torch", "torchvision", "timm", "ray", "optuna", "hydra-core", "numpy")


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict[str, Any]:
    """The machine a run ran on. ``cpu_capability`` is the SIMD level torch's CPU kernels
    dispatch to (e.g. AVX2, AVX512): float results, and so a CPU run's numbers, can differ
    between machines that differ in it."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "hostname": platform.node(),
    }
    try:
        import torch

        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - provenance must never stop a run
        info["cuda"] = None
    return info


def write_manifest(
    run_dir: Path,
    spec: StudySpec,
    storage_url: str,
    data_hash: str | None,
    argv: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json`` (kept history of starts under ``runs``)."""
    path = Path(run_dir) / "manifest.json"
    previous = _read_json(path)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest = {
        "study": spec.name,
        "profile": spec.profile,
        "study_hash": spec.hash(),
        "optuna_study": spec.study_name,
        "storage": storage_url,
        "git_commit": git_commit(),
        "versions": versions(),
        "hardware": hardware(),
        "data_hash": data_hash,
        "command": list(argv if argv is not None else sys.argv),
        "started": previous.get("started", now),
        "runs": previous.get("runs", []) + [{"at": now, "command": list(argv or sys.argv)}],
    }
    manifest.update(extra or {})
    write_json_atomic(path, manifest)
    return manifest


def write_study_yaml(run_dir: Path, spec: StudySpec) -> None:
    text = yaml.safe_dump(_yamlable(spec.plain()), sort_keys=False, allow_unicode=True)
    (Path(run_dir) / "study.yaml").write_text(text, encoding="utf-8")


def study_changes(run_dir: Path, spec: StudySpec) -> list[str]:
    """Keys whose value differs between the stored ``study.yaml`` and ``spec`` (empty: same)."""
    path = Path(run_dir) / "study.yaml"
    if not path.is_file():
        return []
    old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    new = yaml.safe_load(yaml.safe_dump(_yamlable(spec.plain()))) or {}
    return _diff("", old, new)


def _diff(prefix: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: added ({new[key]!r})")
            elif key not in new:
                out.append(f"{path}: removed (was {old[key]!r})")
            else:
                out += _diff(path, old[key], new[key])
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _yamlable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _yamlable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_yamlable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
