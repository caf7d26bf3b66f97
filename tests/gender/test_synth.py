"""Synthetic faces: deterministic per seed, a complete CelebA layout, arguments checked."""

import hashlib

import pytest

from gender.data.layouts import read_dataset
from gender.data.synth import synthesize
from gender.errors import ConfigError, UserError


def digest(folder):
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("s") / "a", n=60, seed=1, size=32)


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    again = synthesize(tmp_path / "b", n=60, seed=1, size=32)
    assert digest(small) == digest(again)


def test_another_seed_gives_other_faces(small, tmp_path):
    other = synthesize(tmp_path / "c", n=60, seed=2, size=32)
    assert digest(small) != digest(other)


def test_layout_is_complete_and_consistent(small):
    lines = (small / "list_attr_celeba.txt").read_text().splitlines()
    assert int(lines[0]) == 60 == len(lines) - 2
    assert len(lines[1].split()) == 40 and "Male" in lines[1].split()
    images = sorted(p.name for p in (small / "img_align_celeba").iterdir())
    assert images == sorted(line.split()[0] for line in lines[2:])
    index = read_dataset(small)
    assert index.layout == "celeba" and len(index.samples) == 60
    # A person never appears in two partitions.
    where = {}
    for s in index.samples:
        assert where.setdefault(s.identity, s.partition) == s.partition


def test_both_classes_roughly_balanced(tmp_path):
    index = read_dataset(synthesize(tmp_path / "d", n=400, seed=0, size=32))
    male = sum(s.label for s in index.samples) / len(index.samples)
    assert 0.4 < male < 0.6


@pytest.mark.parametrize("kwargs,rule", [
    ({"n": 5}, "n must be"), ({"size": 8}, "size must be"), ({"size": 1024}, "size must be"),
    ({"label_noise": 0.5}, "label_noise must be"), ({"seed": -1}, "seed must be"),
])
def test_bad_arguments_are_refused_naming_the_rule(tmp_path, kwargs, rule):
    with pytest.raises(ConfigError, match=rule):
        synthesize(tmp_path / "x", **{"n": 20, **kwargs})


def test_refuses_to_overwrite_a_folder_that_is_not_synthetic(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        synthesize(tmp_path / "mine", n=20)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
