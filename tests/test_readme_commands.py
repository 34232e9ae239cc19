"""Every command the README shows is run here, at a reduced size (issue 27).

``readme_commands()`` reads them from the README itself: the lines of its ```` ```bash ````
blocks and the commands quoted inline (`` `fer-study train ...` ``, `` `make ...` ``).
``test_the_readme_commands_are_the_ones_this_module_runs`` fails when the README gains a command
that ``_adapt`` does not know, so a new command comes with its test.

How each kind runs (one module, one tmp working directory with ``studies/`` linked in):

- ``fer-study ...`` in this process (``fer_core.cli.main`` with the README's argument list),
  trainings at a tiny size (``TINY``: 32 images, 1 epoch). ``runs/pll_threshold-synth`` (the
  demo's run, which the watch-and-report lines read) is stood in for by this module's run of
  ``studies/pll_tau.yaml``; ``fer-study run studies/pll_threshold.yaml`` is what ``make demo``
  runs (``tests/test_demo.py``).
- ``fer-study run`` lines: ``study_runs`` holds three reduced runs (one configuration, one seed)
  and every README run line must be contained in one of them, flag for flag: the README's own
  smaller run (with pll_tau's CE reference) and its ``--resume`` on this machine, and the cluster
  line against a local ``ray start --head`` (2 CPUs and one fake GPU, so the GPU machine's
  ``--gpus-per-trial 0.5`` schedules; the trainer sees no CUDA and trains on the CPU) with the
  paper profile on a SynthFER export in RAF-DB's layout (``fer-study data export``) for
  ``data.root=/data/RAF-DB``. Its ``s3://`` storage path becomes a ``file://`` one and its
  PostgreSQL URL a SQLite one (``tests/tune/test_postgres.py`` runs studies on a real
  PostgreSQL server).
- ``fer-study dashboard`` and ``tensorboard``: started as servers on 127.0.0.1, probed over HTTP
  and stopped by their process group's id.
- ``make TARGET``: ``make -n`` prints the recipe without running it (``make demo`` runs for real
  in ``tests/test_demo.py``, ``make test`` is this suite; ``make bench`` and ``make reports`` take
  minutes to hours: their modules have their own tests).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fer_core import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
sys.path.insert(0, str(REPO / "tests" / "report"))
sys.path.insert(0, str(REPO / "tests" / "tune"))

TINY = ["trainer.epochs=1", "data.n_train=32", "data.n_val=16", "data.n_test=16",
        "trainer.batch_size=16", "trainer.progress=false"]  # fmt: skip
# a study run at a reduced size: one configuration (pll_tau's report.baseline point), one seed
ONE = ["-o", "space={method.uniform.tau: {grid: [0.001]}}", "-o", "seeds=[0]"]
SMALL = [x for o in ("data.n_train=32", "data.n_val=16", "data.n_test=16", "trainer.batch_size=16")
         for x in ("-o", o)]  # fmt: skip
# the paper profile on a 2-CPU node with a SynthFER export: the CPU model at the export's size
SMALL_PAPER = [x for o in ("trainer.epochs=1", "trainer.batch_size=16", "model=resnet_tiny_cpu",
               "data.img_size=48", "resources.cpu=1", "report.reference=null") for x in ("-o", o)]  # fmt: skip
EXPORT = ["--set", "n_train=40", "--set", "n_val=14", "--set", "n_test=14"]
SHELL_ONLY = ("source .venv/bin/activate",)
DEMO_STUDY = "studies/pll_threshold.yaml"


def readme_commands(text: str | None = None) -> list[str]:
    """The README's commands, in order: each ```` ```bash ```` line (continuations joined,
    comments dropped) and each inline-quoted command (``{a,b}`` expanded into one per value)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if line and not line.startswith("#"):
                out.append(" ".join(line.split()))
    for span in re.findall(r"`((?:fer-study|make|tensorboard|pip|source) [^`]*)`", text):
        span = " ".join(span.split())
        if span in ("fer-study run", "fer-study report"):
            continue  # the command's name in a sentence, not a command line
        out.extend(_expand(span))
    return list(dict.fromkeys(out))


