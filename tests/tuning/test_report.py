"""The experiment report and the TensorBoard HParams files, on one small real tune run
(local Ray on 2 CPUs, 32 px synthetic faces, F1 + latency objective)."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import ray

from tests.browser import chromium_page
from tuning.dashboard import HPARAMS_FILE, METRICS, write_hparams
from tuning.experiment import run_experiment
from tuning.pareto import pareto_front
from tuning.report import param_importances, write_report
from tuning.settings import TuneSettings
from tuning.space import QUICK_SPACE, SEARCHABLE, load_space

SECTIONS = ("trials", "curves", "parallel", "importance", "pareto", "best", "provenance")
PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def experiment(synth_data, tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        space = load_space(None, base={**QUICK_SPACE, "width": {"choices": [0.125]}})
        settings = TuneSettings(data=str(synth_data), name="rep",
                                results=str(tmp_path_factory.mktemp("results")), num_samples=4,
                                max_epochs=2, grace_period=1, reduction_factor=2, space=space,
                                objective="f1,latency", seed=0)
        summary = run_experiment(settings, verbose=0)
    finally:
        ray.shutdown()
    return settings.exp_dir, summary


class _Page(HTMLParser):
    """Sections, image sources, links and the cells of every table, by section."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.images, self.links, self.tables = {}, [], [], {}
        self._section = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a["id"]
            self.sections[self._section] = ""
        elif tag == "img":
            self.images.append(a["src"])
        elif tag in ("script", "link") and ("src" in a or "href" in a):
            self.links.append(a.get("src") or a.get("href"))
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self.tables[self._section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[self._section][-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._section:
            self.sections[self._section] += data


def _page(exp: Path) -> _Page:
    return _Page((exp / "report" / "index.html").read_text(encoding="utf-8"))


def _copy(exp: Path, dst: Path) -> Path:
    """The experiment without checkpoints, to alter safely."""
    shutil.copytree(exp, dst, ignore=shutil.ignore_patterns("checkpoint_*", "report"))
    return dst


def _events(path: Path):
    """TensorBoard's TFRecord framing, parsed with tensorboardX's protos (works whether or
    not tensorboard is installed): u64 length, u32 crc, payload, u32 crc."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos = path.read_bytes(), 0
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event()
        event.ParseFromString(data[pos + 12:pos + 12 + n])
        pos += 12 + n + 4
        yield event


def _hparams_records(path: Path) -> tuple[dict, dict]:
    """-> ({tag: HParamsPluginData} of the hparams plugin, {tag: scalar})."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    plugin, scalars = {}, {}
    for event in _events(path):
        for v in event.summary.value:
            if v.metadata.plugin_data.plugin_name == "hparams":
                d = HParamsPluginData()
                d.ParseFromString(v.metadata.plugin_data.content)
                plugin[v.tag] = d
            elif v.HasField("simple_value"):
                scalars[v.tag] = v.simple_value
    return plugin, scalars


# -- the page ------------------------------------------------------------------------------

def test_tune_writes_the_report_and_names_it_in_the_summary(experiment):
    exp, summary = experiment
    assert summary["report"] == str(exp / "report" / "index.html")
    assert Path(summary["report"]).is_file()


def test_every_section_is_present_with_a_heading(experiment):
    text = (experiment[0] / "report" / "index.html").read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}"><h2>' in text, sid


def test_every_referenced_image_is_a_non_empty_png_beside_the_page(experiment):
    exp = experiment[0]
    page = _page(exp)
    expected = {"curves.png", "parallel.png", "importance.png", "pareto.png", "confusion.png",
                "reliability.png", "roc.png"}
    assert set(page.images) == expected
    for src in page.images:
        png = exp / "report" / src
        assert png.parent == exp / "report"
        data = png.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG), src


def test_the_page_needs_no_network(experiment):
    page = _page(experiment[0])
    assert page.links == []  # CSS and JS are inline
    assert not [s for s in page.images if "://" in s]


