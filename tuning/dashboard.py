"""`gender dashboard results/<name>`: TensorBoard on an experiment, running or finished.

Ray's TBX logger writes each trial's scalars into `trial_<id>/events.out.tfevents.*` and,
once a trial ends, an HParams record there too: that trial's own parameters, its
last-epoch metrics and an "experiment" listing only *its* parameters. TensorBoard takes
the first experiment record it meets, in no fixed order, so the HParams view would show
one arbitrary trial's columns (no momentum if that trial used adam) and last-epoch,
not best, metrics.

`write_hparams` therefore adds one small event file to every trial folder, named to sort
before Ray's (TensorBoard reads a run's files in name order and keeps the first record
per tag, in both of its loaders), holding:

* the experiment: every parameter of the search space, domains widened to the values
  trials took, and the metrics below, identical in every trial, so whichever one
  TensorBoard picks lists everything;
* the trial's session: every hyperparameter that applied (conditional ones that did not,
  such as momentum for adam, are left out: a fake value would turn the column's type
  into text), its status (from trials.csv, else from Ray's `done` flag);
* its best-epoch metrics as scalars at step 0: `best/val_f1`, `best/val_accuracy`,
  `best/latency_ms_p50`, `best/epoch` and `epochs_run`.

So each trial is one row of the HParams table. Re-running replaces exactly these files
(TensorBoard must be restarted to see a change: it keeps the first record per tag);
nothing Ray wrote is changed.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from gender.errors import UserError
from gender.io import atomic_path, read_json
from tuning.outputs import outcome
from tuning.settings import SETTINGS_FILE

__all__ = ["write_hparams", "run_dashboard", "HPARAMS_FILE", "METRICS", "INSTALL_HINT"]

# "0000000000" where Ray puts a timestamp: sorts before every file Ray writes.
HPARAMS_FILE = "events.out.tfevents.0000000000.gender-hparams"
METRICS = ("best/val_f1", "best/val_accuracy", "best/latency_ms_p50", "best/epoch",
           "epochs_run")
INSTALL_HINT = ("TensorBoard is not installed: pip install 'gender-tune[dashboard]' "
                "(or .venv/bin/pip install -e '.[dashboard]')")
_STATUS = {"completed": "STATUS_SUCCESS", "stopped early": "STATUS_SUCCESS",
           "diverged": "STATUS_FAILURE", "errored": "STATUS_FAILURE"}


def _summary(tag: str, **plugin_data):
    """A Summary holding one hparams plugin record (experiment or session start/end)."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    content = HParamsPluginData(version=0, **plugin_data).SerializeToString()
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams",
                                                                  content=content))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def _hparam(value):
    """-> a JSON-typed value (bool, float or str) for the session, None to leave it out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def _experiment(space: dict, rows: list[dict]):
    """The experiment summary: every parameter of the space, its domain widened to the
    values trials actually took (enqueued configurations may lie outside the space, and
    TensorBoard hides sessions outside a discrete domain), and our metrics."""
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, MetricInfo, MetricName

    infos = []
    for name, spec in space.items():
        values = list(spec.get("choices", [spec.get("low"), spec.get("high")]))
        values += [r["params"][name] for r in rows if r["params"].get(name) not in (None, *values)]
        if all(isinstance(v, str) for v in values):
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_STRING"))
            info.domain_discrete.extend(values)
        elif all(isinstance(v, bool) for v in values):
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_BOOL"))
            info.domain_discrete.extend(values)
        else:
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_FLOAT64"))
            info.domain_interval.min_value = float(min(values))
            info.domain_interval.max_value = float(max(values))
        infos.append(info)
    metrics = [MetricInfo(name=MetricName(tag=m)) for m in METRICS]
    return Experiment(hparam_infos=infos, metric_infos=metrics)


def _trial_rows(exp: Path, max_epochs: int, searched: list[str]) -> list[dict]:
    """One dict per trial folder: its parameters, best-epoch metrics and status, read from
    what Ray wrote there (the run may still be going)."""
    rows = []
    for d in sorted(exp.glob("trial_*")):
        if not (d / "params.json").is_file():
            continue
        params = read_json(d / "params.json", "trial's parameters file")
        df = _progress(d / "progress.csv")
        # Ray marks a trial's last result `done` when it ends (also when ASHA stops it);
        # an errored trial leaves error.txt.
        done = len(df) > 0 and "done" in df and str(df["done"].iloc[-1]) == "True"
        o = outcome(df, max_epochs, errored=(d / "error.txt").is_file(), done=done)
        best = o.best if o.best is not None else {}
        metrics = {"best/val_f1": best.get("val_f1"), "best/val_accuracy": best.get("val_accuracy"),
                   "best/latency_ms_p50": best.get("latency_ms_p50"),
                   "best/epoch": o.best_epoch or None, "epochs_run": o.epochs}
        rows.append({"dir": d, "params": {k: params[k] for k in searched if k in params},
                     "metrics": metrics, "status": o.status})
    return rows


def _progress(path: Path) -> pd.DataFrame:
    """progress.csv, without the line Ray may be writing right now."""
    try:
        text = path.read_text()
        return pd.read_csv(io.StringIO(text[:text.rfind("\n") + 1]))
    except (OSError, ValueError):  # also unparseable or not UTF-8: no curve for it yet
        return pd.DataFrame()


def _session(row: dict) -> list:
    """The Summary protos of one trial: its session start, best metrics and session end."""
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import SessionEndInfo, SessionStartInfo
    from tensorboardX.summary import scalar

    start = SessionStartInfo(start_time_secs=time.time())
    for k, v in row["params"].items():
        v = _hparam(v)
        if isinstance(v, bool):
            start.hparams[k].bool_value = v
        elif isinstance(v, float):
            start.hparams[k].number_value = v
        elif v is not None:
            start.hparams[k].string_value = v
    status = Status.Value(_STATUS.get(row["status"], "STATUS_RUNNING"))
    return [_summary("_hparams_/session_start_info", session_start_info=start),
            *[scalar(tag, float(v)) for tag, v in row["metrics"].items()
              if v is not None and not pd.isna(v)],
            _summary("_hparams_/session_end_info", session_end_info=SessionEndInfo(status=status))]


def _write_events(path: Path, summaries: list) -> None:
    """One TensorBoard event file (TFRecord framing by tensorboardX), written atomically."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import RecordWriter

    with atomic_path(path) as tmp:
        w = RecordWriter(str(tmp))
        now = time.time()
        w.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for s in summaries:
            w.write(Event(wall_time=now, step=0, summary=s).SerializeToString())
        w.close()