def _expand(cmd: str) -> list[str]:
    """``key={a,b}`` -> one command per value (the README's shorthand for a sweep)."""
    parts = [p.split(",") if (m := re.fullmatch(r"(.*=)\{(.*)\}", p)) is None else
             [m.group(1) + v for v in m.group(2).split(",")] for p in cmd.split(" ")]  # fmt: skip
    return [" ".join(c) for c in itertools.product(*parts)]


# ------------------------------------------------------------------ how each command is run


def _adapt(cmd: str, tmp: Path) -> tuple[str, list[str]]:
    """``(kind, argv)``: how this module runs the README's ``cmd`` (kinds: ``cli``, ``run``,
    ``make``, ``server``, ``install``, ``demo``); raises ``KeyError`` for a command it does not know."""
    argv = shlex.split(cmd)
    swap = {"/data/RAF-DB": str(tmp / "synth-raf"), "/path": str(tmp / "synth-raf"),
            "NAME": "rafdb", "DIR": str(tmp / "synth-raf")}  # fmt: skip
    raf = str(tmp / "synth-raf")
    argv = [swap.get(a, a.replace("=/data/RAF-DB", f"={raf}").replace("=/path", f"={raf}"))
            for a in argv]  # fmt: skip
    if cmd in SHELL_ONLY or argv[:2] == ["pip", "install"]:
        return "install", argv
    if argv[0] == "make":
        return "make", argv
    if argv[0] == "tensorboard" or argv[:2] == ["fer-study", "dashboard"]:
        return "server", argv
    if argv[0] != "fer-study":
        raise KeyError(cmd)
    argv = argv[1:]
    if argv == ["COMMAND", "--help"]:
        return "cli", ["help-all"]
    if argv[0] == "train":  # a real dataset's export has its own size: no data.n_* then
        real = any(a.startswith("data=") and a != "data=synthfer" for a in argv)
        return "cli", [*argv, *(a for a in TINY if not (real and a.startswith("data.n_")))]
    if argv[0] == "validate":  # every file: tests/study/test_study_files.py; here two of them
        return "cli", ["validate", "studies/pll_tau.yaml", "studies/pll_threshold.yaml"]
    if argv[0] == "run" and "--dry-run" not in argv:
        if argv[1:] == [DEMO_STUDY]:
            return "demo", argv  # what make demo runs: tests/test_demo.py runs it
        argv = [a.replace("s3://bucket/runs", f"file://{tmp}/bucket/runs") for a in argv]
        argv = [f"sqlite:///{tmp}/fer_studies.db" if a.startswith("postgresql://") else a
                for a in argv]  # fmt: skip
        return "run", [str(tmp / a.lstrip("/")) if a.startswith("/shared/") else a for a in argv]
    return "cli", argv


def _cli(argv: list[str]) -> int:
    if argv == ["help-all"]:
        return max(_cli([name, "--help"]) for name in cli.COMMANDS)
    try:
        return int(cli.main(argv) or 0)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)


def test_the_readme_commands_are_the_ones_this_module_runs(tmp_path):
    cmds = readme_commands()
    for cmd in cmds:
        _adapt(cmd, tmp_path)  # KeyError: a README command with no way to run it here
    heads = {" ".join(c.split()[:2]) for c in cmds}
    for expected in ("make demo", "make test", "fer-study train", "fer-study run",
                     "fer-study report", "fer-study dashboard", "tensorboard --logdir"):  # fmt: skip
        assert expected in heads, f"{expected!r} is no longer read from README.md"
    sample = "x\n```bash\nfer-study a \\\n  b   # note\n# only a comment\n```\n`make x` and `fer-study train k={p,q}`"
    assert readme_commands(sample) == ["fer-study a b", "make x", "fer-study train k=p",
                                       "fer-study train k=q"]  # fmt: skip
    assert _adapt("fer-study data check NAME --root DIR", tmp_path)[1][-1] == str(
        tmp_path / "synth-raf"
    )
    with pytest.raises(KeyError):
        _adapt("curl http://example.org", tmp_path)


