"""Read a face-gender dataset from disk into a `DatasetIndex`, whatever its layout.

Three layouts are recognised, checked in this order:

- ``celeba``: CelebA as published, ``img_align_celeba/`` + ``list_attr_celeba.txt`` (label =
  the ``Male`` attribute), optionally ``list_eval_partition.txt`` and ``identity_CelebA.txt``.
- ``labels-csv``: ``Images/`` (or ``images/``) + ``labels.csv`` with columns ``Image,Male``,
  optionally ``identity_CelebA.txt``.
- ``class-folders``: ``female/`` and ``male/`` folders of images.

The labels file is the truth: images without a label row are ignored ("unlabelled"), and of
byte-identical image files only one is kept (the others are ignored as "duplicate").
Anything inconsistent in the files raises `DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gender.constants import IMAGE_EXTENSIONS
from gender.errors import DataError, UserError
from gender.io import read_text

__all__ = [
    "IMAGE_EXTENSIONS",
    "PARTITION_FILE",
    "DatasetIndex",
    "Sample",
    "describe",
    "detect_layout",
    "read_dataset",
]

_PARTITIONS = {"0": "train", "1": "val", "2": "test"}
PARTITION_FILE = "list_eval_partition.txt"


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    name: str  # path relative to the dataset root, posix, e.g. "Images/000051.jpg"
    label: int  # 1 = male, 0 = female
    identity: str | None = None  # person id when known
    partition: str | None = None  # "train" | "val" | "test" from a partition file


@dataclass
class DatasetIndex:
    """The labelled images of a dataset, plus what was left out and why."""

    root: Path
    layout: str  # "celeba" | "labels-csv" | "class-folders"
    samples: list[Sample]  # sorted by name
    ignored: dict[str, list[str]] = field(default_factory=dict)  # reason -> names

    def path(self, s: Sample) -> Path:
        return self.root / s.name

    def fingerprint(self) -> str:
        """Short sha256 of layout, labels and file sizes: changes when the data does.

        Sizes stand in for content so that fingerprinting 200k images stays a stat() each.
        The root is left out on purpose: a moved copy of the same data keeps its fingerprint.
        """
        h = hashlib.sha256(self.layout.encode())
        for s in sorted(self.samples, key=lambda s: s.name):
            size = self.path(s).stat().st_size
            h.update(f"\n{s.name}\t{s.label}\t{s.identity}\t{s.partition}\t{size}".encode())
        return h.hexdigest()[:16]

    def counts(self) -> dict:
        male = sum(s.label for s in self.samples)
        ids = {s.identity for s in self.samples if s.identity is not None}
        return {"total": len(self.samples), "male": male, "female": len(self.samples) - male,
                "identities": len(ids) if ids else None}


# ---------------------------------------------------------------- layout detection

def detect_layout(root) -> str:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: not a folder (a dataset is a folder of images and labels)")
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    if (root / "img_align_celeba").is_dir() and (root / "list_attr_celeba.txt").is_file():
        return "celeba"
    if _images_dir(root) is not None and (root / "labels.csv").is_file():
        return "labels-csv"
    if (root / "male").is_dir() and (root / "female").is_dir():
        return "class-folders"
    raise DataError(f"{root}: no known dataset layout (expected img_align_celeba/ + "
                    "list_attr_celeba.txt, Images/ + labels.csv, or male/ + female/)")


def _images_dir(root: Path) -> Path | None:
    for name in ("Images", "images"):
        if (root / name).is_dir():
            return root / name
    return None


# ---------------------------------------------------------------- reading

def read_dataset(root) -> DatasetIndex:
    root = Path(root)
    layout = detect_layout(root)
    if layout == "celeba":
        folder, labels = root / "img_align_celeba", _read_list_attr(root / "list_attr_celeba.txt")
    elif layout == "labels-csv":
        folder, labels = _images_dir(root), _read_labels_csv(root / "labels.csv")
    else:
        return _read_class_folders(root)

    # Labels are keyed by bare file name; optional side files add identity and partition.
    identities = _read_name_value_file(root / "identity_CelebA.txt")
    partitions = _read_name_value_file(root / PARTITION_FILE, _PARTITIONS)
    labels_file = root / ("list_attr_celeba.txt" if layout == "celeba" else "labels.csv")
    images, others = _list_images(folder)
    missing = [(line, n) for n, (_, line) in labels.items() if n not in images]
    if missing:
        line, name = min(missing)
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{labels_file} line {line}: image {name} not found in "
                        f"{folder.name}/{more}")

    prefix = folder.name + "/"
    kept, dups = _drop_duplicates(folder, sorted(images), set(labels))
    samples = [Sample(prefix + n, labels[n][0], identities.get(n), partitions.get(n))
               for n in kept if n in labels]
    ignored = {"unlabelled": [prefix + n for n in kept if n not in labels],
               "duplicate": [prefix + n for n in dups],
               "not an image": [prefix + n for n in others]}
    return _finish(root, layout, samples, ignored, labels_file)


def _read_class_folders(root: Path) -> DatasetIndex:
    # Both folders are listed together so a file copied into both counts as a duplicate.
    names, not_images = [], []
    for cls in ("female", "male"):
        images, others = _list_images(root / cls)
        names += [f"{cls}/{n}" for n in images]
        not_images += [f"{cls}/{n}" for n in others]
    names.sort()
    kept, dups = _drop_duplicates(root, names, set(names))
    samples = [Sample(n, int(n.startswith("male/"))) for n in kept]
    ignored = {"duplicate": dups, "not an image": sorted(not_images)}
    return _finish(root, "class-folders", samples, ignored, root)


def _finish(root, layout, samples, ignored, source) -> DatasetIndex:
    if not samples:
        raise DataError(f"{source}: no labelled images left")
    classes = {s.label for s in samples}
    if len(classes) == 1:
        only = "male" if 1 in classes else "female"
        raise DataError(f"{source}: only one class ({only}) among {len(samples)} images; "
                        "a gender classifier needs both")
    samples.sort(key=lambda s: s.name)
    return DatasetIndex(root, layout, samples, {k: v for k, v in ignored.items() if v})


def _list_images(folder: Path) -> tuple[set[str], list[str]]:
    """(image file names, other file names) directly inside `folder`."""
    images, others = set(), []
    for p in folder.iterdir():
        if not p.is_file() or p.name.startswith("."):
            continue  # sub-folders are not part of any layout; dot files are OS clutter
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            images.add(p.name)
        else:
            others.append(p.name)
    return images, sorted(others)


def _drop_duplicates(folder: Path, names: list[str], labelled: set[str]):
    """Split sorted `names` into (kept, duplicates) by file content.

    Of each identical group the first labelled name is kept; in a group without labels the
    shortest name, as `x.jpg` is more likely the original than `x(1).jpg`.
    """
    dups = set()
    for group in _identical_groups(folder, names):
        keep = min(group, key=lambda n: (0, 0, n) if n in labelled else (1, len(n), n))
        dups.update(n for n in group if n != keep)
    return [n for n in names if n not in dups], sorted(dups)


def _identical_groups(folder: Path, names: list[str]) -> list[list[str]]:
    """Groups (of 2 or more) of byte-identical files.

    Candidates are narrowed by size, then by a hash of the first 8 KiB, and only files that
    still collide are read whole: JPEG sizes collide a lot in a 200k-image folder.
    """
    keys = (lambda p: p.stat().st_size,
            lambda p: hashlib.sha1(_head(p)).digest(),
            lambda p: hashlib.sha1(p.read_bytes()).digest())
    groups = [names]
    for key in keys:
        narrowed = []
        for group in groups:
            buckets = defaultdict(list)
            for n in group:
                buckets[key(folder / n)].append(n)
            narrowed += [b for b in buckets.values() if len(b) > 1]
        groups = narrowed
    return groups


def _head(path: Path, size: int = 8192) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


# ---------------------------------------------------------------- label files

def _check_name(name: str, file: Path, line: int) -> str:
    # Names must be bare file names: anything else could reach outside the images folder.
    if not name or name in (".", "..") or PurePosixPath(name).name != name or "\\" in name:
        raise DataError(f"{file} line {line}: image name {name!r} is not a bare file name "
                        "inside the images folder (no folders, '..' or absolute paths)")
    if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(f"{file} line {line}: {name!r} is not an image file "
                        f"(expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return name


def _add_label(labels: dict, name: str, label: int, file: Path, line: int) -> None:
    if name in labels:
        raise DataError(f"{file} line {line}: duplicate row for {name} "
                        f"(first on line {labels[name][1]})")
    labels[name] = (label, line)


def _lines(file: Path, what: str) -> list[str]:
    """A text file's physical lines (UTF-8, or one DataError line naming the file)."""
    try:
        text = read_text(file, what)
    except UserError as e:
        raise DataError(str(e)) from None
    return [ln.removesuffix("\r") for ln in text.split("\n")]


