"""Train/val/test splits: stratified by label, identity-disjoint, reproducible per seed.

A split that puts one person in both train and test overstates accuracy, so when a dataset
knows identities every person lands in exactly one split. The assignment is a seeded greedy
fill (largest identities first, each to the split whose per-class target it helps most)
rather than sklearn's StratifiedGroupKFold, because the latter only makes equal folds and
our fractions are not (0.7/0.15/0.15).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from gender.constants import SPLIT_FRACTIONS, SPLITS
from gender.data.layouts import PARTITION_FILE, DatasetIndex, Sample
from gender.errors import ConfigError, DataError, UserError
from gender.io import atomic_path, read_text

__all__ = [
    "MIN_PER_CLASS",
    "SPLITS",
    "make_splits",
    "pos_weight",
    "read_splits",
    "undersample_indices",
    "write_splits",
]

MIN_PER_CLASS = 20  # below this, a 15% split may hold no image of a class at all
_COLUMNS = ["image", "label", "identity", "split"]


def make_splits(index: DatasetIndex, seed: int = 0,
                fractions=SPLIT_FRACTIONS) -> pd.DataFrame:
    """One row per sample (in `index.samples` order): image, label, identity, split.

    Uses the dataset's own partition file when there is one (it must then cover every
    sample); otherwise a seeded split, stratified by label and grouped by identity where
    identities are known.
    """
    fractions = _check_fractions(fractions)
    c = index.counts()
    if min(c["male"], c["female"]) < MIN_PER_CLASS:
        raise DataError(f"{index.root}: dataset too small to split: {c['male']} male and "
                        f"{c['female']} female images, need at least {MIN_PER_CLASS} of each")
    covered = [s for s in index.samples if s.partition is not None]
    if covered and len(covered) < len(index.samples):
        # Half a partition is neither the publisher's split nor ours: say so, don't guess.
        first = next(s.name for s in index.samples if s.partition is None)
        raise DataError(f"{index.root / PARTITION_FILE}: covers {len(covered)} of "
                        f"{len(index.samples)} labelled images ({first} has no row); give "
                        "every image a partition, or remove the file for a seeded split")
    if covered:
        split = [s.partition for s in index.samples]
    else:
        split = _assign(index.samples, seed, fractions)
    df = pd.DataFrame({"image": [s.name for s in index.samples],
                       "label": [s.label for s in index.samples],
                       "identity": pd.Series([s.identity for s in index.samples], dtype=object),
                       "split": split})
    for name in SPLITS:
        labels = set(df.label[df.split == name])
        if labels != {0, 1}:
            lacking = "any image" if not labels else "male" if 0 in labels else "female"
            raise DataError(f"{index.root}: dataset too small to split: the {name} split has "
                            f"no {lacking} images (too few images or identities)")
    return df


def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        fr = ()
    if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1 "
                          f"(train, val, test), got {fractions!r}")
    return fr


def _assign(samples: list[Sample], seed: int, fractions) -> list[str]:
    # A person is a group; without an identity each image is its own group.
    groups = defaultdict(list)
    for i, s in enumerate(samples):
        groups[("id", s.identity) if s.identity is not None else ("img", s.name)].append(i)
    order = list(groups.values())
    order = [order[j] for j in np.random.default_rng(seed).permutation(len(order))]
    order.sort(key=len, reverse=True)  # big groups first, while small ones can still even out

    n_class = [0, 0]
    for s in samples:
        n_class[s.label] += 1
    target = [[f * n for n in n_class] for f in fractions]  # target[split][label]
    have = [[0, 0] for _ in SPLITS]
    out = [""] * len(samples)
    for members in order:
        g = [0, 0]
        for i in members:
            g[samples[i].label] += 1

        # Join the split where the squared distance to the per-class targets grows least.
        cost = [sum(g[c] * (2 * (h[c] - t[c]) + g[c]) for c in (0, 1))
                for h, t in zip(have, target, strict=True)]
        k = cost.index(min(cost))
        have[k] = [have[k][c] + g[c] for c in (0, 1)]
        for i in members:
            out[i] = SPLITS[k]
    return out


def write_splits(df: pd.DataFrame, path) -> None:
    """Write image,label,identity,split as CSV; atomically, so a crash leaves no half file."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        df.reindex(columns=_COLUMNS).to_csv(f, index=False)


def read_splits(path, index: DatasetIndex) -> pd.DataFrame:
    """Read a splits CSV back, checking each row against the dataset it claims to split.

    Identities come from `index`, not the file. Rows may cover a subset of the dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    by_name = {s.name: s for s in index.samples}
    rows, first_line = [], {}
    try:
        text = read_text(path, "splits table")
    except UserError as e:
        raise DataError(str(e)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("image", "label", "split") if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} "
                        "(expected image,label,split)")
    for line, row in _rows(reader, path):
        image = row["image"]
        s = by_name.get(image)
        if s is None:
            raise DataError(f"{path} line {line}: image {image!r} is not in the dataset "
                            f"at {index.root}")
        if row["label"] != str(s.label):
            raise DataError(f"{path} line {line}: label {row['label']!r} for {image}, "
                            f"but the dataset says {s.label}")
        if row["split"] not in SPLITS:
            raise DataError(f"{path} line {line}: split {row['split']!r} "
                            f"(expected one of {', '.join(SPLITS)})")
        if image in first_line:
            raise DataError(f"{path} line {line}: {image} listed again "
                            f"(first on line {first_line[image]})")
        first_line[image] = line
        rows.append((image, s.label, s.identity, row["split"]))
    if not rows:
        raise DataError(f"{path}: no rows")
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df["identity"] = df["identity"].astype(object)
    return df


def _rows(reader: csv.DictReader, path: Path):
    """(line number, row) per row; broken CSV is a DataError naming the line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{path} line {reader.line_num}: not valid CSV ({e})") from None
        yield reader.line_num, row


def undersample_indices(idx: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Rows `idx` with random majority-class rows dropped until both classes are equal
    (sorted; seeded). Applied to the training rows only, never to val or test."""
    y = np.asarray(labels)[idx].astype(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        raise DataError("cannot undersample: the training rows hold only one class")
    majority = int(counts.argmax())
    rows = idx[y == majority]
    drop = np.random.default_rng(seed).choice(rows, counts.max() - counts.min(), replace=False)
    return np.sort(np.setdiff1d(idx, drop))


def pos_weight(labels: Iterable[int]) -> float:
    """`pos_weight` for `BCEWithLogitsLoss` (male = positive): female count / male count."""
    y = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    male = int(np.sum(y.astype(int)))
    female = len(y) - male
    if not male or not female:
        raise DataError(f"the training rows need both classes, got {female} female and "
                        f"{male} male labels")
    return female / male
