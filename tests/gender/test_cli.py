"""The `gender` command as a user runs it: real subprocesses, real files."""

import json
import os
import pickle
import subprocess
import sys

import pytest
from PIL import Image

GENDER = [sys.executable, "-m", "gender_cli"]


def run(*args, cwd=None, check_rc=None):
    p = subprocess.run([*GENDER, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)
    if check_rc is not None:
        assert p.returncode == check_rc, p.stderr[-2000:]
    return p


@pytest.fixture(scope="module")
def trained(synth_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    run("train", "--data", synth_data, "--out", out, "--epochs", "2", "--image-size", "32",
        "--width", "0.25", "--batch-size", "32", "--lr", "3e-3", check_rc=0)
    return out


def test_train_writes_model_metrics_history_and_splits(trained):
    for name in ("model.pt", "metrics.json", "history.csv", "splits.csv"):
        assert (trained / name).is_file(), name
    m = json.loads((trained / "metrics.json").read_text())
    assert m["f1"] > 0.7 and m["accuracy"] > 0.7  # chance is 0.5
    assert len((trained / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs


def test_predict_round_trips_through_model_pt_as_json_lines(trained, synth_data):
    images = sorted((synth_data / "img_align_celeba").iterdir())[:5]
    p = run("predict", trained, *images, "--json", check_rc=0)
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(i) for i in images]
    assert all(r["label"] in ("male", "female") and 0 <= r["prob_male"] <= 1 for r in rows)


def test_predict_reports_unreadable_files_and_still_predicts_the_rest(trained, synth_data,
                                                                      tmp_path):
    good = sorted((synth_data / "img_align_celeba").iterdir())[0]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    p = run("predict", trained, bad, good, "--json")
    assert p.returncode == 1
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert "error" in rows[0] and rows[1]["label"] in ("male", "female")
    assert "broken.jpg" in p.stderr and "Traceback" not in p.stderr


def test_predict_refuses_a_crafted_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"format": "gender-tune/model/1", "x": Evil()}))
    img = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(img)
    p = run("predict", bad, img)
    assert p.returncode == 2
    assert "refused" in p.stderr and "Traceback" not in p.stderr
    assert not marker.exists()


# The installed command, as a user runs it; every other bad input is a row of the catalogue
# (tests/gender_cli), which runs most rows in-process through the same `main`.
@pytest.mark.parametrize("args,needle", [
    (["train", "--lr", "-1"], "--lr -1.0: must be in (0, 10]"),
    (["tune", "--gpus-per-trial", "0.3", "--no-retrain"], "--gpus-per-trial"),
])
def test_bad_input_exits_2_with_one_line_naming_the_culprit(args, needle, tmp_path, synth_data):
    args = [a if a != "--data-placeholder" else str(synth_data) for a in args]
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert needle in lines[0] and "Traceback" not in p.stderr


def test_data_check_reports_layout_counts_and_ignored(synth_data):
    p = run("data", "check", synth_data, check_rc=0)
    assert "celeba" in p.stdout and "2000" in p.stdout


def test_data_check_on_real_celeba_counts_3725_labelled_1728_male(celeba):
    p = run("data", "check", celeba, check_rc=0)
    assert "3725 labelled" in p.stdout and "1728 male" in p.stdout
    assert "unlabelled" in p.stdout and "duplicate" in p.stdout


def test_help_lists_every_subcommand():
    p = run("--help", check_rc=0)
    for sub in ("data", "train", "predict", "tune", "retrain"):
        assert sub in p.stdout