def _csv_row(text: str, file: Path, line: int) -> list[str]:
    """One physical line as CSV fields. A label row never spans lines, so a quote left open
    is an error on its own line (csv would read on to the end of the file and blame it)."""
    if "\0" in text:
        raise DataError(f"{file} line {line}: contains a NUL byte (binary data, not CSV text)")
    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error as e:
        why = ("unclosed quote (a quoted field must end on its own line)"
               if "end of data" in str(e) else f"not valid CSV ({e})")
        raise DataError(f"{file} line {line}: {why}") from None


def _read_labels_csv(file: Path) -> dict[str, tuple[int, int]]:
    """labels.csv -> {file name: (label, line)}. Male is 0/1 or -1/1, never both 0 and -1."""
    labels, female_values = {}, {}
    lines = _lines(file, "labels file (CSV with columns Image,Male)")
    header = [c.strip() for c in _csv_row(lines[0], file, 1)]
    if not any(header):
        raise DataError(f"{file}: empty file (expected a header with columns Image,Male)")
    for col in ("Image", "Male"):
        if col not in header:
            raise DataError(f"{file}: missing column {col!r} (header: {', '.join(header)})")
    i_img, i_male = header.index("Image"), header.index("Male")
    for line, text in enumerate(lines[1:], start=2):
        row = _csv_row(text, file, line)
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{file} line {line}: {len(row)} fields, header has "
                            f"{len(header)}")
        name, value = _check_name(row[i_img].strip(), file, line), row[i_male].strip()
        if value not in ("0", "1", "-1"):
            raise DataError(f"{file} line {line}: Male value {value!r} for {name} "
                            "(expected 0/1 or -1/1)")
        if value != "1":
            female_values.setdefault(value, line)
        _add_label(labels, name, int(value == "1"), file, line)
    if len(female_values) > 1:
        raise DataError(f"{file} line {max(female_values.values())}: Male column mixes 0 and "
                        "-1 (use 0/1 or -1/1)")
    if not labels:
        raise DataError(f"{file}: no label rows")
    return labels