def test_trials_table_matches_trials_csv(experiment):
    exp = experiment[0]
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    header, *rows = _page(exp).tables["trials"][0]
    got = {r[header.index("trial_id")]: r[header.index("status")] for r in rows}
    assert got == dict(zip(trials["trial_id"], trials["status"], strict=True))
    sampled = [p for p in SEARCHABLE if trials[p].notna().any()]
    assert set(sampled) <= set(header)  # every hyperparameter any trial had
    assert {"val F1", "val acc.", "latency ms", "epochs run"} <= set(header)


def test_best_section_shows_the_test_metrics_and_recomputes_the_auc(experiment):
    exp = experiment[0]
    m = json.loads((exp / "best" / "metrics.json").read_text())
    text = _page(exp).sections["best"]
    assert f"{m['auc']:.4g}" in text  # the AUC of the saved test probabilities
    for key in ("recall_female", "recall_male", "latency_ms_p50", "images_per_s_batch64"):
        assert key in text


def test_each_exported_member_is_a_row_with_its_epochs_and_config(experiment):
    exp = experiment[0]
    members = json.loads((exp / "best" / "config.json").read_text())["members"]
    tables = _page(exp).tables["best"]
    header, *rows = next(t for t in tables if t[0][:2] == ["member", "trial_id"])
    assert [r[header.index("member")] for r in rows] == [m["member"] for m in members]
    for r, m in zip(rows, members, strict=True):
        trained = m.get("retrain_epochs", m.get("epochs"))
        assert r[header.index("epochs trained")] == str(trained)
        assert r[header.index("epochs scheduled")] == str(m["config"]["epochs"])
        assert r[header.index("arch")] == m["config"]["arch"]


def test_a_trial_without_a_curve_is_named_with_the_reason(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    early, remote = trials["trial_id"].iloc[0], trials["trial_id"].iloc[1]
    # One the budget stopped before its first epoch, one whose curve is stored elsewhere.
    trials.loc[0, "epochs"] = 0
    trials.to_csv(exp / "trials.csv", index=False)
    for tid in (early, remote):
        (exp / f"trial_{tid}" / "progress.csv").unlink()
    write_report(exp)
    text = _page(exp).sections["curves"]
    assert f"Stopped before a first epoch, so no curve: {early}." in text
    assert f"Trained, but no readable local progress.csv here (remote --storage?): {remote}." \
        in text


def test_the_report_never_needs_the_data_or_the_model_again(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    settings = json.loads((exp / "experiment.json").read_text())
    settings["data"] = str(tmp_path / "gone")
    (exp / "experiment.json").write_text(json.dumps(settings))
    (exp / "best" / "model.pt").unlink()
    write_report(exp)
    assert "roc.png" in _page(exp).images  # drawn from best/test_predictions.csv


def test_roc_is_skipped_with_a_note_without_saved_test_predictions(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    (exp / "best" / "test_predictions.csv").unlink()
    (exp / "report").mkdir()
    (exp / "report" / "roc.png").write_bytes(PNG)  # a stale figure from an earlier report
    write_report(exp)
    page = _page(exp)
    assert "ROC skipped: no best/test_predictions.csv" in page.sections["best"]
    assert "roc.png" not in page.images and not (exp / "report" / "roc.png").exists()
    assert "confusion.png" in page.images


def test_a_missing_best_folder_is_reported_not_fatal(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    shutil.rmtree(exp / "best")
    write_report(exp)
    page = _page(exp)
    assert "No best/ folder" in page.sections["best"]
    assert set(SECTIONS) <= set(page.sections)


def test_values_are_html_escaped(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    trials["error"] = trials["error"].astype(object)
    trials.loc[0, "error"] = "<script>alert(1)</script>"
    trials.to_csv(exp / "trials.csv", index=False)
    write_report(exp)
    text = (exp / "report" / "index.html").read_text()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text


def test_report_leaves_everything_outside_report_alone(experiment, tmp_path):
    exp = _copy(experiment[0], tmp_path / "rep")
    before = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}
    write_report(exp)
    after = {p: p.stat().st_mtime_ns for p in exp.rglob("*")
             if p.is_file() and "report" not in p.relative_to(exp).parts}
    assert after == before


# -- importance and Pareto front, without Ray ---------------------------------------------

def test_importance_needs_two_completed_trials():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.1}, distributions={"lr": optuna.distributions.FloatDistribution(0, 1)},
        value=0.5))
    imps, why = param_importances(study)
    assert imps is None and "at least 2 completed" in why


def test_importance_ranks_the_parameter_that_drives_the_objective():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("lr", 0, 1), t.suggest_float("noise", 0, 1) * 0),
                   n_trials=12)
    imps, _ = param_importances(study)
    for imp in imps.values():
        assert max(imp, key=imp.get) == "lr"