def write_hparams(exp_dir: str | Path) -> int:
    """Write (or refresh) every trial's HParams file. -> the number of trials."""
    exp = Path(exp_dir)
    if not (exp / SETTINGS_FILE).is_file():
        raise UserError(f"{exp_dir}: not an experiment folder (no {SETTINGS_FILE})")
    settings = read_json(exp / SETTINGS_FILE, "experiment settings file")
    space = settings.get("space", {}) if isinstance(settings.get("space"), dict) else {}
    rows = _trial_rows(exp, int(settings.get("max_epochs", 1)), list(space))
    experiment = _summary("_hparams_/experiment",
                          experiment=_experiment(settings.get("space", {}), rows))
    for row in rows:
        _write_events(row["dir"] / HPARAMS_FILE, [experiment, *_session(row)])
    return len(rows)


def run_dashboard(exp_dir: str | Path, port: int = 6006) -> int:
    """Write the HParams summaries, then run TensorBoard in the foreground (Ctrl-C stops)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    exp = Path(exp_dir).resolve()
    n = write_hparams(exp)
    print(f"HParams written for {n} trials (rerun to refresh while the experiment runs)")
    print(f"TensorBoard: http://127.0.0.1:{port}/  (Ctrl-C stops)", flush=True)
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(exp),
           "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.run(cmd).returncode