def _read_list_attr(file: Path) -> dict[str, tuple[int, int]]:
    """CelebA's list_attr_celeba.txt -> {file name: (Male label, line)}."""
    lines = _lines(file, "CelebA attribute list")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2:
        raise DataError(f"{file}: empty file (expected a count line and an attribute line)")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{file} line 1: expected the number of images, got {lines[0]!r}") from None
    attrs = lines[1].split()
    if "Male" not in attrs:
        raise DataError(f"{file} line 2: no 'Male' attribute among the attribute names")
    i_male, width = attrs.index("Male") + 1, len(attrs) + 1
    labels = {}
    for line, text in enumerate(lines[2:], start=3):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != width:
            raise DataError(f"{file} line {line}: {len(fields)} fields, expected {width} "
                            f"(name + {len(attrs)} attributes)")
        if not set(fields[1:]) <= {"-1", "1"}:
            raise DataError(f"{file} line {line}: attribute values must be -1 or 1")
        name = _check_name(fields[0], file, line)
        _add_label(labels, name, int(fields[i_male] == "1"), file, line)
    if declared != len(labels):
        raise DataError(f"{file} line 1: says {declared} images but the file has "
                        f"{len(labels)} rows")
    return labels


def _read_name_value_file(file: Path, allowed: dict[str, str] | None = None) -> dict[str, str]:
    """`name value` per line (identity or partition file) -> {name: value}; {} if absent.

    Rows for names without a label are harmless (the file may cover the full dataset).
    With `allowed`, values are mapped through it and must be among its keys.
    """
    if not file.is_file():
        return {}
    out, first_line = {}, {}
    for line, text in enumerate(_lines(file, "list of '<image> <value>' lines"), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(f"{file} line {line}: expected '<image> <value>', got {text!r}")
        name, value = fields
        if allowed is not None:
            if value not in allowed:
                raise DataError(f"{file} line {line}: value {value!r} for {name} "
                                f"(expected one of {', '.join(allowed)})")
            value = allowed[value]
        if name in out and out[name] != value:
            raise DataError(f"{file} line {line}: {name} listed again with a different value "
                            f"(first on line {first_line[name]})")
        out[name] = value
        first_line.setdefault(name, line)
    return out


# ---------------------------------------------------------------- report

def describe(index: DatasetIndex) -> str:
    """Human summary for `gender data check`."""
    c = index.counts()
    total = c["total"]
    lines = [f"dataset      {index.root}",
             f"layout       {index.layout}",
             (f"images       {total} labelled: {c['male']} male ({c['male'] / total:.1%}), "
              f"{c['female']} female ({c['female'] / total:.1%})")]
    if c["identities"] is None:
        lines.append("identities   unknown (splits will not be identity-disjoint)")
    else:
        per_id = sorted(Counter(s.identity for s in index.samples
                                if s.identity is not None).values())
        no_id = sum(s.identity is None for s in index.samples)
        lines.append(f"identities   {c['identities']}; images per identity min {per_id[0]} / "
                     f"median {statistics.median(per_id):g} / max {per_id[-1]}"
                     + (f"; {no_id} images without identity" if no_id else ""))
    parts = Counter(s.partition for s in index.samples)
    if set(parts) != {None}:
        text = ", ".join(f"{p} {parts[p]}" for p in ("train", "val", "test"))
        if parts[None]:
            text += f", none {parts[None]}"
        lines.append(f"partition    {text}")
    for reason, names in sorted(index.ignored.items()):
        examples = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"ignored      {len(names)} {reason}: {examples}")
    lines.append(f"fingerprint  {index.fingerprint()}")
    return "\n".join(lines)
