"""Multi-node and fault tolerance with real processes on 127.0.0.1: a head and a worker
started with `ray start` (own raylets, 1 CPU each, own temp dirs, token auth), `gender
tune --address` across both, a worker killed mid-run, and a SIGKILLed driver resumed."""

from __future__ import annotations

import contextlib
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
SPACE = "arch: vgg11\nwidth: 0.125\nhead: gap\nbatch_norm: true\nimage_size: 32\ncrop: 1.0\n"


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

    def _start(self, name: str, *args: str, cpus: int = 1) -> None:
        p = subprocess.run([RAY, "start", f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1",
                            f"--temp-dir={self.root / name}", "--disable-usage-stats", *args],
                           env=self.env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]

    def start_head(self, cpus: int = 1) -> None:
        self._start("head", "--head", f"--port={self.port}", "--include-dashboard=false",
                    "--dashboard-host=127.0.0.1", cpus=cpus)

    def start_worker(self, name: str = "worker") -> None:
        self._start(name, f"--address={self.address}")

    def processes(self, name: str | None = None) -> list[psutil.Process]:
        tag = str(self.root / name) if name else str(self.root)
        found = {}
        for p in psutil.process_iter(["cmdline"]):
            if tag in " ".join(p.info["cmdline"] or []):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        return list(found.values())

    def worker_node_id(self, name: str = "worker") -> str:
        for p in self.processes(name):
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


@contextlib.contextmanager
def _cluster(head_cpus: int):
    # Ray's unix socket paths must stay under 107 bytes: a short root, not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))
    c = Cluster(root)
    try:
        c.start_head(cpus=head_cpus)
        c.start_worker()
        yield c
    finally:
        c.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster():
    with _cluster(head_cpus=1) as c:
        yield c


@pytest.fixture
def gpu_less_head_cluster():
    """A head that runs no work (like cluster.yaml's CPU head, which holds no GPU):
    every trial and the retrain run on worker nodes."""
    with _cluster(head_cpus=0) as c:
        yield c


def tune_cmd(cluster, data, results, name, *extra, space_text: str = SPACE):
    space = results / "space.yaml"
    space.write_text(space_text)
    return [sys.executable, "-m", "gender_cli", "tune", "--address", cluster.address,
            "--data", str(data), "--results", str(results), "--name", name, "--space",
            str(space), "--cpus-per-trial", "1", "--seeds", "1", "--quiet", *extra]


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


