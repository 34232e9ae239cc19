"""Optuna storage on a real PostgreSQL server (issue 19).

A module fixture runs Debian's ``postgresql`` package: ``initdb`` into a temp dir and ``pg_ctl
start`` on 127.0.0.1 at a free port (as an unprivileged user when the tests run as root: initdb
refuses root), stopped by its postmaster's pid at the end. Missing PostgreSQL skips with a
reason, except under ``CI=true`` where it fails (``.ci/run`` installs it).

The study drivers share one Ray instance started here (``--address``), as the kill-point sweep
does, so the test pays Ray's start-up once.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_resume import session_pids

from fer_core.tune import storage as storage_mod
from fer_core.tune.pauses import AT_ENV, DIR_ENV
from fer_core.tune.storage import MASK, StorageError, connect_url, mask_text, mask_url

PASSWORD = "s3cret-Pg!pw"  # URL-quoted in the URL (the '!' needs no quoting; the test checks both)
USER = "fer"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    return versions[-1] if versions else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> list[str]:
    """The command prefix that drops root (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        return [runuser, "-u", user, "--"] if runuser else ["su", user, "-s", "/bin/sh", "-c"]
    pytest.fail("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PgServer:
    def __init__(self, root: Path, port: int, pid: int) -> None:
        self.root, self.port, self.pid = root, port, pid

    def url(self, db: str, password: str | None = PASSWORD) -> str:
        from urllib.parse import quote

        auth = f"{USER}:{quote(password, safe='')}" if password is not None else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def createdb(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def pg():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is required under CI=true (apt-get install "
                        "-y postgresql; .ci/run does it)")  # fmt: skip
        pytest.skip(
            "PostgreSQL is not installed (initdb/pg_ctl; Debian: apt-get install postgresql)"
        )
    prefix = _as_user()
    # /tmp, not $TMPDIR: the unprivileged user must reach it
    root = Path(tempfile.mkdtemp(prefix="fer-pg-", dir="/tmp" if prefix else None))
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        user = prefix[2] if prefix[0].endswith("runuser") else prefix[1]
        uid = pwd.getpwnam(user).pw_uid
        os.chown(root, uid, -1)
        os.chown(pwfile, uid, -1)
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [*prefix, *args] if not prefix or prefix[0].endswith("runuser") else [
            *prefix, shlex.join(args)]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    out = run(initdb, "-D", str(root / "data"), "-U", USER, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=60")  # fmt: skip
    out = run(pg_ctl, "-D", str(root / "data"), "-l", str(root / "log"), "-o", opts, "-w", "start")
    assert out.returncode == 0, out.stdout[-2000:] + (root / "log").read_text()[-2000:]
    pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
    try:
        yield PgServer(root, port, pid)
    finally:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown, by the postmaster's pid
        deadline = time.time() + 30
        while Path(f"/proc/{pid}").exists() and time.time() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- masking (no server needed)


def test_mask_url_and_text_hand_values():
    url = "postgresql://fer:p%40ss-word@db.lab:5432/studies"
    assert mask_url(url) == "postgresql://fer:***@db.lab:5432/studies"
    assert mask_url("postgresql://fer@db.lab/studies") == "postgresql://fer@db.lab/studies"
    assert mask_url("sqlite:////tmp/x/optuna.db") == "sqlite:////tmp/x/optuna.db"
    # the decoded password in a server message is masked too
    assert mask_text("auth failed for p@ss-word at " + url, url) == (
        "auth failed for *** at postgresql://fer:***@db.lab:5432/studies"
    )
    # psycopg 3 is the driver; a masked password is dropped (libpq reads PGPASSWORD/~/.pgpass)
    assert connect_url("postgresql://fer:***@h/db") == "postgresql+psycopg://fer@h/db"
    assert connect_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert connect_url("sqlite:///x.db") == "sqlite:///x.db"


# ---------------------------------------------------------------- bad input


def test_wrong_password_unreachable_and_silent_servers_fail_fast(pg, tmp_path, monkeypatch, capsys):
    from fer_core.tune.runner import run_study
    from fer_core.tune.spec import StudySpec
    from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN

    spec = StudySpec(name="bad", space={"synthetic.x1": {"grid": [0.5]}})
    wrong = pg.url("postgres", password="not-the-Password")
    t0 = time.time()
    with pytest.raises(StorageError) as err:
        run_study(spec, tmp_path / "a", storage=wrong, train_fn=SYNTHETIC_TRAIN_FN)
    msg = str(err.value)
    assert time.time() - t0 < 30
    assert "password authentication failed" in msg  # the server's own message
    assert "not-the-Password" not in msg and f"fer:{MASK}@127.0.0.1:{pg.port}/postgres" in msg

    closed = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{_free_port()}/x"
    with pytest.raises(StorageError, match="check the URL's host, port") as err:
        run_study(spec, tmp_path / "b", storage=closed, train_fn=SYNTHETIC_TRAIN_FN)
    assert PASSWORD not in str(err.value) and "Connection refused" in str(err.value)

    # the command line prints the same message, masked, and exits 1
    from fer_core.tune import commands

    monkeypatch.setattr(commands, "load_spec", lambda *a: (None, spec))
    argv = ["x.yaml", "--run-dir", str(tmp_path / "c"), "--storage", wrong]
    assert commands.main([*argv, "--train-fn", SYNTHETIC_TRAIN_FN]) == 1
    out, err = capsys.readouterr()
    assert "password authentication failed" in err and "not-the-Password" not in out + err

    # a port that accepts TCP but never answers: the connect timeout, not a hang
    monkeypatch.setattr(storage_mod, "CONNECT_TIMEOUT_S", 2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        t0 = time.time()
        with pytest.raises(StorageError, match="timeout"):
            storage_mod.open_storage(f"postgresql://fer:x@127.0.0.1:{silent.getsockname()[1]}/x")
        assert time.time() - t0 < 30
    finally:
        silent.close()


# ---------------------------------------------------------------- studies on the server


SEARCH = dict(
    name="pgsearch", space={"synthetic.x1": {"uniform": [0.0, 1.0]},
                            "synthetic.x2": {"uniform": [0.0, 1.0]}},
    algorithm={"name": "random"}, num_samples=4, seeds=[0], max_concurrent=1,
    base_overrides=["trainer.epochs=2", "synthetic.epoch_s=0.05"],
)  # fmt: skip
GRID = dict(
    name="pggrid", space={"synthetic.x1": {"grid": [0.2, 0.5, 0.8]}}, seeds=[0],
    max_concurrent=1, base_overrides=["trainer.epochs=2", "synthetic.epoch_s=0.05"],
)  # fmt: skip
DRIVER = f"""
import sys
from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN
SPECS = {{"search": {SEARCH!r}, "grid": {GRID!r}}}
run_dir, which, storage, address, mode = sys.argv[1:6]
argv = ["fer-study", "run", which + ".yaml", "--storage", storage]
res = run_study(StudySpec(**SPECS[which]), run_dir, storage=storage, address=address,
                train_fn=SYNTHETIC_TRAIN_FN, resume=mode == "resume", argv=argv,
                progress_interval=1)
sys.exit(130 if res.interrupted else 0)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=200 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "OMP_NUM_THREADS": "1"}})  # fmt: skip
    script = tmp_path_factory.mktemp("pgdriver") / "driver.py"
    script.write_text(DRIVER)
    yield ray.get_runtime_context().gcs_address, script
    ray.shutdown()


def _driver(cluster, run_dir, which, url, mode="new", env=None):
    address, script = cluster
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), which, url, address, mode],
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _kill_group(proc) -> None:
    for pid in session_pids(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def _no_password_under(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data, f"the password is in {path}"


@pytest.mark.slow
def test_killed_resumed_beside_another_study_dashboard_and_report(
    pg, cluster, tmp_path, monkeypatch, capsys
):
    pg.createdb("studies")
    url = pg.url("studies")
    run_a, run_b = tmp_path / "pgsearch-synth", tmp_path / "pggrid-synth"
    marks = tmp_path / "marks"

    # 1. a search study, SIGKILLed right after its first configuration was told to Optuna
    proc = _driver(cluster, run_a, "search", url, env={AT_ENV: "told:0", DIR_ENV: str(marks)})
    deadline = time.time() + 120
    while not (marks / "told:0").is_file():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "the study never told its first configuration"
        time.sleep(0.2)
    _kill_group(proc)
    first_out = proc.stdout.read()
    study = optuna.load_study(study_name="pgsearch-synth", storage=connect_url(url))
    assert [t.state for t in study.trials][0] == TrialState.COMPLETE
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) < 4

    # 2. resumed from the same database while a second, different study runs into it
    resumed = _driver(cluster, run_a, "search", url, mode="resume")
    other = _driver(cluster, run_b, "grid", url)
    outs = []
    for p in (resumed, other):
        out, _ = p.communicate(timeout=240)
        outs.append(out)
        assert p.returncode == 0, out[-3000:]
    console = first_out + "".join(outs)
    assert f"storage postgresql://{USER}:{MASK}@127.0.0.1:{pg.port}/studies" in console
    assert PASSWORD not in console

    summaries = optuna.get_all_study_summaries(storage=connect_url(url))
    assert sorted(s.study_name for s in summaries) == ["pggrid-synth", "pgsearch-synth"]
    for name, n, run_dir in (("pgsearch-synth", 4, run_a), ("pggrid-synth", 3, run_b)):
        loaded = optuna.load_study(study_name=name, storage=connect_url(url))
        assert f"{USER}:{MASK}@" in loaded.user_attrs["command"]  # optuna-dashboard shows it
        assert PASSWORD not in json.dumps(loaded.user_attrs)
        trials = loaded.trials
        assert [t.number for t in trials] == list(range(n))  # 0 lost, 0 duplicated
        assert all(t.state == TrialState.COMPLETE for t in trials)
        rows = _rows(run_dir)
        assert sorted(int(r["config_id"]) for r in rows) == list(range(n))
        assert all(r["status"] == "TERMINATED" for r in rows)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["storage"] == f"postgresql://{USER}:{MASK}@127.0.0.1:{pg.port}/studies"
        assert f"postgresql://{USER}:{MASK}@" in " ".join(manifest["command"])

    # 3. the dashboard serves both studies from the server (password masked on its console)
    port = _free_port()
    dash = subprocess.Popen(
        [sys.executable, "-m", "fer_core.cli", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(dash.stdout), daemon=True).start()
    try:
        deadline, body = time.time() + 60, None
        while body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                assert dash.poll() is None and time.time() < deadline, "".join(lines)[-2000:]
                time.sleep(0.3)
        names = sorted(s["study_name"] for s in body["study_summaries"])
        assert names == ["pggrid-synth", "pgsearch-synth"]
    finally:
        _kill_group(dash)
    assert any(f"{USER}:{MASK}@127.0.0.1" in line for line in lines), lines
    assert PASSWORD not in "".join(lines)

    # 4. the report reads the search study's Optuna trials from the server; the manifest's
    # masked URL connects with the password from PGPASSWORD (libpq)
    from fer_core.report import commands as report_commands

    out_dir = tmp_path / "report"
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    rc = report_commands.main([str(run_a), "--out", str(out_dir), "--format", "md,csv"])
    printed = capsys.readouterr()
    assert rc == 0, printed.out[-2000:] + printed.err[-2000:]
    md = "\n".join(p.read_text() for p in out_dir.rglob("*.md"))
    assert "not readable" not in md, md[-3000:]
    assert any("history" in p.name for p in out_dir.rglob("*.png")), sorted(out_dir.rglob("*"))
    assert PASSWORD not in printed.out + printed.err

    # 5. the password is in no file of either run directory or the report
    for folder in (run_a, run_b, out_dir):
        _no_password_under(folder)
