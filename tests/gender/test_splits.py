"""Splits: identity-disjoint, stratified, reproducible; splits.csv round trip; rebalancing."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gender.data.layouts import DatasetIndex, Sample, read_dataset
from gender.data.splits import (
    SPLITS,
    make_splits,
    pos_weight,
    read_splits,
    undersample_indices,
    write_splits,
)
from gender.errors import ConfigError, DataError

REAL_DATA = Path(__file__).parents[2].parent / "shared/data/celeba-gender"


def make_index(root: Path, *, n_people=300, identities=True, male_share=0.4, seed=0,
               partition=None) -> DatasetIndex:
    """People with 1-6 images each, one gender per person, unbalanced classes on purpose."""
    rng = np.random.default_rng(seed)
    samples = []
    for person in range(n_people):
        label = int(rng.random() < male_share)
        for k in range(int(rng.integers(1, 7))):
            samples.append(Sample(f"Images/{person:04d}_{k}.jpg", label,
                                  str(person) if identities else None, partition))
    return DatasetIndex(root, "labels-csv", sorted(samples, key=lambda s: s.name), {})


def balanced_index(root: Path, per_class: int) -> DatasetIndex:
    samples = [Sample(f"Images/{i:04d}.jpg", i % 2, None, None) for i in range(2 * per_class)]
    return DatasetIndex(root, "labels-csv", samples, {})


# ---------------------------------------------------------------- make_splits

def test_no_identity_lands_in_two_splits(tmp_path):
    df = make_splits(make_index(tmp_path))
    assert df.groupby("identity").split.nunique().max() == 1


@pytest.mark.parametrize("identities", [True, False])
def test_class_ratio_and_size_of_each_split_follow_the_whole(tmp_path, identities):
    fractions = (0.7, 0.15, 0.15)
    df = make_splits(make_index(tmp_path, identities=identities), seed=3, fractions=fractions)
    overall = df.label.mean()
    for name, fraction in zip(SPLITS, fractions, strict=True):
        part = df[df.split == name]
        assert abs(part.label.mean() - overall) < 0.03, name
        assert abs(len(part) / len(df) - fraction) < 0.02, name


def test_split_sizes_follow_custom_fractions(tmp_path):
    df = make_splits(make_index(tmp_path), fractions=(0.5, 0.3, 0.2))
    shares = df.split.value_counts(normalize=True)
    assert shares.to_dict() == pytest.approx({"train": 0.5, "val": 0.3, "test": 0.2}, abs=0.02)


def test_rows_follow_index_order_with_expected_columns(tmp_path):
    index = make_index(tmp_path)
    df = make_splits(index)
    assert list(df.columns) == ["image", "label", "identity", "split"]
    assert list(df.image) == [s.name for s in index.samples]
    assert list(df.label) == [s.label for s in index.samples]


def test_same_seed_gives_same_splits(tmp_path):
    index = make_index(tmp_path)
    assert make_splits(index, seed=1).equals(make_splits(index, seed=1))


def test_other_seed_gives_other_splits(tmp_path):
    index = make_index(tmp_path)
    assert not make_splits(index, seed=1).split.equals(make_splits(index, seed=2).split)


def test_partition_of_every_sample_is_honoured(tmp_path):
    index = make_index(tmp_path)
    parts = ["train", "val", "test"]
    index.samples = [Sample(s.name, s.label, s.identity, parts[i % 3])
                     for i, s in enumerate(index.samples)]
    df = make_splits(index, seed=5)
    assert list(df.split) == [s.partition for s in index.samples]


def test_celeba_partition_file_decides_the_split(tmp_path):
    root, rng = tmp_path / "celeba", np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True)
    attrs = [f"A{i}" for i in range(20)] + ["Male"] + [f"A{i}" for i in range(21, 40)]
    rows, partition = [], {}
    for i in range(120):
        name = f"{i:06d}.jpg"
        noise = rng.integers(0, 255, (8, 8), dtype=np.uint8)  # distinct: no duplicates
        Image.fromarray(noise).save(root / "img_align_celeba" / name)
        values = ["-1"] * 40
        values[20] = "1" if i % 2 else "-1"
        rows.append(f"{name} " + " ".join(values))
        partition[name] = 0 if i < 60 else 1 if i < 90 else 2
    (root / "list_attr_celeba.txt").write_text("\n".join(["120", " ".join(attrs)] + rows))
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in partition.items()))
    df = make_splits(read_dataset(root))
    assert df.split.value_counts().to_dict() == {"train": 60, "val": 30, "test": 30}
    assert list(df.split[:3]) == ["train"] * 3 and df.split.iloc[-1] == "test"


def test_a_partition_file_covering_part_of_the_images_is_refused(tmp_path):
    # Neither the publisher's split nor a seeded one: a silent fallback would hide it.
    index = make_index(tmp_path)
    index.samples[0] = Sample(index.samples[0].name, index.samples[0].label,
                              index.samples[0].identity, "test")
    with pytest.raises(DataError, match=rf"list_eval_partition.txt: covers 1 of "
                                        rf"{len(index.samples)} labelled images"):
        make_splits(index)


def test_no_partition_at_all_gets_a_seeded_identity_disjoint_split(tmp_path):
    df = make_splits(make_index(tmp_path))
    assert set(df.split) == set(SPLITS)
    assert df.groupby("identity").split.nunique().max() == 1


@pytest.mark.parametrize("fractions", [
    (0.5, 0.5), (0.7, 0.2, 0.2), (1.0, 0.0, 0.0), (1.2, -0.1, -0.1), ("a", "b", "c"), 0.7,
])
def test_bad_fractions_are_refused_naming_the_rule(tmp_path, fractions):
    with pytest.raises(ConfigError, match="three positive numbers summing to 1"):
        make_splits(make_index(tmp_path), fractions=fractions)


def test_too_few_images_per_class_is_refused(tmp_path):
    with pytest.raises(DataError, match="too small to split: 19 male and 19 female"):
        make_splits(balanced_index(tmp_path, 19))


def test_twenty_images_per_class_is_enough(tmp_path):
    df = make_splits(balanced_index(tmp_path, 20))
    assert df.groupby("split").label.nunique().to_dict() == {"test": 2, "train": 2, "val": 2}


def test_split_missing_a_class_is_refused(tmp_path):
    index = balanced_index(tmp_path, 30)
    # The given partition puts only female images in val.
    index.samples = [Sample(s.name, s.label, None, "val" if s.label == 0 and i < 10
                            else "test" if i % 3 == 0 else "train")
                     for i, s in enumerate(index.samples)]
    with pytest.raises(DataError, match="too small to split: the val split has no male"):
        make_splits(index)


# ---------------------------------------------------------------- splits.csv

def test_written_splits_read_back_equal(tmp_path):
    index = make_index(tmp_path)
    df = make_splits(index)
    write_splits(df, tmp_path / "out" / "splits.csv")
    assert read_splits(tmp_path / "out" / "splits.csv", index).equals(df)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["splits.csv"]  # no temp file


def test_written_splits_without_identities_read_back_equal(tmp_path):
    index = make_index(tmp_path, identities=False)
    df = make_splits(index)
    write_splits(df, tmp_path / "splits.csv")
    back = read_splits(tmp_path / "splits.csv", index)
    assert back.equals(df) and back.identity.isna().all()


def _splits_file(tmp_path, index, edit):
    path = tmp_path / "splits.csv"
    write_splits(make_splits(index), path)
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def _set_field(column, value):
    """An edit of line 3 of splits.csv (image,label,identity,split)."""
    def edit(lines):
        fields = lines[2].split(",")
        fields[column] = value
        lines[2] = ",".join(fields)
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set_field(0, "Images/elsewhere.jpg"), "line 3: image 'Images/elsewhere.jpg' is not in"),
    (_set_field(1, "7"), "line 3: label '7'"),
    (_set_field(3, "holdout"), "line 3: split 'holdout'"),
    (lambda ls: ls.append(ls[1]), "listed again (first on line 2)"),
    (lambda ls: ls.__setitem__(0, "image,label,identity"), "missing column(s) split"),
    (lambda ls: ls.__delitem__(slice(1, None)), "no rows"),
])
def test_bad_splits_file_is_refused_naming_file_and_line(tmp_path, edit, message):
    index = make_index(tmp_path)
    path = _splits_file(tmp_path, index, edit)
    with pytest.raises(DataError) as err:
        read_splits(path, index)
    assert str(err.value).startswith(str(path)) and message in str(err.value), str(err.value)


def test_splits_file_with_a_wrong_label_is_refused(tmp_path):
    index = make_index(tmp_path)
    path = tmp_path / "splits.csv"
    df = make_splits(index)
    df.loc[4, "label"] = 1 - df.label[4]
    write_splits(df, path)
    with pytest.raises(DataError, match=f"line 6: label '{df.label[4]}' for {df.image[4]}"):
        read_splits(path, index)


def test_missing_splits_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_splits(tmp_path / "splits.csv", make_index(tmp_path))


# ---------------------------------------------------------------- rebalancing

def test_undersample_equalises_the_classes_of_the_given_rows_only():
    labels = np.array([0] * 70 + [1] * 30 + [0] * 50)
    train = np.arange(100)  # rows 100.. (val/test) are never touched
    kept = undersample_indices(train, labels, seed=0)
    assert np.bincount(labels[kept]).tolist() == [30, 30]
    assert set(kept) <= set(train) and list(kept) == sorted(kept)


def test_undersample_is_deterministic_per_seed():
    labels = np.array([0] * 70 + [1] * 30)
    idx = np.arange(100)
    assert np.array_equal(undersample_indices(idx, labels, 1), undersample_indices(idx, labels, 1))
    assert not np.array_equal(undersample_indices(idx, labels, 1),
                              undersample_indices(idx, labels, 2))


def test_pos_weight_is_female_count_over_male_count_and_needs_both_classes():
    assert pos_weight([0, 0, 0, 1]) == pytest.approx(3)
    with pytest.raises(DataError, match="both classes"):
        pos_weight([1, 1])


# ---------------------------------------------------------------- the real dataset

@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")
def test_real_dataset_splits_are_identity_disjoint_and_stratified():
    df = make_splits(read_dataset(REAL_DATA), seed=0)
    assert df.identity.notna().all()
    assert df.groupby("identity").split.nunique().max() == 1
    overall = df.label.mean()
    assert all(abs(df[df.split == s].label.mean() - overall) < 0.02 for s in SPLITS)
