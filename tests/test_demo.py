"""``python -m fer_core.demo`` (what ``make demo`` runs) at a reduced size, and its re-run."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core.tune.dashboard import tensorboard_command

PROGRESS = re.compile(r"^\[ *\d+\.\ds\] trials ")
REPO = Path(__file__).resolve().parents[1]
SMALL = ["seeds=[0]", "trainer.epochs=1", "data.n_train=300", "data.n_val=100", "data.n_test=100"]


def _args(tmp_path: Path) -> list[str]:
    args = ["--runs-root", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports")]
    for ov in SMALL:
        args += ["-o", ov]
    return args


def _demo(tmp_path: Path) -> subprocess.CompletedProcess:
    args = _args(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "fer_core.demo", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
        start_new_session=True,
    )


@pytest.mark.slow
def test_demo_runs_the_threshold_study_and_reports_it(tmp_path: Path, monkeypatch, capsys):
    out = _demo(tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = tmp_path / "runs" / "pll_threshold-synth"
    with (run_dir / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    thresholds = sorted({float(r["param.method.revision.threshold"]) for r in rows})
    assert thresholds == [0.0, 0.1, 0.2, 0.3, 0.4, 0.9]  # [0, 0.5) where Eq. 4 acts, and "never"
    assert all(r["status"] == "TERMINATED" for r in rows)
    html = tmp_path / "reports" / "pll_threshold" / "index.html"
    assert html.is_file()
    page = html.read_text()
    assert "<img" in page or "<svg" in page  # the threshold curve is embedded
    assert "never" in page  # 0.9 is labelled: with |Y| = 2 nothing is revised there
    # report.reference: CE on plurality labels ran as its own run, and the report shows it
    assert (run_dir / "reference" / "trials.csv").is_file()
    assert "reference: CE, plurality labels" in page
    # the closing lines tell the user where everything is
    assert str(html.resolve()) in out.stdout
    assert f"fer-study dashboard {run_dir}" in out.stdout
    assert f"{tensorboard_command(run_dir)}\n" in out.stdout  # the same command as the report's
    assert tensorboard_command(run_dir) in page
    _check_console(out.stdout + out.stderr)
    _check_numbering(run_dir, rows, out.stdout)
    _check_tensorboard(run_dir, rows)
    # a second `make demo` keeps the finished trials and runs nothing again; its two fer-study
    # steps run in this process (the first run above ran them as subprocesses)
    from fer_core import cli, demo

    def in_process(*args: str) -> int:
        print("$ fer-study " + " ".join(args), flush=True)
        return cli.main(list(args))

    monkeypatch.setattr(demo, "_fer_study", in_process)
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    assert demo.main(_args(tmp_path)) == 0
    again = capsys.readouterr()
    assert "--resume" in again.out and "nothing to run" in again.out, again.out + again.err
    with (run_dir / "trials.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def _check_console(text: str) -> None:
    """At most 25 lines besides the progress lines, no escape codes off a terminal, none of
    Ray's own chatter (checkpoint lines, banners, the /tmp TensorBoard hint, num_samples=-1)."""
    lines = text.splitlines()
    progress = [ln for ln in lines if PROGRESS.match(ln)]
    other = [ln for ln in lines if not PROGRESS.match(ln)]
    assert len(other) <= 25, "\n".join(other)
    assert "\x1b" not in text
    for noise in ("Checkpoint successfully", "/tmp/ray", "9223372036854775807", "Traceback"):
        assert noise not in text, noise
    assert len(progress) == len(set(ln.split("] ", 1)[1] for ln in progress))  # only changes
    assert "(config 0, 1/1 seeds)" not in text  # a complete configuration needs no count


def _check_numbering(run_dir: Path, rows: list[dict], stdout: str) -> None:
    """One numbering: dry-run order = config_id = Optuna trial = directory = console."""
    import optuna

    from fer_core.study import load_study, plan_trials
    from fer_core.tune.results import trial_dirname

    plan = plan_trials(load_study(REPO / "studies" / "pll_threshold.yaml", "synth", SMALL))
    planned = {t.config_id: t.params for t in plan.configs()}
    study = optuna.load_study(
        study_name="pll_threshold-synth", storage=f"sqlite:///{run_dir / 'optuna.db'}"
    )
    assert study.metric_names == ["val/acc (mean of 1 seed)"]
    assert {"paper", "profile", "study_hash", "command"} <= set(study.user_attrs)
    for r in rows:
        cid, seed = int(r["config_id"]), int(r["seed"])
        value = float(r["param.method.revision.threshold"])
        assert planned[cid] == {"method.revision.threshold": value}
        assert int(r["optuna_trial"]) == cid
        t = study.trials[cid]
        assert t.number == cid and t.user_attrs["config_id"] == cid
        assert t.params == planned[cid]
        name = trial_dirname(cid, seed, planned[cid])
        assert r["trial_dir"] == f"trials/{name}" and (run_dir / "trials" / name).is_dir()
        assert name == f"c{cid:04d}_threshold-{value}_s{seed}"
        assert any(k.endswith(" per seed") for k in t.user_attrs) and "test/acc" in t.user_attrs
    study_out = stdout.split("report.reference", 1)[0]  # the reference run prints its own best
    best = re.findall(r"\(config (\d+)\)", study_out)[-1]
    metric = study.metric_names[0].split(" ")[0]
    done = [r for r in rows if r["status"] == "TERMINATED"]
    top = max(done, key=lambda r: float(r[f"best.{metric}"]))  # one seed: the row is the mean
    assert int(best) == int(top["config_id"])


def _check_tensorboard(run_dir: Path, rows: list[dict]) -> None:
    """TensorBoard over the run directory finds exactly one run per trial (no Ray copies), the
    report.reference run's trials included."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(run_dir))
    runs = sorted(mux.Runs())
    with (run_dir / "reference" / "trials.csv").open() as fh:
        ref = [f"reference/{r['trial_dir']}" for r in csv.DictReader(fh)]
    assert runs == sorted([r["trial_dir"] for r in rows] + ref), runs
    mux.Reload()
    for run in runs:
        assert mux.GetAccumulator(run).Tags()["scalars"], run


def test_demo_without_the_study_file_says_where_to_run_it(tmp_path: Path):
    from fer_core.demo import main

    assert main(["--studies", str(tmp_path / "nowhere")]) == 2
