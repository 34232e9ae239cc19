"""The run manifest's hardware block (fer_core/tune/manifest.py): what a CPU run's numbers
depend on besides the code, the CPU model and the SIMD level torch dispatches to."""

from __future__ import annotations

import platform

import torch

from fer_core.tune.manifest import cpu_model, hardware


def test_hardware_names_the_cpu_and_torch_s_simd_level():
    info = hardware()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert info["cpus"] >= 1 and info["cuda"] in (True, False)


def test_cpu_model_reads_cpuinfo_and_falls_back(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 3 GHz\n")
    assert cpu_model(info) == "Test CPU 9000 @ 3 GHz"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or "unknown")
