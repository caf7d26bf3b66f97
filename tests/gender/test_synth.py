"""gender.data.synth: synthetic faces in CelebA's layout, byte-stable per seed."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from gender.data.layouts import read_dataset
from gender.data.synth import CELEBA_ATTRIBUTES, synth_args, synthesize
from gender.errors import ConfigError, UserError

N, SIZE = 60, 32
TEXT_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt",
              "README.md")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def _male(out: Path) -> dict[str, int]:
    rows = _rows(out / "list_attr_celeba.txt")
    i = rows[1].index("Male") + 1
    return {r[0]: int(r[i]) for r in rows[2:]}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "faces", n=N, seed=0, size=SIZE)


# ---------------------------------------------------------------- determinism

def test_same_seed_gives_byte_identical_files(out, tmp_path):
    again = synthesize(tmp_path / "again", n=N, seed=0, size=SIZE)
    assert _files(again) == _files(out)


def test_drawing_in_several_processes_gives_the_same_files(out, tmp_path, monkeypatch):
    import gender.data.synth as synth

    monkeypatch.setattr(synth.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(synth, "_PER_WORKER", 7)  # N images over 3 processes, not 1
    assert synth._worker_count(N) == 3
    assert _files(synthesize(tmp_path / "again", n=N, seed=0, size=SIZE)) == _files(out)


def test_other_seed_gives_other_images(out, tmp_path):
    other = _files(synthesize(tmp_path / "other", n=N, seed=1, size=SIZE))
    mine = _files(out)
    assert other.keys() == mine.keys()
    images = [k for k in mine if k.endswith(".png")]
    assert sum(other[k] != mine[k] for k in images) == len(images)


def test_label_noise_flips_only_male_labels(tmp_path):
    clean = synthesize(tmp_path / "clean", n=N, seed=0, size=SIZE, label_noise=0.0)
    noisy = synthesize(tmp_path / "noisy", n=N, seed=0, size=SIZE, label_noise=0.2)
    a, b = _files(clean), _files(noisy)
    assert {k: v for k, v in a.items() if k.endswith(".png")} == \
           {k: v for k, v in b.items() if k.endswith(".png")}
    for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
        assert a[name] == b[name]
    ma, mb = _male(clean), _male(noisy)
    assert sum(ma[k] != mb[k] for k in ma) == round(0.2 * N)


# ---------------------------------------------------------------- layout

def test_attribute_file_has_count_header_and_one_row_per_image(out):
    rows = _rows(out / "list_attr_celeba.txt")
    assert rows[0] == [str(N)]
    assert rows[1] == list(CELEBA_ATTRIBUTES)
    assert len(CELEBA_ATTRIBUTES) == 40 and CELEBA_ATTRIBUTES[20] == "Male"
    body = rows[2:]
    assert [r[0] for r in body] == [f"{i:06d}.png" for i in range(1, N + 1)]
    assert all(len(r) == 41 and set(r[1:]) <= {"-1", "1"} for r in body)


def test_every_listed_image_exists_as_an_rgb_png_of_the_size(out):
    files = sorted(p.name for p in (out / "img_align_celeba").iterdir())
    assert files == [f"{i:06d}.png" for i in range(1, N + 1)]
    for name in files[:5]:
        with Image.open(out / "img_align_celeba" / name) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (SIZE, SIZE))


def test_identity_and_partition_files_list_every_image(out):
    names = [f"{i:06d}.png" for i in range(1, N + 1)]
    identities = _rows(out / "identity_CelebA.txt")
    partitions = _rows(out / "list_eval_partition.txt")
    assert [r[0] for r in identities] == names and [r[0] for r in partitions] == names
    assert all(len(r) == 2 and r[1].isdigit() for r in identities)
    assert {r[1] for r in partitions} == {"0", "1", "2"}


def test_identities_have_one_to_six_images_and_one_partition(out):
    identity = dict(_rows(out / "identity_CelebA.txt"))
    partition = dict(_rows(out / "list_eval_partition.txt"))
    images, parts = defaultdict(int), defaultdict(set)
    for name, person in identity.items():
        images[person] += 1
        parts[person].add(partition[name])
    assert all(1 <= c <= 6 for c in images.values())
    assert all(len(p) == 1 for p in parts.values())


def test_partition_is_about_70_15_15(out):
    counts = defaultdict(int)
    for _, p in _rows(out / "list_eval_partition.txt"):
        counts[p] += 1
    # Whole identities (at most 6 images) move at a time, so shares are near, not exact.
    assert abs(counts["0"] - 0.70 * N) <= 6
    assert abs(counts["1"] - 0.15 * N) <= 6 and abs(counts["2"] - 0.15 * N) <= 6


def test_both_classes_present_in_balanced_proportion(out):
    male = list(_male(out).values())
    assert 0.35 <= male.count(1) / len(male) <= 0.65


def test_readme_says_what_produced_it(out):
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in text.lower()
    assert f"n={N}" in text and "seed=0" in text


def test_synth_args_reads_back_what_drew_an_output(out, tmp_path):
    assert synth_args(out) == {"n": N, "seed": 0, "size": SIZE}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("# my data\n")
    assert synth_args(tmp_path / "mine") is None  # not ours: never redrawn over
    assert synth_args(tmp_path / "absent") is None


def test_project_loader_reads_the_output(out):
    index = read_dataset(out)
    assert index.layout == "celeba" and len(index.samples) == N
    assert all(s.identity is not None and s.partition is not None for s in index.samples)


# ---------------------------------------------------------------- output folder

def test_writes_into_an_existing_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    synthesize(tmp_path / "empty", n=10, size=16)
    assert (tmp_path / "empty" / "list_attr_celeba.txt").is_file()


def test_replaces_an_earlier_output(tmp_path):
    synthesize(tmp_path / "d", n=20, size=16)
    synthesize(tmp_path / "d", n=12, size=16, seed=3)
    assert len(list((tmp_path / "d" / "img_align_celeba").iterdir())) == 12
    assert _rows(tmp_path / "d" / "list_attr_celeba.txt")[0] == ["12"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left


def test_refuses_a_non_empty_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        synthesize(tmp_path / "mine", n=10, size=16)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_refuses_an_earlier_output_with_foreign_files_added(tmp_path):
    synthesize(tmp_path / "d", n=10, size=16)
    (tmp_path / "d" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        synthesize(tmp_path / "d", n=10, size=16)


def test_refuses_a_file_as_output(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        synthesize(tmp_path / "f", n=10, size=16)


# ---------------------------------------------------------------- argument rules

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 9}, "n must be an integer >= 10"),
    ({"n": 20.0}, "n must be an integer >= 10"),
    ({"n": True}, "n must be an integer >= 10"),
    ({"size": 15}, "size must be an integer with 16 <= size <= 256"),
    ({"size": 257}, "size must be an integer with 16 <= size <= 256"),
    ({"label_noise": 0.5}, "label_noise must be a number with 0 <= label_noise < 0.5"),
    ({"label_noise": -0.01}, "label_noise must be a number with 0 <= label_noise < 0.5"),
    ({"label_noise": "0.1"}, "label_noise must be a number with 0 <= label_noise < 0.5"),
    ({"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_arguments_raise_config_error_naming_the_rule(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        synthesize(tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()
