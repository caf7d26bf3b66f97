"""Multi-node and fault tolerance with real processes on 127.0.0.1: a head and a worker
started with `ray start` (own raylets, 1 CPU each, own temp dirs, token auth), `gender
tune --address` across both, a worker killed mid-run, and a SIGKILLed driver resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest

RAY = str(Path(sys.executable).with_name("ray"))
SPACE = "arch: vgg11\nwidth: 0.125\nhead: gap\nbatch_norm: true\nimage_size: 32\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A head and a worker raylet; every process is tracked and killed by pid."""

    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        home = root / "home"
        home.mkdir(parents=True)
        self.env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token",
                    "PYTHONWARNINGS": "ignore", "RAY_AIR_NEW_OUTPUT": "1"}
        subprocess.run([RAY, "get-auth-token", "--generate"], env=self.env, check=True,
                       capture_output=True, timeout=60)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        p = subprocess.run([RAY, "start", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                            f"--temp-dir={self.root / name}", "--disable-usage-stats", *args],
                           env=self.env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]

    def start_head(self) -> None:
        self._start("head", "--head", f"--port={self.port}", "--include-dashboard=false",
                    "--dashboard-host=127.0.0.1")

    def start_worker(self) -> None:
        self._start("worker", f"--address={self.address}")

    def processes(self, name: str | None = None) -> list[psutil.Process]:
        tag = str(self.root / name) if name else str(self.root)
        found = {}
        for p in psutil.process_iter(["cmdline"]):
            if tag in " ".join(p.info["cmdline"] or []):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        return list(found.values())

    def worker_node_id(self) -> str:
        for p in self.processes("worker"):
            for arg in p.cmdline():
                if arg.startswith("--node_id="):
                    return arg.split("=", 1)[1]
        raise AssertionError("worker raylet not found")

    def kill(self, name: str | None = None) -> None:
        procs = self.processes(name)
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=20)


@pytest.fixture
def cluster():
    # Ray's unix socket paths must stay under 107 bytes: a short root, not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))
    c = Cluster(root)
    try:
        c.start_head()
        c.start_worker()
        yield c
    finally:
        c.kill()
        shutil.rmtree(root, ignore_errors=True)


def tune_cmd(cluster, data, results, name, *extra):
    space = results / "space.yaml"
    space.write_text(SPACE)
    return [sys.executable, "-m", "gender_cli", "tune", "--address", cluster.address,
            "--data", str(data), "--results", str(results), "--name", name, "--space",
            str(space), "--cpus-per-trial", "1", "--quiet", *extra]


def wait_for(predicate, timeout: float, what: str, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"tune exited ({proc.returncode}) before {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def progress(exp: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for d in exp.glob("trial_*"):
        f = d / "progress.csv"
        if f.is_file() and f.stat().st_size:
            try:
                out[d.name] = pd.read_csv(f)
            except pd.errors.EmptyDataError:
                pass
    return out


def test_trials_use_both_nodes_and_survive_a_killed_worker(cluster, synth_data, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    exp = results / "multi"
    worker = cluster.worker_node_id()
    proc = subprocess.Popen(tune_cmd(cluster, synth_data, results, "multi", "--num-samples", "3",
                                     "--max-epochs", "6", "--grace-period", "6"),
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        def worker_checkpointed() -> bool:
            for name, df in progress(exp).items():
                if "node_id" in df and (df["node_id"] == worker).any() and len(df) >= 2 \
                        and list((exp / name).glob("checkpoint_*")):
                    return True
            return False

        wait_for(worker_checkpointed, 240, "a checkpoint on the worker node", proc)
        on_worker = {n for n, df in progress(exp).items() if (df["node_id"] == worker).any()}
        cluster.kill("worker")  # the node dies mid-run
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 3
    assert set(trials["status"]) <= {"completed", "stopped early"}, trials["status"]
    nodes = set(",".join(trials["nodes"].dropna()).split(","))
    assert worker in nodes and len(nodes) == 2  # trials ran on both nodes
    for name in on_worker:
        epochs = list(pd.read_csv(exp / name / "progress.csv")["epoch"])
        # Resumed from the checkpoint: epochs go on, epoch 1 is never trained twice.
        assert epochs == sorted(set(epochs)) and epochs[-1] == 6, (name, epochs)
    assert (exp / "best" / "model.pt").is_file()


def test_a_killed_driver_resumes_with_every_trial_and_the_optuna_history(cluster, synth_data,
                                                                         tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    exp = results / "resume"
    cmd = tune_cmd(cluster, synth_data, results, "resume", "--num-samples", "5",
                   "--max-epochs", "3", "--grace-period", "3", "--no-retrain")
    proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def one_trial_done() -> bool:
            return any(len(df) >= 3 for df in progress(exp).values())

        wait_for(one_trial_done, 240, "a finished trial", proc)
        time.sleep(2)  # let Tune snapshot its experiment state after that result
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(exp / "optuna.journal")))
    before = optuna.load_study(study_name="resume", storage=storage).trials
    assert 0 < len(before) < 5 + 2

    p = subprocess.run([sys.executable, "-m", "gender_cli", "tune", "--resume", str(exp),
                        "--quiet"], env=cluster.env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 5
    assert set(trials["status"]) <= {"completed", "stopped early"}
    study = optuna.load_study(study_name="resume", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # The study went on from its journal: the trials proposed before the kill are still
    # there, numbered first, and no proposal was lost or duplicated into a fresh study.
    assert [t.number for t in study.trials[:len(before)]] == [t.number for t in before]
    assert [t.params for t in study.trials[:len(before)]] == [t.params for t in before]
    assert len(complete) == 5
    settings = json.loads((exp / "experiment.json").read_text())
    assert settings["num_samples"] == 5
