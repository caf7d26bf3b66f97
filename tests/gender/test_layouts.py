"""Reading datasets: each layout on real (tiny) files, and every broken input refused."""

import re
from pathlib import Path

import pytest
from PIL import Image

from gender.data.layouts import DatasetIndex, Sample, describe, detect_layout, read_dataset
from gender.errors import DataError

REAL_DATA = Path(__file__).parents[2].parent / "shared/data/celeba-gender"
ATTRS = [f"Attr{i}" for i in range(20)] + ["Male"] + [f"Attr{i}" for i in range(21, 40)]

_serial = iter(range(1, 1 << 24))


def write_image(path: Path) -> None:
    """An 8x8 image no other test image equals, so it is nobody's duplicate.

    The serial number is drawn as black/white pixels: nearby solid colours would compress to
    the same JPEG bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    v = next(_serial)
    img = Image.new("L", (8, 8), 128)
    img.putdata([255 * (v >> k & 1) for k in range(24)] + [128] * 40)
    img.save(path, quality=95)


def make_labels_csv(root: Path, rows, *, folder="Images", create=True, identities=None):
    """Images/ + labels.csv; `rows` are (name, Male value); each named image is created."""
    for name, _ in rows:
        if create:
            write_image(root / folder / name)
    (root / folder).mkdir(parents=True, exist_ok=True)
    lines = ["Image,Male,Young"] + [f"{name},{male},1" for name, male in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    if identities:
        (root / "identity_CelebA.txt").write_text(
            "".join(f"{n} {i}\n" for n, i in identities.items()))
    return root


def mixed_rows(n_female=3, n_male=3):
    return ([(f"f{i:03d}.jpg", 0) for i in range(n_female)]
            + [(f"m{i:03d}.jpg", 1) for i in range(n_male)])


def make_celeba(root: Path, rows, *, count=None, partitions=None, identities=None):
    """img_align_celeba/ + list_attr_celeba.txt; `rows` are (name, male as -1/1)."""
    for name, _ in rows:
        write_image(root / "img_align_celeba" / name)
    lines = [str(len(rows) if count is None else count), " ".join(ATTRS)]
    for name, male in rows:
        values = ["-1"] * 40
        values[ATTRS.index("Male")] = str(male)
        lines.append(f"{name}  " + "  ".join(values))  # CelebA pads with several spaces
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partitions:
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{n} {p}\n" for n, p in partitions.items()))
    if identities:
        (root / "identity_CelebA.txt").write_text(
            "".join(f"{n} {i}\n" for n, i in identities.items()))
    return root


def make_class_folders(root: Path, n_female=3, n_male=3):
    for cls in ("female", "male"):
        (root / cls).mkdir(parents=True)
    for i in range(n_female):
        write_image(root / "female" / f"f{i}.png")
    for i in range(n_male):
        write_image(root / "male" / f"m{i}.png")
    return root


# ---------------------------------------------------------------- each layout read right

@pytest.mark.parametrize("make, layout", [
    (lambda r: make_celeba(r, [("000001.jpg", 1), ("000002.jpg", -1)]), "celeba"),
    (lambda r: make_labels_csv(r, mixed_rows()), "labels-csv"),
    (make_class_folders, "class-folders"),
])
def test_detect_layout_recognises_each_layout(tmp_path, make, layout):
    assert detect_layout(make(tmp_path)) == layout


def test_labels_csv_reads_labels_and_identities(tmp_path):
    rows = [("a.jpg", 1), ("b.jpg", 0), ("c.jpg", 0)]
    index = read_dataset(make_labels_csv(tmp_path, rows, identities={"a.jpg": 7, "b.jpg": 9}))
    assert index.layout == "labels-csv"
    assert index.samples == [Sample("Images/a.jpg", 1, "7", None),
                             Sample("Images/b.jpg", 0, "9", None),
                             Sample("Images/c.jpg", 0, None, None)]
    assert index.path(index.samples[0]) == tmp_path / "Images" / "a.jpg"
    assert index.ignored == {}


def test_labels_csv_reads_minus_one_as_female(tmp_path):
    index = read_dataset(make_labels_csv(tmp_path, [("a.jpg", 1), ("b.jpg", -1)]))
    assert [s.label for s in index.samples] == [1, 0]


def test_labels_csv_accepts_lowercase_images_folder(tmp_path):
    index = read_dataset(make_labels_csv(tmp_path, mixed_rows(), folder="images"))
    assert index.samples[0].name == "images/f000.jpg"


def test_labels_csv_ignores_identity_rows_for_unknown_names(tmp_path):
    ids = {"f000.jpg": 1, "not-in-labels.jpg": 2}
    index = read_dataset(make_labels_csv(tmp_path, mixed_rows(), identities=ids))
    assert index.samples[0].identity == "1"


def test_celeba_reads_male_column_partition_and_identity(tmp_path):
    rows = [("000001.jpg", -1), ("000002.jpg", 1), ("000003.jpg", 1)]
    make_celeba(tmp_path, rows, partitions={"000001.jpg": 0, "000002.jpg": 1, "000003.jpg": 2},
                identities={"000001.jpg": 10, "000002.jpg": 20, "000003.jpg": 20})
    index = read_dataset(tmp_path)
    assert index.layout == "celeba"
    assert index.samples == [Sample("img_align_celeba/000001.jpg", 0, "10", "train"),
                             Sample("img_align_celeba/000002.jpg", 1, "20", "val"),
                             Sample("img_align_celeba/000003.jpg", 1, "20", "test")]
    assert index.counts() == {"total": 3, "male": 2, "female": 1, "identities": 2}


def test_class_folders_label_by_folder_without_identities(tmp_path):
    index = read_dataset(make_class_folders(tmp_path, n_female=2, n_male=3))
    assert index.layout == "class-folders"
    assert [(s.name, s.label) for s in index.samples] == [
        ("female/f0.png", 0), ("female/f1.png", 0),
        ("male/m0.png", 1), ("male/m1.png", 1), ("male/m2.png", 1)]
    assert index.counts()["identities"] is None


def test_image_extensions_are_case_insensitive(tmp_path):
    index = read_dataset(make_labels_csv(tmp_path, [("A.JPG", 1), ("b.Png", 0)]))
    assert len(index.samples) == 2


# ---------------------------------------------------------------- ignored files

def test_unlabelled_images_are_ignored_and_counted(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    write_image(tmp_path / "Images" / "extra1.jpg")
    write_image(tmp_path / "Images" / "extra2.png")
    index = read_dataset(tmp_path)
    assert len(index.samples) == 6
    assert index.ignored == {"unlabelled": ["Images/extra1.jpg", "Images/extra2.png"]}


def test_duplicate_file_is_ignored_and_the_labelled_copy_kept(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    images = tmp_path / "Images"
    (images / "a(1).jpg").write_bytes((images / "m001.jpg").read_bytes())
    index = read_dataset(tmp_path)
    assert "Images/m001.jpg" in [s.name for s in index.samples]
    assert index.ignored == {"duplicate": ["Images/a(1).jpg"]}


def test_two_labelled_identical_files_keep_the_first(tmp_path):
    make_labels_csv(tmp_path, mixed_rows() + [("m999.jpg", 1)], create=False)
    for name, _ in mixed_rows():
        write_image(tmp_path / "Images" / name)
    images = tmp_path / "Images"
    (images / "m999.jpg").write_bytes((images / "m000.jpg").read_bytes())
    index = read_dataset(tmp_path)
    assert index.ignored == {"duplicate": ["Images/m999.jpg"]}
    assert len(index.samples) == 6


def test_unlabelled_duplicate_pair_keeps_the_shorter_name(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    images = tmp_path / "Images"
    write_image(images / "x.jpg")
    (images / "x(1).jpg").write_bytes((images / "x.jpg").read_bytes())
    index = read_dataset(tmp_path)
    assert index.ignored == {"unlabelled": ["Images/x.jpg"], "duplicate": ["Images/x(1).jpg"]}


def test_files_alike_in_size_and_first_bytes_are_not_duplicates(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    head = (tmp_path / "Images" / "m000.jpg").read_bytes() + b"\0" * 9000
    (tmp_path / "Images" / "u1.jpg").write_bytes(head + b"A")
    (tmp_path / "Images" / "u2.jpg").write_bytes(head + b"B")
    assert read_dataset(tmp_path).ignored == {"unlabelled": ["Images/u1.jpg", "Images/u2.jpg"]}


def test_identical_files_across_class_folders_count_as_duplicates(tmp_path):
    make_class_folders(tmp_path)
    (tmp_path / "male" / "copy.png").write_bytes((tmp_path / "female" / "f0.png").read_bytes())
    index = read_dataset(tmp_path)
    assert index.ignored == {"duplicate": ["male/copy.png"]}


def test_non_image_files_are_reported_not_read(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    (tmp_path / "Images" / "notes.txt").write_text("hi")
    (tmp_path / "Images" / ".DS_Store").write_text("")
    assert read_dataset(tmp_path).ignored == {"not an image": ["Images/notes.txt"]}


# ---------------------------------------------------------------- index helpers

def test_fingerprint_is_stable_and_follows_labels(tmp_path):
    make_labels_csv(tmp_path, mixed_rows())
    first = read_dataset(tmp_path).fingerprint()
    assert len(first) == 16 and first == read_dataset(tmp_path).fingerprint()
    make_labels_csv(tmp_path, [("f000.jpg", 1)] + mixed_rows()[1:], create=False)
    assert read_dataset(tmp_path).fingerprint() != first


def test_describe_reports_counts_identities_partitions_and_ignored(tmp_path):
    rows = [(f"{i:06d}.jpg", 1 if i % 2 else -1) for i in range(1, 9)]
    make_celeba(tmp_path, rows, partitions={n: i % 3 for i, (n, _) in enumerate(rows)},
                identities={n: i // 3 for i, (n, _) in enumerate(rows)})
    for i in range(7):
        write_image(tmp_path / "img_align_celeba" / f"zz{i}.jpg")
    text = describe(read_dataset(tmp_path))
    assert "celeba" in text
    assert "8 labelled: 4 male (50.0%), 4 female (50.0%)" in text
    assert "identities   3; images per identity min 2 / median 3 / max 3" in text
    assert "partition    train 3, val 3, test 2" in text
    assert "7 unlabelled: img_align_celeba/zz0.jpg" in text and ", ..." in text


def test_describe_says_when_identities_are_unknown(tmp_path):
    assert "identities   unknown" in describe(read_dataset(make_class_folders(tmp_path)))


def test_index_samples_are_sorted_by_name(tmp_path):
    make_labels_csv(tmp_path, [("b.jpg", 1), ("a.jpg", 0), ("c.jpg", 1)])
    index = read_dataset(tmp_path)
    assert [s.name for s in index.samples] == ["Images/a.jpg", "Images/b.jpg", "Images/c.jpg"]
    assert isinstance(index, DatasetIndex)


# ---------------------------------------------------------------- broken inputs refused

def _labels(rows):
    return lambda r: make_labels_csv(r, rows)


def _missing_labelled_file(root):
    make_labels_csv(root, mixed_rows())
    (root / "Images" / "f001.jpg").unlink()


def _raw_labels(text):
    def make(root):
        make_labels_csv(root, mixed_rows())
        (root / "labels.csv").write_text(text)
    return make


def _celeba_edit(line_no, new_text):
    def make(root):
        make_celeba(root, [("000001.jpg", 1), ("000002.jpg", -1), ("000003.jpg", 1)])
        attr = root / "list_attr_celeba.txt"
        lines = attr.read_text().splitlines()
        lines[line_no - 1] = new_text
        attr.write_text("\n".join(lines) + "\n")
    return make


def _side_file(name, text):
    def make(root):
        make_celeba(root, [("000001.jpg", 1), ("000002.jpg", -1)])
        (root / name).write_text(text)
    return make


@pytest.mark.parametrize("make, file, message", [
    (_missing_labelled_file, "labels.csv", "line 3: image f001.jpg not found in Images/"),
    (_labels([("a.jpg", 1), ("b.jpg", 2)]), "labels.csv", "line 3: Male value '2'"),
    (_labels([("a.jpg", 1), ("b.jpg", "yes")]), "labels.csv", "line 3: Male value 'yes'"),
    (_labels([("a.jpg", 1), ("b.jpg", 0), ("a.jpg", 1)]), "labels.csv",
     "line 4: duplicate row for a.jpg (first on line 2)"),
    (_raw_labels("Image,Male\nm000.jpg,1\n../x.jpg,0\n"), "labels.csv",
     "line 3: image name '../x.jpg' is not a bare file name"),
    (_raw_labels("Image,Male\nm000.jpg,1\n/tmp/x.jpg,0\n"), "labels.csv",
     "line 3: image name '/tmp/x.jpg' is not a bare file name"),
    (_raw_labels("Image,Male\nm000.jpg,1\nsub/x.jpg,0\n"), "labels.csv",
     "line 3: image name 'sub/x.jpg' is not a bare file name"),
    (_raw_labels("Image,Male\nm000.jpg,1\nnotes.txt,0\n"), "labels.csv",
     "line 3: 'notes.txt' is not an image file"),
    (_raw_labels("Image,Gender\nm000.jpg,1\n"), "labels.csv", "missing column 'Male'"),
    (_raw_labels("Male\n1\n"), "labels.csv", "missing column 'Image'"),
    (_raw_labels(""), "labels.csv", "empty file"),
    (_raw_labels("Image,Male\n"), "labels.csv", "no label rows"),
    (_raw_labels("Image,Male\nm000.jpg,1\nf000.jpg,0\nf001.jpg,-1\n"), "labels.csv",
     "line 4: Male column mixes 0 and -1"),
    (_raw_labels("Image,Male\nm000.jpg\n"), "labels.csv", "line 2: 1 fields, header has 2"),
    (_labels([("m000.jpg", 1), ("m001.jpg", 1)]), "labels.csv",
     "only one class (male) among 2 images"),
    (_labels([("f000.jpg", 0)]), "labels.csv", "only one class (female)"),
    (_celeba_edit(1, "5"), "list_attr_celeba.txt", "line 1: says 5 images but the file has 3"),
    (_celeba_edit(1, "three"), "list_attr_celeba.txt", "line 1: expected the number of images"),
    (_celeba_edit(4, "000002.jpg 1 -1"), "list_attr_celeba.txt",
     "line 4: 3 fields, expected 41"),
    (_celeba_edit(5, "000003.jpg " + " ".join(["0"] * 40)), "list_attr_celeba.txt",
     "line 5: attribute values must be -1 or 1"),
    (_celeba_edit(2, " ".join(ATTRS).replace("Male", "Female")), "list_attr_celeba.txt",
     "line 2: no 'Male' attribute"),
    (_side_file("identity_CelebA.txt", "000001.jpg 1\n000002.jpg\n"), "identity_CelebA.txt",
     "line 2: expected '<image> <value>'"),
    (_side_file("identity_CelebA.txt", "000001.jpg 1\n000001.jpg 2\n"), "identity_CelebA.txt",
     "line 2: 000001.jpg listed again with a different value"),
    (_side_file("list_eval_partition.txt", "000001.jpg 0\n000002.jpg 3\n"),
     "list_eval_partition.txt", "line 2: value '3' for 000002.jpg"),
    (lambda r: make_class_folders(r, n_female=2, n_male=0), "", "only one class (female)"),
    (lambda r: make_class_folders(r, n_female=0, n_male=0), "", "no labelled images left"),
])
def test_broken_dataset_is_refused_naming_the_file(tmp_path, make, file, message):
    make(tmp_path)
    with pytest.raises(DataError) as err:
        read_dataset(tmp_path)
    text = str(err.value)
    assert text.startswith(str(tmp_path / file)) and message in text, text
    assert "\n" not in text


def test_unknown_layout_is_refused(tmp_path):
    write_image(tmp_path / "photos" / "a.jpg")
    with pytest.raises(DataError, match="no known dataset layout") as err:
        read_dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_directory_is_refused(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope'}: no such directory")):
        detect_layout(tmp_path / "nope")


# ---------------------------------------------------------------- the real dataset

@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")
def test_real_dataset_counts():
    index = read_dataset(REAL_DATA)
    assert index.layout == "labels-csv"
    assert index.counts()["total"] == 3725
    assert index.counts()["male"] == 1728
    assert len(index.ignored["unlabelled"]) > 0
    # The README says 17 duplicates; the stored copy holds 15 byte-identical `x(1).jpg` files.
    assert len(index.ignored["duplicate"]) == 15
    assert all("(1)" in name for name in index.ignored["duplicate"])
    assert all(s.identity is not None for s in index.samples)