def test_make_targets_and_installation_commands():
    """``make -n`` for each README ``make`` line: the target exists and its recipe is the one the
    README describes. ``pip install -e .[dev]`` is what every ``make`` target's install runs."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    expect = {"demo": "fer_core.demo", "test": "pytest -n", "lint": "ruff check",
              "format": "ruff format", "bench": "benchmarks.run", "reports": "report.curate",
              "clean": "rm -rf"}  # fmt: skip
    ran = 0
    for cmd in readme_commands():
        kind, argv = _adapt(cmd, REPO)
        if kind == "install":
            if argv[0] == "pip":
                assert "pip install --quiet -e '.[dev]'" in makefile
            else:
                assert (Path(sys.prefix) / "bin" / "activate").is_file() or sys.prefix == (
                    sys.base_prefix
                ), "the venv has no bin/activate"
            continue
        if kind == "demo":  # the demo's own study run; tests/test_demo.py runs the demo
            assert argv[1] in (REPO / "fer_core" / "demo.py").read_text(encoding="utf-8")
            assert (REPO / "tests" / "test_demo.py").is_file()
            continue
        if kind != "make":
            continue
        out = subprocess.run(["make", "-n", *argv[1:]], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, f"{cmd}: {out.stderr[-1000:]}"
        assert expect[argv[1]] in out.stdout, f"{cmd}: recipe is\n{out.stdout}"
        if "STUDY=pll_threshold" in argv:
            assert "--study pll_threshold" in out.stdout
        if "TEST_WORKERS=0" in argv:
            assert "-n 0" in out.stdout
        ran += 1
    assert ran >= 8


# ------------------------------------------------------------------ fer-study, in process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the environment of the commands run against the module's `ray start --head` (set by `workdir`).
# They run in a process of their own: Ray reads RAY_AUTH_MODE once per process, and a test process
# that had joined a token-less head would fail every later local Ray session of its xdist worker.
CLUSTER_ENV: dict[str, str] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The module's working directory (``studies/`` linked in, later a SynthFER RAF-DB export) and
    a ``ray start --head`` on 127.0.0.1 with one fake GPU (``CLUSTER_ENV``: its RAY_ADDRESS)."""
    from test_multinode import ENV as RAY_ENV
    from test_multinode import _ray_start, _stop_session

    tmp = tmp_path_factory.mktemp("readme")
    (tmp / "studies").symlink_to(REPO / "studies")
    (tmp / "search_spaces").symlink_to(REPO / "search_spaces")
    temp = Path(tempfile.mkdtemp(prefix="rd-", dir="/tmp"))  # Ray's socket paths: <= 107 bytes
    port = _free_port()
    head = _ray_start(
        ["--head", "--port", str(port), "--num-cpus", "2", "--num-gpus", "1",
         "--include-dashboard", "false"], temp / "head",
    )  # fmt: skip
    CLUSTER_ENV.update(RAY_ENV, RAY_ADDRESS=f"127.0.0.1:{port}")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        yield tmp
    finally:
        os.chdir(cwd)
        CLUSTER_ENV.clear()
        _stop_session(head)


def _on_the_cluster(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``fer-study ARGV`` in a process of its own with ``CLUSTER_ENV`` (``--address auto``)."""
    out = subprocess.run(
        [sys.executable, "-m", "fer_core.cli", *argv], cwd=cwd, env={**os.environ, **CLUSTER_ENV},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def _pairs(argv: list[str]) -> set[tuple[str, str | None]]:
    """A command line as (flag, value) pairs and (word, None) for the rest."""
    out, i = set(), 0
    while i < len(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else "-"
        if argv[i].startswith("-") and not nxt.startswith("-"):
            out.add((argv[i], nxt))
            i += 2
        else:
            out.add((argv[i], None))
            i += 1
    return out


def study_runs(lines: list[list[str]]) -> list[list[str]]:
    """The reduced study runs that together hold every README ``fer-study run`` line: on this
    machine, the README's own smaller run (kept at its two epochs, with pll_tau's CE reference)
    and its ``--resume``; on the local head, the cluster line (paper profile on the RAF-DB-layout
    export) with the GPU machine's ``--gpus-per-trial 0.5``, without the reference."""
    local = ["run", "studies/pll_tau.yaml", "-o", "seeds=[0]", "-o", "trainer.epochs=2", *ONE,
             *SMALL]  # fmt: skip
    cluster = next(a for a in lines if "--storage-path" in a)
    cluster = [*cluster, "--gpus-per-trial", "0.5", *ONE, *SMALL_PAPER]
    return [local, [*local, "--resume"], cluster]


