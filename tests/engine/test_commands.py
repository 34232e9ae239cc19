from __future__ import annotations

from fer_core.engine.commands import main


def test_cfg_job_prints_resolved_config(capsys):
    assert main(["--cfg", "job", "model=resnet_tiny_cpu", "trainer.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "name: resnet_tiny_cpu" in out and "epochs: 2" in out


def test_bad_override_exits_2_with_message(capsys):
    assert main(["--cfg", "job", "trainer.epoch=2"]) == 2
    assert "Did you mean 'trainer.epochs'" in capsys.readouterr().err