def test_trials_use_both_nodes_and_survive_a_killed_worker_and_a_killed_driver(
        cluster, synth_data, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    exp = results / "multi"
    worker = cluster.worker_node_id()
    proc = subprocess.Popen(tune_cmd(cluster, synth_data, results, "multi", "--num-samples", "4",
                                     "--max-epochs", "4", "--grace-period", "4"),
                            env=cluster.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def worker_checkpointed() -> bool:
            for name, df in progress(exp).items():
                if "node_id" in df and (df["node_id"] == worker).any() and len(df) >= 2 \
                        and list((exp / name).glob("checkpoint_*")):
                    return True
            return False

        wait_for(worker_checkpointed, 240, "a checkpoint on the worker node", proc)
        on_worker = {n for n, df in progress(exp).items() if (df["node_id"] == worker).any()}
        rows = sum(len(df) for df in progress(exp).values())
        cluster.kill("worker")  # the node dies mid-run...
        wait_for(lambda: sum(len(df) for df in progress(exp).values()) > rows, 240,
                 "an epoch after the worker died", proc)
        time.sleep(2)  # let Tune snapshot its experiment state after that result
        proc.send_signal(signal.SIGKILL)  # ...and then the driver
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(exp / "optuna.journal")))
    before = optuna.load_study(study_name="multi", storage=storage).trials
    assert 0 < len(before) < 4 + 2

    cluster.start_worker("worker2")  # a replacement node joins before the resume
    p = subprocess.run([sys.executable, "-m", "gender_cli", "tune", "--resume", str(exp),
                        "--quiet"], env=cluster.env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 4
    assert set(trials["status"]) <= {"completed", "stopped early"}, trials["status"]
    nodes = set(",".join(trials["nodes"].dropna()).split(","))
    assert worker in nodes and len(nodes) >= 2  # trials ran on more than one node
    for name in on_worker:
        epochs = list(pd.read_csv(exp / name / "progress.csv")["epoch"])
        # Resumed from its checkpoints after both deaths: epoch 1 is never trained twice.
        assert epochs.count(1) == 1 and epochs[-1] == 4, (name, epochs)
    study = optuna.load_study(study_name="multi", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # The study went on from its journal: the trials proposed before the kill are still
    # there, numbered first, and no proposal was lost or duplicated into a fresh study.
    assert [t.number for t in study.trials[:len(before)]] == [t.number for t in before]
    assert [t.params for t in study.trials[:len(before)]] == [t.params for t in before]
    assert len(complete) == 4
    assert json.loads((exp / "experiment.json").read_text())["num_samples"] == 4
    assert (exp / "best" / "model.pt").is_file()


def _retrain_progress(exp: Path) -> pd.DataFrame:
    frames = [pd.read_csv(f) for f in exp.glob("retrain-*/trial_*/progress.csv")
              if f.stat().st_size]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_the_retrain_runs_on_a_worker_and_survives_a_lost_worker_and_a_lost_driver(
        gpu_less_head_cluster, synth_data, tmp_path):
    cluster = gpu_less_head_cluster
    results = tmp_path / "results"
    results.mkdir()
    exp = results / "rt"
    # One fixed configuration whose validation F1 still climbs at the cap, so the retrain
    # (to the peak epoch) lasts long enough to be interrupted twice.
    fixed = SPACE.replace("width: 0.125", "width: 0.25") + (
        "optimizer: adamw\nlr: 0.0005\nweight_decay: 0.0005\nbatch_size: 64\n"
        "dropout: 0.1\naugment: 0.0\n")
    p = subprocess.run(tune_cmd(cluster, synth_data, results, "rt", "--num-samples", "1",
                                "--max-epochs", "6", "--grace-period", "6", "--no-retrain",
                                space_text=fixed),
                       env=cluster.env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    until = int(pd.read_csv(exp / "trials.csv")["best_epoch"].iloc[0])
    assert until >= 4, until  # the premise of this test, not the behaviour under test

    first = cluster.worker_node_id()
    proc = subprocess.Popen([sys.executable, "-m", "gender_cli", "retrain", str(exp)],
                            env=cluster.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(_retrain_progress(exp)) >= 1, 240, "the retrain's first epoch",
                 proc)
        assert set(_retrain_progress(exp)["node_id"]) == {first}  # not on the head
        cluster.kill("worker")  # the node running the retrain dies...
        cluster.start_worker("worker2")  # ...and another takes its place
        second = cluster.worker_node_id("worker2")

        def resumed_on_second() -> bool:
            df = _retrain_progress(exp)
            return len(df) > 0 and bool(((df["node_id"] == second)
                                         & (df["resumed_at_epoch"] >= 1)).any())

        wait_for(resumed_on_second, 300, "the retrain resumed on the new worker", proc)
        if _retrain_progress(exp)["epoch"].max() >= until:
            pytest.fail("the retrain finished before the driver could be killed")
        time.sleep(1)  # let Tune save its experiment state after that result
        proc.send_signal(signal.SIGKILL)  # the driver dies mid-retrain
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = int(_retrain_progress(exp)["epoch"].max())

    p = subprocess.run([sys.executable, "-m", "gender_cli", "retrain", str(exp)],
                       env=cluster.env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    df = _retrain_progress(exp)
    last = df.iloc[-1]
    assert int(last["epoch"]) == until
    # Each restart continued from a checkpoint: never from epoch 1 again.
    assert int(last["resumed_at_epoch"]) >= done_before - 1 >= 1
    assert (df["epoch"] == 1).sum() == 1, list(df["epoch"])
    m = json.loads((exp / "best" / "metrics.json").read_text())
    assert m["retrain_epochs"] == until and m["epochs"] == until
    assert m["retrain_node"] == second