@pytest.mark.slow
def test_every_readme_fer_study_command_runs(workdir, capsys):
    from report_fixtures import ABLATION_STUDY, ablation_rows, write_run

    cmds = [(c, *_adapt(c, workdir)) for c in readme_commands()]
    lines = [argv for _, kind, argv in cmds if kind == "run"]
    runs = study_runs(lines)
    for cmd, kind, argv in cmds:  # each README run line is held by one of the reduced runs
        if kind == "run":
            assert any(_pairs(argv) <= _pairs(r) for r in runs), f"README: {cmd} is not run"
    # the data export first (the check, the RAF-DB runs read it); reports after the runs
    assert _cli(["data", "export", "synthfer", "--layout", "rafdb", "--out",
                 str(workdir / "synth-raf"), *EXPORT]) == 0  # fmt: skip
    write_run(workdir / "runs", {**ABLATION_STUDY, "name": "pll_ablation"}, "synth", "synthfer",
              ablation_rows())  # fmt: skip
    todo = [argv for _, kind, argv in cmds if kind == "cli" and argv[0] != "report"]
    todo += runs + [argv for _, kind, argv in cmds if kind == "cli" and argv[0] == "report"]
    (workdir / "runs" / "pll_threshold-synth").symlink_to(workdir / "runs" / "pll_tau-synth")
    for argv in todo:
        if "--address" in argv:
            rc, text = _on_the_cluster(argv, workdir)
            assert rc == 0, f"ran: {argv}\n{text[-4000:]}"
            continue
        rc = _cli(argv)
        out = capsys.readouterr()
        assert rc == 0, f"ran: {argv}\n{out.out[-3000:]}\n{out.err[-3000:]}"
        if argv == ["--version"]:
            assert out.out.startswith("fer-study ")
        if "--resume" in argv:  # a finished run: nothing runs again
            assert out.out.count("are finished; nothing to run") == 2, out.out[-2000:]

    run_dirs = workdir / "runs"
    local, cluster = run_dirs / "pll_tau-synth", workdir / "shared" / "runs" / "pll_tau-paper"
    for run_dir in (local, local / "reference", cluster):
        rows = (run_dir / "trials.csv").read_text().splitlines()
        assert len(rows) == 2 and "TERMINATED" in rows[1], (run_dir, rows)
    assert "data=rafdb" in (cluster / "study.yaml").read_text() + json.dumps(
        json.loads((cluster / "manifest.json").read_text())
    )
    assert list((workdir / "bucket" / "runs").iterdir()), "nothing in --storage-path"
    assert (workdir / "fer_studies.db").is_file(), "--storage was not used"
    assert (local / "report" / "index.html").is_file()  # report runs/pll_threshold-synth
    assert list(Path(".").glob("**/pll_ablation*/**/report.md"))


# ------------------------------------------------------------------ servers


def _serve(argv: list[str], url_path: str, workdir: Path) -> str:
    """Start ``argv`` in a process group of its own with a free port on 127.0.0.1, wait for
    ``url_path`` to answer, stop the group by its id; return the answer's text."""
    port = _free_port()
    exe = {"tensorboard": [str(Path(sys.executable).with_name("tensorboard"))],
           "fer-study": [sys.executable, "-m", "fer_core.cli"]}[argv[0]]  # fmt: skip
    args = [*exe, *argv[1:], "--port", str(port)]
    proc = subprocess.Popen(args, cwd=workdir, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{url_path}", timeout=3) as r:
                    return r.read().decode()
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(
                        f"{' '.join(argv)}: no answer on 127.0.0.1:{port}{url_path}\n"
                        + proc.stdout.read().decode()[-2000:]
                    ) from None
                time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_the_readme_servers_answer_on_localhost(workdir):
    runs = workdir / "runs"
    if not (runs / "pll_threshold-synth").exists():  # this module's run stands in for the demo's
        pytest.skip("needs test_every_readme_fer_study_command_runs's run (run the module)")
    servers = [
        _adapt(c, workdir)[1] for c in readme_commands() if _adapt(c, workdir)[0] == "server"
    ]
    assert {a[0] for a in servers} == {"tensorboard", "fer-study"}
    for argv in servers:
        if argv[0] == "tensorboard":
            body = _serve(argv, "/data/runs", workdir)
            trials = sorted(p.name for p in (runs / "pll_tau-synth" / "trials").iterdir())
            assert trials and all(t in body for t in trials), body[:500]
        else:
            body = _serve(argv, "/api/studies", workdir)
            assert "pll_tau-synth" in body, body[:500]
