"""The resource check before the wait (issue 19): a trial no node can run fails within seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_core.tune.resources import (
    Node,
    UnsatisfiableResourcesError,
    check_local,
    check_request,
    fitting_overrides,
    trial_request,
)

REPO = Path(__file__).resolve().parents[2]


def test_trial_request_drops_zeros_and_keeps_custom():
    assert trial_request(8, 0) == {"CPU": 8.0}
    assert trial_request(1, 0.5, {"node_b": 1}) == {"CPU": 1.0, "GPU": 0.5, "node_b": 1.0}


def test_eight_cpus_on_a_two_cpu_node_names_request_node_and_fix():
    with pytest.raises(UnsatisfiableResourcesError) as err:
        check_request({"CPU": 8.0}, [Node("node A", {"CPU": 2.0})], "the cluster")
    msg = str(err.value)
    assert "one trial asks for 8 CPUs (resources.cpu)" in msg
    assert "the largest, node A, has 2 CPUs" in msg
    assert msg.endswith("Overrides that fit: -o resources.cpu=2")


def test_gpus_a_node_lacks_offer_gpus_per_trial_and_cpu_only():
    nodes = [Node("a", {"CPU": 16.0}), Node("b", {"CPU": 4.0, "GPU": 1.0})]
    with pytest.raises(UnsatisfiableResourcesError) as err:
        check_request({"CPU": 2.0, "GPU": 2.0}, nodes, "c")
    msg = str(err.value)
    assert "the largest, b, has 4 CPUs, 1 GPU" in msg  # the node covering most of the request
    assert fitting_overrides({"CPU": 2.0, "GPU": 2.0}, nodes) == [
        "--gpus-per-trial 1",
        "--cpu-only",
    ]
    # no GPU anywhere: only --cpu-only fits; a fractional GPU node offers the fraction
    assert fitting_overrides({"GPU": 1.0}, [Node("a", {"CPU": 2.0})]) == ["--cpu-only"]
    assert fitting_overrides({"GPU": 1.0}, [Node("a", {"GPU": 0.5})])[0] == "--gpus-per-trial 0.5"


def test_custom_resource_and_a_node_that_fits():
    nodes = [Node("head", {"CPU": 2.0}), Node("worker", {"CPU": 2.0, "node_b": 1.0})]
    check_request({"CPU": 1.0, "node_b": 1.0}, nodes, "c")  # the worker fits: no error
    with pytest.raises(UnsatisfiableResourcesError, match="custom resource 'node_b'") as err:
        check_request({"CPU": 1.0, "node_b": 2.0}, nodes, "c")
    assert "ask for at most 1 'node_b' per trial" in str(err.value)
    with pytest.raises(UnsatisfiableResourcesError) as err:
        check_request({"disk_x": 1.0}, nodes, "c")
    assert "start a node with --resources '{\"disk_x\": 1}'" in str(err.value)


def test_an_autoscaling_node_type_that_fits_is_enough():
    nodes = [Node("head", {"CPU": 2.0}), Node("node type 'gpu'", {"CPU": 8.0, "GPU": 1.0})]
    check_request({"CPU": 8.0, "GPU": 1.0}, nodes, "c", autoscaling=True)
    with pytest.raises(UnsatisfiableResourcesError, match="no node or node type of c"):
        check_request({"CPU": 16.0}, nodes, "c", autoscaling=True)


def test_local_check_counts_cpus_and_leaves_gpus_to_ray():
    check_local({"CPU": 2.0, "GPU": 1.0}, {"num_cpus": 2})  # GPUs: counted once Ray runs
    with pytest.raises(UnsatisfiableResourcesError) as err:
        check_local({"CPU": 3.0, "GPU": 1.0}, {"num_cpus": 2})
    msg = str(err.value)
    assert "8" not in msg and "3 CPUs, 1 GPU" in msg and "-o resources.cpu=2" in msg
    assert "--cpu-only" not in msg  # the GPU count is unknown before Ray, so not offered


def test_paper_profile_on_two_cpus_fails_within_seconds(tmp_path):
    """The issue's report: the 8-CPU paper profile with --cpu-only on a 2-CPU machine waited
    forever; now ``fer-study run`` fails before the trainer's imports and before Ray, naming the
    request, the node and the fix (the command as a user runs it, interpreter start included)."""
    cmd = [sys.executable, "-m", "fer_core.cli", "run", str(REPO / "studies" / "pll_threshold.yaml"),
           "--profile", "paper", "-o", f"data.root={tmp_path / 'no-data'}", "--cpu-only",
           "--num-cpus", "2", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    elapsed = time.time() - t0
    assert out.returncode == 1, out.stdout + out.stderr
    assert elapsed < 10, elapsed
    assert "--cpu-only: the study asks 1 GPU per trial (resources.gpu, profile paper)" in out.stdout
    assert "each trial runs on CPU with 0 GPUs and 8 CPUs" in out.stdout
    err = out.stderr
    assert "one trial asks for 8 CPUs (resources.cpu)" in err
    assert "this machine (2 CPUs), has 2 CPUs" in err
    assert "Overrides that fit: -o resources.cpu=2" in err
    assert not (tmp_path / "run").exists()  # nothing written, no Ray started


def test_the_runner_checks_too_before_ray(tmp_path):
    """run_study (the API, and the CLI once the study loaded) checks the same before Ray."""
    import ray

    from fer_core.tune.runner import run_study
    from fer_core.tune.spec import StudySpec
    from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN

    spec = StudySpec(name="big", space={"synthetic.x1": {"grid": [0.5]}}, cpu=3)
    with pytest.raises(UnsatisfiableResourcesError, match="-o resources.cpu=2"):
        run_study(spec, tmp_path, train_fn=SYNTHETIC_TRAIN_FN, ray_init_kwargs={"num_cpus": 2})
    assert not ray.is_initialized()


def test_gpu_hours_hand_values():
    """docs/cluster.md's cost table: one stage, and a study whose rows share a cached MAE stage."""
    from fer_core.tune.cost import stage_hours, study_hours

    # 100 epochs x 12,271 RAF-DB images / 390.86 ViT-B/16 images/s / 3600 s = 0.872080 h
    assert stage_hours(100, 12271, 1, "vit_base") == pytest.approx(0.872080, abs=1e-6)
    assert stage_hours(100, 12271, 2, "resnet18", fraction=0.25) == pytest.approx(
        0.061656, abs=1e-6
    )
    with pytest.raises(ValueError, match="no published throughput"):
        stage_hours(1, 1, 1, "resnet_tiny_cpu")
    # mimic_pretraining's paper profile on seeds 0 and 1: 2 rows x 2 seeds of 50 two-view epochs,
    # and the MAE stage of the mae_finetune row once per seed (the stage cache), not per trial
    r = study_hours(str(REPO / "studies" / "mimic_pretraining.yaml"), overrides=["seeds=[0,1]"])
    assert r["trials"] == 4 and r["cached_runs"] == 2
    assert r["gpu_h"] == pytest.approx(r["cached_h"] + 4 * stage_hours(50, 12271, 2, "vit_base"))