@pytest.mark.parametrize("points, front", [
    ([(0.9, 5.0), (0.8, 2.0), (0.7, 3.0)], [True, True, False]),  # (0.8, 2) beats (0.7, 3)
    ([(0.9, 5.0), (0.9, 5.0)], [True, True]),  # duplicates keep each other
    ([(0.9, 5.0), (0.9, 6.0)], [True, False]),  # same F1, slower: dominated
    ([(0.6, 1.0), (0.5, 1.0)], [True, False]),  # same latency, lower F1: dominated
    ([(0.95, 10.0), (0.6, 1.0), (0.8, 4.0)], [True, True, True]),  # a trade-off curve
    ([(0.9, float("nan")), (0.5, 9.0)], [False, True]),  # no latency: never on the front
    ([], []),
])
def test_pareto_front_keeps_exactly_the_non_dominated_points(points, front):
    assert pareto_front(np.array(points, dtype=float).reshape(-1, 2)).tolist() == front


# -- TensorBoard ---------------------------------------------------------------------------

def test_write_hparams_records_every_trials_parameters_and_best_metrics(experiment):
    exp = experiment[0]
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str}).set_index("trial_id")
    assert write_hparams(exp) == len(trials)
    for tid, row in trials.iterrows():
        d = exp / f"trial_{tid}"
        plugin, scalars = _hparams_records(d / HPARAMS_FILE)
        params = json.loads((d / "params.json").read_text())
        start = plugin["_hparams_/session_start_info"].session_start_info
        got = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
        want = {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for k, v in params.items() if k in SEARCHABLE}
        assert got == want  # conditional parameters that did not apply are absent
        assert scalars["best/val_f1"] == pytest.approx(row["best_val_f1"], rel=1e-6)
        assert scalars["epochs_run"] == row["epochs"]
        listed = {h.name for h in plugin["_hparams_/experiment"].experiment.hparam_infos}
        assert listed == set(SEARCHABLE)  # momentum and alpha included, for every trial
        metrics = [m.name.tag for m in plugin["_hparams_/experiment"].experiment.metric_infos]
        assert metrics == list(METRICS)


def test_write_hparams_sorts_before_rays_files_and_reruns_replace_it(experiment):
    exp = experiment[0]
    write_hparams(exp)
    write_hparams(exp)
    for d in exp.glob("trial_*"):
        files = sorted(p.name for p in d.glob("events.out.tfevents*"))
        assert files[0] == HPARAMS_FILE and files.count(HPARAMS_FILE) == 1, files
        assert len(files) >= 2  # Ray's own event file is still there


def test_dashboard_runs_tensorboard_from_the_default_install(experiment):
    """TensorBoard is a dependency, not an extra: `gender dashboard` serves it at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gender_cli", "dashboard",
                             str(experiment[0]), "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline, page = time.monotonic() + 180, ""
        while time.monotonic() < deadline and proc.poll() is None and not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode(errors="replace")
            except OSError:
                time.sleep(1)
        assert "TensorBoard" in page, proc.stdout.read() if proc.poll() is not None else ""
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the TensorBoard it started
        proc.wait(timeout=60)


@pytest.mark.browser
def test_the_page_renders_in_headless_chromium(experiment, tmp_path):
    """Chromium opens the report from disk: every section, every figure decoded, nothing
    fetched from elsewhere, no script error, no wider than the window."""
    with chromium_page(height=2000) as page:
        page.goto((experiment[0] / "report" / "index.html").as_uri())
        page.wait_for_load_state("load")
        ids = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        assert set(SECTIONS) <= set(ids)
        sizes = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert sizes and all(w > 0 for w in sizes), sizes
        assert page.problems == []
        # Long values wrap and wide tables scroll in their own box: the page itself never
        # scrolls sideways (config.json's members once made it thousands of pixels wide).
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and shot.read_bytes().startswith(PNG)
