"""The catalogue of bad inputs: one row per thing a user (or a hostile sender) can get
wrong, and what `gender` must answer.

A row is a command line, the files to create first, the exit code and the words stderr
must hold (the culprit and the rule). `test_catalogue.py` runs every row and also checks,
for all of them, that stderr is short, that nothing printed a traceback and that every
file that existed before (inputs and earlier outputs) is byte-for-byte as it was.

Placeholders in the command line: `{tmp}` the case's own folder, `{data}` a valid
labels-csv dataset, `{celeba}` a valid CelebA-layout dataset, `{model}` a folder with a
valid model.pt, `{image}` a valid picture (all shared and read-only, checked like inputs).

`kind` is the defect class of issue 13 the row belongs to: hostile (hostile files),
hang (waits that must end with a message), lost-work (outputs that cannot be written,
found only at the end), silent (a quietly wrong result with exit 0), corrupt (damaged
files must give one line, not a traceback), flag and path (the README's promise for a
bad flag or a missing path).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tests.gender_cli import badfiles as bf

__all__ = ["Case", "CASES", "UNWRITABLE"]

# A folder nobody may write into, root included (sysfs refuses new entries).
UNWRITABLE = "/sys/gender-tune-out"


@dataclass(frozen=True)
class Case:
    name: str
    argv: str  # split on single spaces, then placeholders filled in per word
    expect: tuple[str, ...]  # stderr must contain each
    kind: str
    setup: Callable[[Path], object] | None = None
    rc: int = 2
    lines: int = 1  # most non-empty stderr lines allowed
    check: Callable[[Path, str, str], None] | None = None  # (tmp, stdout, stderr)
    creates: tuple[str, ...] = ()  # globs (relative to tmp) of new files allowed
    process_only: bool = False  # needs a real process (Ray, signals)
    env: dict = field(default_factory=dict)
    timeout: float = 60.0


CASES: list[Case] = []


def case(name, argv, *expect, kind, **kw) -> None:
    CASES.append(Case(name, argv, tuple(expect), kind, **kw))


# ------------------------------------------------------------------ helpers for setups

def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return setup


def both(*setups) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def labels(*rows: str, header: str = "Image,Male", n: int = 25):
    """A labels-csv dataset at {tmp}/ds whose labels.csv holds the generated rows with
    `rows` appended (a row "=TEXT" replaces the whole file's body instead)."""
    def setup(tmp: Path) -> None:
        bf.labels_csv_dataset(tmp / "ds", n)
        good = [f"{i + 1:06d}.png,{i % 2}" for i in range(2 * n)]
        body = [r[1:] for r in rows] if rows and rows[0].startswith("=") else good + list(rows)
        (tmp / "ds" / "labels.csv").write_text("\n".join([header, *body]) + "\n")
    return setup


def labels_bytes(content: bytes):
    def setup(tmp: Path) -> None:
        bf.labels_csv_dataset(tmp / "ds", 25)
        (tmp / "ds" / "labels.csv").write_bytes(content)
    return setup


def celeba(edit: Callable[[Path], None] | None = None, **kw):
    def setup(tmp: Path) -> None:
        bf.celeba_dataset(tmp / "ds", **kw)
        if edit is not None:
            edit(tmp / "ds")
    return setup


def replace_line(file: str, line: int, text: str):
    def edit(root: Path) -> None:
        lines = (root / file).read_text().splitlines()
        lines[line - 1] = text
        (root / file).write_text("\n".join(lines) + "\n")
    return edit


def with_image(make: Callable[[Path], Path], name: str = "000007.png"):
    """A labels-csv dataset at {tmp}/ds whose image `name` is replaced by `make`'s file."""
    def setup(tmp: Path) -> None:
        bf.labels_csv_dataset(tmp / "ds", 25)
        make(tmp / "ds" / "Images" / name)
    return setup


def model(mutate):
    return lambda tmp: bf.model_file(tmp / "m" / "model.pt", mutate)


def first_member(change):
    def mutate(blob):
        change(blob["members"][0])
        return blob
    return mutate


def experiment(**kw):
    """An experiment folder at {tmp}/results/exp (see badfiles.experiment)."""
    def setup(tmp: Path) -> None:
        data = tmp / "ds"
        if not data.exists():
            bf.labels_csv_dataset(data, 25)
        bf.experiment(tmp / "results", data, **kw)
    return setup


def exp_file(rel: str, content: str | bytes):
    """A valid experiment folder, then one of its files replaced."""
    return both(experiment(), write(f"results/exp/{rel}", content))


def no_file(path: str):
    def check(tmp: Path, out: str, err: str) -> None:
        assert not (tmp / path).exists(), f"{path} was created"
    return check


def predicted(*names: str):
    """stdout has a prediction for each of these files (the good ones were not dropped)."""
    def check(tmp: Path, out: str, err: str) -> None:
        for n in names:
            assert any(line.split("\t")[0].endswith(n) and line.split("\t")[1] in
                       ("female", "male") for line in out.splitlines() if "\t" in line), out
    return check


def good_image(rel: str):
    return lambda tmp: bf.face(tmp / rel, 3, True)


# ================================================================== the table

# ------------------------------------------------------------------ gender (no command)
case("no-subcommand", "", "required", kind="flag")
case("unknown-subcommand", "bogus", "invalid choice", "bogus", kind="flag")

# ------------------------------------------------------------------ data check
DC = "data check {tmp}/ds"
case("check-missing-dir", "data check {tmp}/nope", "nope", "no such", kind="path")
case("check-file-not-dir", "data check {tmp}/file.txt", "file.txt", "not a folder",
     kind="path", setup=write("file.txt", "x"))
case("check-empty-dir", "data check {tmp}/empty", "empty", "no known dataset layout",
     kind="path", setup=lambda t: (t / "empty").mkdir())
case("check-newline-in-name", "data check {tmp}/bad\nname", "no such", kind="hostile")
case("labels-not-utf8", DC, "labels.csv", "UTF-8", kind="corrupt",
     setup=labels_bytes("Image,Male\n000001.png,1\n\xe9t\xe9.png,0\n".encode("latin-1")))
case("labels-binary", DC, "labels.csv", "UTF-8", kind="corrupt",
     setup=labels_bytes(bytes(range(256)) * 4))
case("labels-nul-byte", DC, "labels.csv line 3", "NUL", kind="corrupt",
     setup=labels_bytes(b"Image,Male\n000001.png,1\n0000\x0002.png,0\n"))
case("labels-stray-quote", DC, "labels.csv line 3", "quote", kind="corrupt",
     setup=labels('=000001.png,1', '="000002.png,0', '=000003.png,1', '=000004.png,0'))
case("labels-quoted-newline", DC, "labels.csv line 3", "quote", kind="corrupt",
     setup=labels('=000001.png,1', '="0000\n02.png",0', '=000003.png,1'))
case("labels-missing-column", DC, "labels.csv", "'Male'", kind="corrupt",
     setup=labels(header="Image,Gender"))
case("labels-bad-value", DC, "labels.csv line 52", "Male value '2'", kind="corrupt",
     setup=labels("000051.png,2"))
case("labels-field-count", DC, "labels.csv line 52", "3 fields", kind="corrupt",
     setup=labels("000051.png,1,extra"))
case("labels-duplicate-row", DC, "labels.csv line 52", "duplicate row", kind="corrupt",
     setup=labels("000001.png,1"))
case("labels-path-traversal", DC, "labels.csv line 52", "bare file name", kind="hostile",
     setup=labels("../../etc/passwd.png,1"))
case("labels-absolute-path", DC, "labels.csv line 52", "bare file name", kind="hostile",
     setup=labels("/etc/shadow.png,1"))
case("labels-not-an-image-name", DC, "labels.csv line 52", "not an image file", kind="corrupt",
     setup=labels("notes.txt,1"))
case("labels-mixed-female-codes", DC, "labels.csv", "mixes 0 and -1", kind="corrupt",
     setup=labels("=000001.png,1", "=000002.png,0", "=000004.png,-1"))
case("labels-empty-file", DC, "labels.csv", "empty file", kind="corrupt",
     setup=labels_bytes(b""))
case("labels-header-only", DC, "labels.csv", "no label rows", kind="corrupt",
     setup=labels_bytes(b"Image,Male\n"))
case("labels-image-missing", DC, "labels.csv line 52", "not found", kind="corrupt",
     setup=labels("000999.png,1"))
case("labels-one-class", DC, "only one class", kind="corrupt",
     setup=labels(*[f"={i + 1:06d}.png,1" for i in range(50)]))
case("attr-count-mismatch", DC, "list_attr_celeba.txt line 1", "says 49", kind="corrupt",
     setup=celeba(replace_line("list_attr_celeba.txt", 1, "49")))
case("attr-count-not-a-number", DC, "list_attr_celeba.txt line 1", "number of images",
     kind="corrupt", setup=celeba(replace_line("list_attr_celeba.txt", 1, "fifty")))
case("attr-no-male", DC, "list_attr_celeba.txt line 2", "'Male'", kind="corrupt",
     setup=celeba(lambda r: (r / "list_attr_celeba.txt").write_text(
         (r / "list_attr_celeba.txt").read_text().replace(" Male ", " Man "))))
case("attr-bad-value", DC, "list_attr_celeba.txt line 3", "-1 or 1", kind="corrupt",
     setup=celeba(lambda r: (r / "list_attr_celeba.txt").write_text(
         (r / "list_attr_celeba.txt").read_text().replace("000001.png -1", "000001.png 0"))))
case("attr-not-utf8", DC, "list_attr_celeba.txt", "UTF-8", kind="corrupt",
     setup=celeba(lambda r: (r / "list_attr_celeba.txt").write_bytes(b"\xff\xfe50\n")))
case("identity-bad-fields", DC, "identity_CelebA.txt line 2", "expected", kind="corrupt",
     setup=celeba(replace_line("identity_CelebA.txt", 2, "000002.png 1 2")))
case("identity-not-utf8", DC, "identity_CelebA.txt", "UTF-8", kind="corrupt",
     setup=celeba(lambda r: (r / "identity_CelebA.txt").write_bytes(b"\x80\x81 1\n")))
case("partition-bad-value", DC, "list_eval_partition.txt line 3", "'3'", kind="corrupt",
     setup=celeba(replace_line("list_eval_partition.txt", 3, "000003.png 3")))
case("partition-conflict", DC, "list_eval_partition.txt line 51", "listed again",
     kind="corrupt", setup=celeba(lambda r: (r / "list_eval_partition.txt").write_text(
         (r / "list_eval_partition.txt").read_text() + "000001.png 2\n")))
case("class-folders-one-class", DC, "only one class", kind="corrupt",
     setup=lambda t: (bf.class_folders(t / "ds", n_male=0), (t / "ds" / "male").mkdir()))

# ------------------------------------------------------------------ data synth
case("synth-out-below-a-file", "data synth {tmp}/f.txt/out --n 10", "f.txt", "is a file",
     kind="lost-work", setup=write("f.txt", "x"))
case("synth-out-unwritable", f"data synth {UNWRITABLE} --n 10", UNWRITABLE, "not writable",
     kind="lost-work")
case("synth-out-is-a-file", "data synth {tmp}/f.txt --n 10", "f.txt", "not a folder",
     kind="lost-work", setup=write("f.txt", "x"))
case("synth-out-not-empty", "data synth {tmp}/mine --n 10", "mine", "not empty",
     kind="lost-work", setup=write("mine/thesis.tex", "years of work"))
case("synth-n-too-small", "data synth {tmp}/o --n 5", "--n 5", ">= 10", kind="flag")
case("synth-n-not-a-number", "data synth {tmp}/o --n abc", "--n", "whole number", kind="flag")
case("synth-size-too-small", "data synth {tmp}/o --n 10 --size 8", "--size 8", "16",
     kind="flag")
case("synth-size-too-large", "data synth {tmp}/o --n 10 --size 1000", "--size 1000", "256",
     kind="flag")
case("synth-negative-seed", "data synth {tmp}/o --n 10 --seed -1", "--seed", ">= 0",
     kind="flag")
case("synth-unknown-flag", "data synth {tmp}/o --n 10 --bogus", "--bogus", kind="flag")

# ------------------------------------------------------------------ train: flags
TR = "train --data {data} --out {tmp}/out"
for flag, value, *words in [
    ("--epochs", "0", ">= 1"), ("--epochs", "1001", "[1, 1000]"),
    ("--epochs", "abc", "whole number"), ("--epochs", "2.5", "whole number"),
    ("--lr", "0", "(0, 10]"), ("--lr", "-1", "(0, 10]"), ("--lr", "nan", "finite"),
    ("--lr", "inf", "finite"), ("--lr", "11", "(0, 10]"), ("--lr", "abc", "not a number"),
    ("--batch-size", "0", ">= 1"), ("--batch-size", "5000", "[1, 4096]"),
    ("--image-size", "50", "multiple of 32"), ("--image-size", "16", "multiple of 32"),
    ("--image-size", "1024", "multiple of 32"),
    ("--width", "0", "[0.0625, 2]"), ("--width", "3", "[0.0625, 2]"),
    ("--dropout", "1", "[0, 1)"), ("--dropout", "-0.1", "[0, 1)"),
    ("--momentum", "1", "[0, 1)"), ("--alpha", "0", "(0, 1)"), ("--alpha", "1", "(0, 1)"),
    ("--weight-decay", "-1", "[0, 1)"), ("--augment", "2", "[0, 1]"),
    ("--mixup", "-1", "[0, 10]"), ("--ema", "1", "[0, 1)"),
    ("--seed", "-1", ">= 0"), ("--seed", "4294967296", "2**32"),
    ("--split-seed", "-1", ">= 0"),
    ("--arch", "resnet50", "invalid choice"), ("--optimizer", "lbfgs", "invalid choice"),
    ("--head", "mlp", "invalid choice"), ("--lr-schedule", "linear", "invalid choice"),
    ("--balance", "oversample", "invalid choice"),
]:
    case(f"train{flag}={value}", f"{TR} {flag} {value}", flag, *words, kind="flag")
case("train-abbreviated-flag", f"{TR} --epoch 1", "--epoch", kind="silent")
case("train-batch-size-1-with-batch-norm", "train --data {tmp}/nope --batch-size 1",
     "--batch-size 1", "batch norm", kind="silent")
case("train-device-unknown", f"{TR} --device tpu", "--device tpu", kind="flag")
case("train-device-meta", f"{TR} --device meta", "--device meta", kind="silent")
case("train-device-missing-gpu", f"{TR} --device cuda:7", "--device cuda:7", kind="flag")
case("train-pretrained-needs-width-1", f"{TR} --pretrained imagenet", "--pretrained",
     "width 1.0", kind="flag")
PRE = f"{TR} --width 1 --head classic --pretrained"
case("train-pretrained-missing", PRE + " {tmp}/nope.pt", "--pretrained", "nope.pt",
     "no such file", kind="path")
case("train-pretrained-not-a-dict", PRE + " {tmp}/w.pt", "--pretrained", "w.pt",
     "not a weights file", kind="corrupt",
     setup=lambda t: __import__("torch").save(__import__("torch").zeros(3), t / "w.pt"))
case("train-pretrained-crafted-pickle", PRE + " {tmp}/w.pt", "--pretrained", "w.pt",
     kind="hostile", setup=lambda t: bf.evil_pickle(t / "w.pt", t / "pwned"),
     check=no_file("pwned"))

# ------------------------------------------------------------------ train: data and outputs
TRD = "train --data {tmp}/ds --out {tmp}/out --epochs 1 --image-size 32"
case("train-data-missing", "train --data {tmp}/nope --out {tmp}/out", "nope", "no such",
     kind="path")
case("train-data-too-small", TRD, "too small", kind="corrupt",
     setup=lambda t: bf.labels_csv_dataset(t / "ds", 10))
case("train-out-below-a-file", "train --data {data} --out {tmp}/f.txt/out", "--out",
     "f.txt", "is a file", kind="lost-work", setup=write("f.txt", "x"))
case("train-out-unwritable", f"train --data {{data}} --out {UNWRITABLE}/run", "--out",
     "not writable", kind="lost-work")
case("train-out-is-a-file", "train --data {data} --out {tmp}/f.txt", "--out", "f.txt",
     "not a folder", kind="lost-work", setup=write("f.txt", "x"))
case("train-png-bomb-in-data", TRD, "000007.png", "pixels", "limit", kind="hostile",
     setup=with_image(bf.png_bomb), check=no_file("out"))
case("train-jpeg-bomb-in-data", TRD, "000051.jpg", "pixels", "limit", kind="hostile",
     setup=both(labels("000051.jpg,1"), lambda t: bf.jpeg_bomb(t / "ds/Images/000051.jpg")),
     check=no_file("out"))
case("train-truncated-image-in-data", TRD, "000007.png", "truncated", kind="corrupt",
     setup=with_image(bf.truncated_png), check=no_file("out"))
case("train-text-as-image-in-data", TRD, "000007.png", "not an image", kind="corrupt",
     setup=with_image(lambda p: p.write_text("hello") or p), check=no_file("out"))
case("train-partial-partition", "train --data {tmp}/ds --out {tmp}/out --epochs 1",
     "list_eval_partition.txt", "45 of 50", kind="silent",
     setup=celeba(lambda r: (r / "list_eval_partition.txt").write_text(
         "".join((r / "list_eval_partition.txt").read_text().splitlines(True)[:45]))),
     check=no_file("out"))
case("train-labels-stray-quote", TRD, "labels.csv line 3", "quote", kind="corrupt",
     setup=labels('=000001.png,1', '="000002.png,0', '=000003.png,1', '=000004.png,0'))

# ------------------------------------------------------------------ predict: the model
PR = "predict {tmp}/m {image}"
case("predict-model-missing", "predict {tmp}/nope.pt {image}", "nope.pt", "no model.pt",
     kind="path")
case("predict-model-folder-empty", PR, "m", "no model.pt", kind="path",
     setup=lambda t: (t / "m").mkdir())
case("predict-model-garbage", PR, "model.pt", "not a readable model file", kind="corrupt",
     setup=write("m/model.pt", b"\x00garbage" * 100))
case("predict-model-empty-file", PR, "model.pt", "not a readable model file", kind="corrupt",
     setup=write("m/model.pt", b""))
case("predict-model-crafted-pickle", PR, "model.pt", "refused", kind="hostile",
     setup=lambda t: bf.evil_pickle((t / "m").mkdir() or t / "m" / "model.pt", t / "pwned"),
     check=no_file("pwned"))
case("predict-model-wrong-shapes", PR, "model.pt", "do not fit", kind="corrupt",
     setup=model(first_member(lambda m: m["state_dict"].update(
         {k: v[:1] for k, v in list(m["state_dict"].items())[:1]}))))
case("predict-model-missing-keys", PR, "model.pt", "do not fit", kind="corrupt",
     setup=model(first_member(lambda m: m["state_dict"].pop(next(iter(m["state_dict"]))))))
case("predict-model-unknown-config-field", PR, "model.pt", "configuration is invalid",
     kind="corrupt", setup=model(first_member(lambda m: m["config"].update(colour="red"))))
case("predict-model-bad-config-value", PR, "model.pt", "image_size", kind="corrupt",
     setup=model(first_member(lambda m: m["config"].update(image_size=50))))
case("predict-model-config-not-a-dict", PR, "model.pt", "config and a state_dict",
     kind="corrupt", setup=model(first_member(lambda m: m.update(config=[1, 2]))))
case("predict-model-wrong-format", PR, "model.pt", "not a gender-tune model file",
     kind="corrupt", setup=model(lambda b: {**b, "format": "other/1"}))
case("predict-model-a-tensor", PR, "model.pt", "not a gender-tune model file",
     kind="corrupt", setup=model(lambda b: __import__("torch").zeros(2)))
case("predict-model-no-members", PR, "model.pt", "holds no model", kind="corrupt",
     setup=model(lambda b: {**b, "members": []}))
case("predict-model-bad-temperature", PR, "model.pt", "temperature", kind="corrupt",
     setup=model(lambda b: {**b, "temperature": -1.0}))
case("predict-model-is-a-folder", PR, "model.pt", kind="path",
     setup=lambda t: (t / "m" / "model.pt").mkdir(parents=True))
case("predict-device-meta", "predict {model} {image} --device meta", "--device meta",
     kind="silent")

# ------------------------------------------------------------------ predict: the images
PI = "predict {model} {tmp}/good.png {tmp}/"
case("predict-path-missing", "predict {model} {tmp}/nope.jpg", "nope.jpg", "no such",
     kind="path")
case("predict-folder-without-images", "predict {model} {tmp}/photos", "photos",
     "no image files", kind="silent", setup=write("photos/notes.txt", "x"))
for bad, make, words in [
    ("png-bomb", lambda p: bf.png_bomb(p.with_suffix(".png")), ("pixels", "limit")),
    ("jpeg-bomb", lambda p: bf.jpeg_bomb(p.with_suffix(".jpg")), ("pixels", "limit")),
    ("truncated", lambda p: bf.truncated_png(p.with_suffix(".png")), ("truncated",)),
    ("empty-file", lambda p: p.with_suffix(".jpg").write_bytes(b""), ("cannot read image",)),
    ("text-file", lambda p: p.with_suffix(".png").write_text("<html>"), ("cannot read image",)),
]:
    ext = ".jpg" if bad in ("jpeg-bomb", "empty-file") else ".png"
    case(f"predict-{bad}-beside-a-good-image", PI + "bad" + ext, "bad" + ext, *words,
         kind="hostile" if "bomb" in bad else "corrupt", rc=1,
         setup=both(good_image("good.png"), lambda t, m=make: m(t / "bad")),
         check=predicted("good.png"))
case("predict-fifo-does-not-hang", PI + "pipe.png", "pipe.png", "not a regular file",
     kind="hang", rc=1, setup=both(good_image("good.png"), lambda t: os.mkfifo(t / "pipe.png")),
     check=predicted("good.png"), timeout=30)
case("predict-newline-in-file-name", PI + "bad\nname.png", "bad\\nname.png", kind="hostile",
     rc=1, setup=both(good_image("good.png"), write("bad\nname.png", "not an image")),
     check=predicted("good.png"))
case("predict-bomb-in-a-folder", "predict {model} {tmp}/photos", "bomb.png", "pixels",
     kind="hostile", rc=1,
     setup=both(good_image("photos/a.png"), lambda t: bf.png_bomb(t / "photos/bomb.png"),
                good_image("photos/z.png")),
     check=predicted("a.png", "z.png"))

# ------------------------------------------------------------------ tune: flags
TU = "tune --data {data} --results {tmp}/results --name x"
for flag, value, *words in [
    ("--num-samples", "0", ">= 1"), ("--max-epochs", "0", ">= 1"),
    ("--reduction-factor", "1", ">= 2"), ("--objective", "acc", "invalid choice"),
    ("--cpus-per-trial", "0", "> 0"), ("--cpus-per-trial", "nan", "finite"),
    ("--gpus-per-trial", "-1", ">= 0"), ("--gpus-per-trial", "0.3", "divide 1"),
    ("--gpus-per-trial", "1.5", "whole"), ("--max-concurrent", "0", ">= 1"),
    ("--time-budget", "0", "> 0"), ("--time-budget", "-5", "> 0"),
    ("--seed", "-1", ">= 0"), ("--seed", "4294967296", "2**32"),
    ("--split-seed", "-1", ">= 0"), ("--seeds", "0", ">= 1"), ("--seeds", "11", "[1, 10]"),
    ("--ensemble", "11", "[1, 10]"), ("--trial-members", "-1", ">= 0"),
    ("--trial-members", "11", "auto or in [0, 10]"), ("--trial-members", "some", "whole number"),
]:
    case(f"tune{flag}={value}", f"{TU} {flag} {value}", flag, *words, kind="flag")
case("tune-grace-above-max-epochs", f"{TU} --grace-period 5 --max-epochs 2",
     "--grace-period", kind="flag")
case("tune-quick-with-bad-count", f"{TU} --quick --num-samples 0", "--num-samples",
     kind="flag")
case("tune-name-with-slash", "tune --data {data} --results {tmp}/results --name a/b",
     "--name", "plain folder name", kind="flag")
case("tune-name-dotdot", "tune --data {data} --results {tmp}/results --name ..",
     "--name", "plain folder name", kind="hostile")
case("tune-name-empty", "tune --data {data} --results {tmp}/results --name=", "--name",
     kind="flag")
case("tune-data-missing", "tune --data {tmp}/nope --results {tmp}/results --name x",
     "nope", "no such", kind="path")
case("tune-results-below-a-file", "tune --data {data} --results {tmp}/f.txt/results "
     "--name x", "--results", "f.txt", "is a file", kind="lost-work", setup=write("f.txt", "x"))
case("tune-results-is-a-file", "tune --data {data} --results {tmp}/f.txt --name x",
     "--results", "f.txt", "not a folder", kind="lost-work", setup=write("f.txt", "x"))
case("tune-results-unwritable", f"tune --data {{data}} --results {UNWRITABLE} --name x",
     "--results", "not writable", kind="lost-work")
case("tune-storage-below-a-file", f"{TU} --storage {{tmp}}/f.txt/ckpt", "--storage",
     "is a file", kind="lost-work", setup=write("f.txt", "x"))
case("tune-name-of-an-existing-experiment", "tune --data {tmp}/ds --results {tmp}/results "
     "--name exp", "--name exp", "already holds an experiment", kind="lost-work",
     setup=experiment())
case("tune-unknown-flag", f"{TU} --trials 5", "--trials", kind="flag")

# ------------------------------------------------------------------ tune: --space files
SP = TU + " --space {tmp}/space.yaml"
for name, text, words in [
    ("bad-yaml", "lr: [1, 2\n", ("not valid YAML",)),
    ("a-list", "- lr\n- width\n", ("mapping",)),
    ("unknown-parameter", "learning_rate: {low: 0.1, high: 1}\n", ("'learning_rate'",)),
    ("empty-choices", "arch: {choices: []}\n", ("non-empty list",)),
    ("low-above-high", "lr: {low: 0.1, high: 0.01}\n", ("low < high",)),
    ("log-from-zero", "weight_decay: {low: 0, high: 0.1, log: true}\n", ("log range",)),
    ("range-for-batch-size", "batch_size: {low: 16, high: 64}\n", ("use choices",)),
    ("bad-constant", "lr: -1\n", ("lr=-1",)),
    ("bad-image-size", "image_size: {choices: [50]}\n", ("image_size=50",)),
    ("batch-size-1-with-batch-norm", "batch_size: 1\nbatch_norm: true\n", ("batch_size=1",)),
    ("string-number", "lr: {low: a, high: b}\n", ("numbers",)),
    ("unknown-range-key", "lr: {low: 0.1, high: 1, step: 2}\n", ("low, high, log",)),
    ("python-tag", "lr: !!python/object/apply:os.system ['touch pwned']\n",
     ("not valid YAML",)),
]:
    case(f"space-{name}", SP, "--space", "space.yaml", *words,
         kind="hostile" if name == "python-tag" else "corrupt",
         setup=write("space.yaml", text), check=no_file("pwned"))
case("space-missing", TU + " --space {tmp}/nope.yaml", "--space", "nope.yaml", "no such",
     kind="path")
case("space-binary", SP, "--space", "space.yaml", "UTF-8", kind="corrupt",
     setup=write("space.yaml", bytes(range(128, 256))))
case("space-bad-json", TU + " --space {tmp}/space.json", "--space", "not valid JSON",
     kind="corrupt", setup=write("space.json", '{"lr": '))
case("space-is-a-folder", TU + " --space {tmp}/sp", "--space", "sp", kind="path",
     setup=lambda t: (t / "sp").mkdir())

# ------------------------------------------------------------------ tune: --resume
RS = "tune --resume {tmp}/results/exp"
case("resume-missing", "tune --resume {tmp}/nope", "nope", "not an experiment folder",
     kind="path")
for name, content, words in [
    ("settings-a-list", "[1, 2]", ("expected a JSON object",)),
    ("settings-invalid-json", '{"data": ', ("not valid JSON",)),
    ("settings-not-utf8", b"\xff\xfe{}", ("UTF-8",)),
    ("settings-binary", bytes(range(256)), ("UTF-8",)),
]:
    case(f"resume-{name}", RS, "experiment.json", *words, kind="corrupt",
         setup=write("results/exp/experiment.json", content))


def _settings_edit(**changes):
    def edit(tmp: Path) -> None:
        p = tmp / "results/exp/experiment.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), **changes}))
    return both(experiment(), edit)


case("resume-unknown-setting", RS, "experiment.json", "unknown setting", kind="corrupt",
     setup=_settings_edit(colour="red"))
case("resume-bad-setting", RS, "experiment.json", "max-epochs", kind="corrupt",
     setup=_settings_edit(max_epochs=0))
case("resume-setting-of-wrong-type", RS, "experiment.json", "num_samples", kind="corrupt",
     setup=_settings_edit(num_samples="ten"))
case("resume-seeds-of-wrong-type", RS, "experiment.json", "seeds", kind="corrupt",
     setup=_settings_edit(seeds=True))
case("resume-trial-members-out-of-range", RS, "experiment.json", "--trial-members",
     kind="corrupt", setup=_settings_edit(trial_members=99))
case("resume-bad-space-in-settings", RS, "experiment.json", "low < high", kind="corrupt",
     setup=_settings_edit(space={"lr": {"low": 1.0, "high": 0.1}}))
case("resume-no-ray-state", RS, "no restorable Ray Tune state", kind="corrupt",
     setup=experiment(), timeout=120)
case("resume-with-other-flags", RS + " --num-samples 50", "--resume", "--num-samples",
     kind="silent", setup=experiment())

# ------------------------------------------------------------------ tune: Ray (real processes)
case("tune-address-refused", TU + " --address 127.0.0.1:{closed_port}", "--address",
     "127.0.0.1", "refused", kind="hang", process_only=True, timeout=90,
     check=no_file("results/x"))
case("tune-address-not-ray", TU + " --address 127.0.0.1:{silent_port}", "--address",
     "did not answer", kind="hang", process_only=True, timeout=120,
     env={"GENDER_RAY_CONNECT_TIMEOUT": "3"},
     check=no_file("results/x"))
case("tune-address-auto-dead-cluster", TU + " --address auto", "--address auto",
     "127.0.0.1:{closed_port}", kind="hang", process_only=True, timeout=90,
     env={"RAY_TMPDIR": "{raytmp}"}, check=no_file("results/x"))
case("tune-ray-address-env-dead", TU, "RAY_ADDRESS", "refused", kind="hang",
     process_only=True, timeout=90, env={"RAY_ADDRESS": "127.0.0.1:{closed_port}"},
     check=no_file("results/x"))
# A run that would start its own Ray is checked against this machine before Ray starts
# (the dead head in {raytmp}'s "current cluster" file is neither joined nor waited for).
case("tune-more-gpus-than-any-node", TU + " --gpus-per-trial 64", "--gpus-per-trial 64",
     "no node", kind="hang", process_only=True, timeout=240,
     env={"RAY_TMPDIR": "{raytmp}"}, check=no_file("results/x"))
case("tune-more-cpus-than-any-node", TU + " --cpus-per-trial 512", "--cpus-per-trial 512",
     "no node", kind="hang", process_only=True, timeout=240,
     check=no_file("results/x"))

# ------------------------------------------------------------------ retrain
RT = "retrain {tmp}/results/exp"
case("retrain-missing", "retrain {tmp}/nope", "nope", "not an experiment folder", kind="path")
# The retrain reads the search's own Ray Tune results (trials.csv is a report, never read).
case("retrain-no-tune-results", RT, "no Ray Tune results", kind="corrupt", setup=experiment())
case("retrain-tune-results-damaged", RT, "damaged Ray Tune results", kind="corrupt",
     setup=both(exp_file("tuner.pkl", b"not a pickle"),
                write("results/exp/experiment_state-2026-01-01_00-00-00.json", "{")))
case("retrain-settings-a-list", RT, "experiment.json", "expected a JSON object",
     kind="corrupt", setup=exp_file("experiment.json", "[]"))
case("retrain-splits-missing", RT, "splits.csv", "no such file", kind="corrupt",
     setup=experiment(splits=False))
case("retrain-splits-binary", RT, "splits.csv", "UTF-8", kind="corrupt",
     setup=exp_file("splits.csv", bytes(range(256))))
case("retrain-data-gone", RT, "{tmp}/ds", "no such", kind="path",
     setup=both(experiment(), lambda t: (t / "ds").rename(t / "gone")))
case("retrain-best-is-a-file", RT, "best", "not a folder", kind="lost-work",
     setup=exp_file("best", "x"))
case("retrain-device-meta", RT + " --device meta", "--device meta", kind="silent",
     setup=experiment())

# ------------------------------------------------------------------ report
RP = "report {tmp}/results/exp"
case("report-missing", "report {tmp}/nope", "nope", "not an experiment folder", kind="path")
case("report-no-trials", RP, "no trials.csv", kind="path",
     setup=both(experiment(), lambda t: (t / "results/exp/trials.csv").unlink()))
case("report-trials-empty", RP, "trials.csv", "no trials", kind="corrupt",
     setup=exp_file("trials.csv", b""))
case("report-trials-binary", RP, "trials.csv", "UTF-8", kind="corrupt",
     setup=exp_file("trials.csv", bytes(range(256)) * 8))
case("report-trials-missing-status", RP, "trials.csv", "status", kind="corrupt",
     setup=exp_file("trials.csv", bf.trials_table().drop(columns=["status"])
                    .to_csv(index=False)))
case("report-settings-a-list", RP, "experiment.json", "expected a JSON object",
     kind="corrupt", setup=exp_file("experiment.json", "[]"))
case("report-settings-invalid-json", RP, "experiment.json", "not valid JSON", kind="corrupt",
     setup=exp_file("experiment.json", "{"))
case("report-best-metrics-corrupt", RP, "metrics.json", "not valid JSON", kind="corrupt",
     setup=exp_file("best/metrics.json", "{oops"))
case("report-folder-is-a-file", RP, "report", "not a folder", kind="lost-work",
     setup=exp_file("report", "x"))


def _html_escaped(tmp: Path, out: str, err: str) -> None:
    page = (tmp / "results/exp/report/index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


case("report-html-in-a-trial-is-escaped", RP, kind="hostile", rc=0,
     setup=exp_file("trials.csv", bf.trials_table(status="errored",
                                                  error="<script>alert(1)</script>")
                    .to_csv(index=False)),
     check=_html_escaped, creates=("results/exp/report/*",))

# ------------------------------------------------------------------ dashboard
DB = "dashboard {tmp}/results/exp"
case("dashboard-missing", "dashboard {tmp}/nope", "nope", "not an experiment folder",
     kind="path")
case("dashboard-port-zero", DB + " --port 0", "--port", kind="flag", setup=experiment())
case("dashboard-port-too-large", DB + " --port 70000", "--port", "65535", kind="flag",
     setup=experiment())
case("dashboard-settings-a-list", DB, "experiment.json", "expected a JSON object",
     kind="corrupt", setup=exp_file("experiment.json", "[]"))
case("dashboard-params-corrupt", DB, "params.json", "not valid JSON", kind="corrupt",
     setup=exp_file("trial_00001/params.json", "{"))

# One real process per subcommand (the rest run in-process through the same `main`).
IN_A_PROCESS = ("labels-not-utf8", "synth-out-below-a-file", "train-png-bomb-in-data",
                "predict-png-bomb-beside-a-good-image", "space-bad-yaml",
                "retrain-best-is-a-file", "report-trials-binary", "dashboard-port-too-large")

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
assert set(IN_A_PROCESS) <= {c.name for c in CASES}

if __name__ == "__main__":  # python -m tests.gender_cli.catalogue: the table's size
    kinds = pd.Series([c.kind for c in CASES]).value_counts()
    commands = pd.Series([c.argv.split()[0] if c.argv else "-" for c in CASES]).value_counts()
    print(f"{len(CASES)} cases\n{kinds.to_string()}\n{commands.to_string()}", file=sys.stdout)
