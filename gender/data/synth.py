"""Synthetic CelebA: cartoon faces drawn with PIL, written in CelebA's official layout.

The tests and the demo need face data without downloading CelebA (200k images behind a
licence), so `synthesize` draws people whose gender shows only through overlapping cues.
No cue decides on its own (each is right at most ~80% of the time), so a classifier has to
combine several, and the pose, lighting and background around them make that a job for a
well-tuned CNN rather than for any configuration at all:

====================  ======================  ======================
cue (per identity)    women                   men
====================  ======================  ======================
hair beside the face  80% (long or medium)    20%
facial hair           none                    45% (stubble, beard, goatee, mustache)
lipstick              50%                     2%
eyebrow thickness     N(0.60, 0.25)           N(1.00, 0.25)
jaw width             N(0.72, 0.09)           N(0.85, 0.09)
eye size, lip height  a little larger         a little smaller
nose width, neck      a little narrower       a little wider
====================  ======================  ======================

Skin tone, hair colour, glasses, expression, pose, lighting and background are drawn
independently of gender, so no global statistic (such as the mean colour) gives the label.
Finally a `label_noise` fraction of the ``Male`` labels is flipped, as real annotations
have errors; accuracy on these labels therefore tops out near ``1 - label_noise``.

Each person (identity) has 1-6 images sharing their fixed traits; pose, lighting,
background and expression vary per image. Partitions are assigned per identity.
Everything is drawn at 2-4x resolution and downsampled with LANCZOS, then pixel noise is
added. The output is byte-identical for the same ``(seed, n, size, label_noise)``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gender.constants import DEFAULT_DATA, DEFAULT_SYNTH, SPLIT_FRACTIONS
from gender.errors import ConfigError, UserError

__all__ = ["CELEBA_ATTRIBUTES", "synthesize", "synth_args", "default_data_dir", "resolve_data"]

# CelebA's 40 attributes, in the order of its list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses "
    "Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache "
    "Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()

IMAGES_DIR = "img_align_celeba"
_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt",
          "README.md")
_PER_WORKER = 500  # below this many images a process, starting one costs more than it saves
_MARKER = "<!-- gender.data.synth output -->"  # README's first line; marks a folder as ours

RGB = tuple[int, int, int]


# ---------------------------------------------------------------- public entry point

def synthesize(out: str | Path, n: int = 6000, seed: int = 0, size: int = 64,
               label_noise: float = 0.03) -> Path:
    """Draw `n` synthetic faces into `out` in CelebA's layout; return `out`.

    `out` must be absent, empty, or an earlier output of this function (which is replaced).
    The folder appears complete or not at all: it is built beside `out` and moved in.
    """
    _check_args(n, seed, size, label_noise)
    out = Path(out)
    _check_out(out)

    root = np.random.default_rng(seed)
    # Who is in the data set: identity sizes, genders, which image shows whom.
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(root.integers(1, 7)))
    sizes[-1] -= sum(sizes) - n
    k = len(sizes)
    male = root.permutation(k) % 2 == 0  # half the people are men, by construction
    owner = np.repeat(np.arange(k), sizes)[root.permutation(n)]  # image -> identity
    partition = _assign_partitions(root, owner, k)
    people = [_draw_person(g, bool(m)) for g, m in zip(root.spawn(k), male, strict=True)]
    shot_rngs = root.spawn(n)
    # Label noise has its own generator, so `label_noise` changes labels and nothing else;
    # a larger fraction flips a superset of the images a smaller one flips.
    flipped = np.zeros(n, dtype=bool)
    flipped[root.spawn(1)[0].permutation(n)[:round(label_noise * n)]] = True

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / IMAGES_DIR).mkdir()
        jobs = [(i, people[owner[i]], shot_rngs[i], bool(flipped[i])) for i in range(n)]
        attr_rows = _render_all(jobs, size, tmp / IMAGES_DIR)
        names = [_image_name(i) for i in range(n)]
        id_rows = [f"{name} {owner[i] + 1}" for i, name in enumerate(names)]
        part_rows = [f"{name} {partition[i]}" for i, name in enumerate(names)]
        _write(tmp / "list_attr_celeba.txt",
               [str(n), " ".join(CELEBA_ATTRIBUTES)] + attr_rows)
        _write(tmp / "identity_CelebA.txt", id_rows)
        _write(tmp / "list_eval_partition.txt", part_rows)
        labels = np.array([people[o].male for o in owner]) != flipped
        _write(tmp / "README.md", _readme(n, seed, size, label_noise, k, labels, partition))
        _replace(out, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _image_name(i: int) -> str:
    return f"{i + 1:06d}.png"  # CelebA's file names: 000001.png, ...


def _render_some(jobs: list, size: int, images: Path) -> list[str]:
    """Draw and save the images of `jobs`; their rows of list_attr_celeba.txt, in order."""
    rows = []
    for i, person, rng, flipped in jobs:
        name = _image_name(i)
        image, shot = _render(person, rng, size)
        # Fixed PNG options and no metadata keep the bytes identical run to run.
        image.save(images / name, format="PNG", compress_level=6, optimize=False)
        values = _attributes(person, shot, male_label=person.male != flipped)
        rows.append(name + "".join(f" {v:2d}" for v in values))
    return rows


def _worker_count(n: int) -> int:
    return min(os.cpu_count() or 1, n // _PER_WORKER)


def _render_all(jobs: list, size: int, images: Path) -> list[str]:
    """`_render_some` over every core: each image has its own generator, so the files are
    the same bytes whichever process draws them."""
    workers = _worker_count(len(jobs))
    if workers < 2:
        return _render_some(jobs, size, images)
    import concurrent.futures as cf
    import multiprocessing

    chunks = [jobs[k::workers] for k in range(workers)]
    # spawn, not fork: a caller may hold threads (torch, Ray) that a fork would copy mid-lock
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        parts = list(ex.map(_render_some, chunks, [size] * workers, [images] * workers))
    rows = [""] * len(jobs)
    for k, part in enumerate(parts):
        rows[k::workers] = part
    return rows


def synth_args(folder: str | Path) -> dict | None:
    """The (n, seed, size) an earlier `synthesize` output was drawn with, else None."""
    folder = Path(folder)
    if not folder.is_dir() or not _is_synth_output(folder):
        return None
    m = re.search(r"synthesize\(out, n=(\d+), seed=(\d+), size=(\d+),",
                  (folder / "README.md").read_text(encoding="utf-8"))
    if m is None:
        return None
    return dict(zip(("n", "seed", "size"), map(int, m.groups()), strict=True))


def _check_args(n, seed, size, label_noise) -> None:
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def check(ok: bool, name: str, rule: str, value) -> None:
        if not ok:
            raise ConfigError(f"{name} must be {rule}, got {value!r}", field=name, rule=rule)

    check(is_int(n) and n >= 10, "n", "an integer >= 10", n)
    check(is_int(seed) and seed >= 0, "seed", "an integer >= 0", seed)
    check(is_int(size) and 16 <= size <= 256, "size", "an integer with 16 <= size <= 256", size)
    check(isinstance(label_noise, (int, float, np.floating)) and not isinstance(label_noise, bool)
          and 0 <= label_noise < 0.5, "label_noise", "a number with 0 <= label_noise < 0.5",
          label_noise)


def _is_synth_output(folder: Path) -> bool:
    """True if `folder` holds nothing but an earlier output of `synthesize`."""
    readme = folder / "README.md"
    try:
        first = readme.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return False
    names = {p.name for p in folder.iterdir()}
    return first == _MARKER and names <= {IMAGES_DIR, *_FILES}


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not _is_synth_output(out):
        raise UserError(f"{out}: directory is not empty and is not an earlier synthetic "
                        "data set; choose an empty or new folder")


def _replace(out: Path, new: Path) -> None:
    """Move the finished folder `new` to `out`, removing an earlier synth output there."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / "data")
        os.replace(new, out)
        shutil.rmtree(old)
    else:
        if out.is_dir():
            out.rmdir()
        os.replace(new, out)


def _assign_partitions(rng: np.random.Generator, owner: np.ndarray, k: int) -> np.ndarray:
    """Partition (0 train, 1 val, 2 test) per image, whole identities at a time.

    Identities in random order go to whichever partition is furthest below its share, so
    image counts land within one identity (at most 6 images) of 70/15/15.
    """
    per_identity = np.bincount(owner, minlength=k)
    target = np.array(SPLIT_FRACTIONS) * len(owner)
    count = np.zeros(3)
    of_identity = np.zeros(k, dtype=int)
    for ident in rng.permutation(k):
        p = int(np.argmax(target - count))
        of_identity[ident] = p
        count[p] += per_identity[ident]
    return of_identity[owner]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _readme(n, seed, size, label_noise, k, labels, partition) -> list[str]:
    parts = np.bincount(partition, minlength=3)
    return [
        _MARKER,
        "# Synthetic faces in CelebA's layout",
        "",
        "Cartoon faces drawn by `gender.data.synth.synthesize` for tests and demos. These are",
        "not photographs of anyone. Gender shows only through overlapping cues (hair beside the",
        "face, facial hair, lipstick, brow thickness, jaw width, ...) under varying pose,",
        "lighting and background, and a fraction of the `Male` labels is deliberately wrong.",
        "",
        f"- generated with: `synthesize(out, n={n}, seed={seed}, size={size}, "
        f"label_noise={label_noise})`",
        f"- images: {n} PNG, {size}x{size} RGB, in `{IMAGES_DIR}/`",
        f"- identities: {k} (1-6 images each), partitions assigned per identity",
        f"- labels: {int(labels.sum())} male, {int((~labels).sum())} female; "
        f"{round(label_noise * n)} labels flipped",
        f"- partition (list_eval_partition.txt): train {parts[0]}, val {parts[1]}, "
        f"test {parts[2]}",
        "- files: list_attr_celeba.txt (40 attributes, -1/1; undrawn ones are -1),",
        "  identity_CelebA.txt, list_eval_partition.txt (0 train, 1 val, 2 test)",
        "",
        "Running the same call again reproduces these files byte for byte.",
    ]


# ---------------------------------------------------------------- people

_SKIN = np.array([(255, 228, 208), (241, 196, 163), (224, 172, 128), (197, 136, 94),
                  (150, 97, 64), (96, 62, 42)], dtype=float)
_HAIR = {  # name -> (rgb, CelebA attribute or None); chosen independently of gender
    "black": ((28, 24, 24), "Black_Hair"),
    "brown": ((92, 60, 38), "Brown_Hair"),
    "light_brown": ((140, 98, 60), "Brown_Hair"),
    "blond": ((222, 190, 122), "Blond_Hair"),
    "auburn": ((150, 62, 32), None),
    "gray": ((165, 162, 158), "Gray_Hair"),
}
_HAIR_P = (0.30, 0.25, 0.12, 0.15, 0.10, 0.08)
_LIPSTICK = ((205, 15, 40), (235, 55, 135), (150, 8, 70), (240, 75, 55))
_IRIS = ((70, 45, 25), (40, 30, 25), (70, 110, 160), (80, 120, 70))
_BEARDS = ("stubble", "beard", "goatee", "mustache", "goatee+mustache")
_BEARD_P = (0.2, 0.35, 0.17, 0.11, 0.17)


@dataclass(frozen=True)
class _Person:
    """An identity's fixed traits, in face units (half the head's width is 1)."""

    male: bool
    aspect: float  # head half-height
    jaw: float  # width of the lower face, 1 = as wide as the cheeks
    square: float  # jaw superellipse exponent (2 = round)
    head: float  # head size
    skin: RGB
    skin_t: float  # 0 pale .. 1 dark
    hair: RGB
    hair_name: str
    style: str  # "long" | "medium" | "short" | "bald"
    hair_len: float  # how far long hair falls below the head centre, in half-heights
    volume: float  # hair width beyond the head
    hairline: float  # in half-heights, negative = above the centre
    receding: bool
    bangs: bool
    front_locks: bool
    brow: float  # eyebrow thickness
    arch: float
    eye: float  # eye size
    eye_open: float
    eye_gap: float
    iris: RGB
    nose_w: float
    nose_len: float
    lip_w: float
    lip_h: float
    lips: RGB
    lipstick: bool
    makeup: RGB | None  # eye shadow colour
    blush: bool
    beard: str
    earrings: RGB | None
    glasses: tuple[str, RGB] | None
    neck: float
    shoulders: float
    clothes: RGB
    necktie: tuple[RGB, RGB] | None  # (shirt, tie) colours
    necklace: RGB | None


def _mix(a, b, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _jitter(rng, rgb, amount: float) -> RGB:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in rgb)


def _draw_person(rng: np.random.Generator, male: bool) -> _Person:
    def by_sex(m_mean, f_mean, sd, lo, hi):
        return float(np.clip(rng.normal(m_mean if male else f_mean, sd), lo, hi))

    skin_t = float(rng.random())
    pos = skin_t * (len(_SKIN) - 1)
    i = min(int(pos), len(_SKIN) - 2)
    skin = _jitter(rng, _mix(_SKIN[i], _SKIN[i + 1], pos - i), 6)

    # Hair as dark as the skin would hide its shape; such people get another colour.
    for _ in range(20):
        hair_name = str(rng.choice(list(_HAIR), p=_HAIR_P))
        hair = _jitter(rng, _HAIR[hair_name][0], 10)
        if abs(_luma(hair) - _luma(skin)) >= 45:
            break
    u = rng.random()  # hair beside the face: 80% of women, 20% of men
    if male:
        style = "long" if u < 0.07 else "medium" if u < 0.20 else "bald" if u < 0.30 else "short"
    else:
        style = "long" if u < 0.60 else "medium" if u < 0.80 else "short"
    hair_len = float(rng.uniform(1.5, 2.3) if style == "long" else rng.uniform(0.95, 1.2))
    receding = male and style == "short" and rng.random() < 0.2
    hairline = float(rng.uniform(-0.62, -0.5) if receding else rng.uniform(-0.52, -0.36))
    bangs = style != "bald" and rng.random() < 0.25

    # The strong cues avoid each other within a sex, as real styles do: most women without
    # hair beside the face wear lipstick, most men with it have facial hair. Each cue alone
    # still decides only ~75-80% of people; together they leave few ambiguous ones.
    beside = style in ("long", "medium")
    if male:
        lipstick = rng.random() < 0.02
        facial_hair = rng.random() < (0.9 if beside else 0.525)
    else:
        lipstick = rng.random() < (0.525 if beside else 0.9)
        facial_hair = False
    lip_natural = _mix(skin, (170, 80, 80), 0.45)
    lips = _jitter(rng, _LIPSTICK[rng.integers(len(_LIPSTICK))], 8) if lipstick else lip_natural
    makeup = None
    if lipstick and rng.random() < 0.5:
        makeup = _jitter(rng, ((120, 80, 140), (90, 70, 60), (60, 90, 130))[rng.integers(3)], 15)
    beard = str(rng.choice(_BEARDS, p=_BEARD_P)) if facial_hair else "none"
    glasses = None
    if rng.random() < 0.13:
        kind = "sun" if rng.random() < 0.25 else "clear"
        glasses = (kind, _jitter(rng, ((25, 25, 25), (120, 90, 50), (150, 150, 160))
                                 [rng.integers(3)], 10))
    # Neckwear, again avoiding the other cues: a tie for men without facial hair,
    # a necklace for women without lipstick, more often than for the others.
    necktie = necklace = None
    if rng.random() < ((0.2 if facial_hair else 0.55) if male else 0.02):
        necktie = (_jitter(rng, (235, 235, 230), 12),
                   tuple(int(c) for c in rng.integers(10, 200, 3)))
    if rng.random() < (0.02 if male else 0.2 if lipstick else 0.6):
        necklace = _jitter(rng, ((215, 180, 70), (200, 200, 210), (240, 235, 225))
                           [rng.integers(3)], 10)
    earrings = None
    if rng.random() < (0.05 if male else 0.2 if lipstick else 0.5):
        earrings = _jitter(rng, ((215, 180, 70), (200, 200, 210))[rng.integers(2)], 10)

    return _Person(
        male=male,
        aspect=by_sex(1.30, 1.36, 0.08, 1.12, 1.55),
        jaw=by_sex(0.85, 0.72, 0.09, 0.5, 1.0),
        square=by_sex(2.5, 2.15, 0.3, 1.8, 3.4),
        head=by_sex(1.03, 0.97, 0.06, 0.85, 1.15),
        skin=skin,
        skin_t=skin_t,
        hair=hair,
        hair_name=hair_name,
        style=style,
        hair_len=hair_len,
        volume=float(rng.uniform(1.22, 1.45) if beside else rng.uniform(1.04, 1.14)),
        hairline=hairline,
        receding=bool(receding),
        bangs=bool(bangs),
        front_locks=style in ("long", "medium") and rng.random() < 0.7,
        brow=by_sex(1.0, 0.6, 0.25, 0.2, 1.6),
        arch=by_sex(0.04, 0.08, 0.03, 0.0, 0.16),
        eye=by_sex(0.95, 1.05, 0.1, 0.7, 1.3),
        eye_open=float(rng.uniform(0.7, 1.15)),
        eye_gap=float(rng.normal(0, 0.03)),
        iris=_jitter(rng, _IRIS[rng.integers(len(_IRIS))], 10),
        nose_w=by_sex(1.08, 0.92, 0.15, 0.6, 1.5),
        nose_len=by_sex(1.05, 0.95, 0.1, 0.75, 1.3),
        lip_w=float(rng.uniform(0.32, 0.46)),
        lip_h=by_sex(0.9, 1.1, 0.18, 0.5, 1.6),
        lips=lips,
        lipstick=bool(lipstick),
        makeup=makeup,
        blush=not male and rng.random() < 0.3,
        beard=beard,
        earrings=earrings,
        glasses=glasses,
        neck=by_sex(0.40, 0.34, 0.05, 0.25, 0.55),
        shoulders=by_sex(2.6, 2.3, 0.25, 1.8, 3.2),
        clothes=tuple(int(c) for c in rng.integers(20, 236, 3)),
        necktie=necktie,
        necklace=necklace,
    )


# ---------------------------------------------------------------- drawing

@dataclass(frozen=True)
class _Shot:
    """What varies per image and ends up in the attributes."""

    smiling: bool
    mouth_open: bool
    blurry: bool


def _ellipse(cx, cy, rx, ry, t0=0.0, t1=2 * math.pi, k=36) -> np.ndarray:
    t = np.linspace(t0, t1, k)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _band(xs, ys, thick) -> np.ndarray:
    """A thick stroke along the polyline (xs, ys), `thick` per point, as a polygon."""
    top = np.stack([xs, ys - thick / 2], axis=1)
    bottom = np.stack([xs, ys + thick / 2], axis=1)[::-1]
    return np.concatenate([top, bottom])


def _render(p: _Person, rng: np.random.Generator, size: int) -> tuple[Image.Image, _Shot]:
    ss = max(2, min(4, 256 // size))  # supersampling factor
    w = size * ss

    # Background: a blotchy colour field and a few shapes, independent of the person.
    base = rng.integers(25, 231, 3)
    cells = int(rng.integers(2, 6))
    grid = np.clip(base + rng.normal(0, 28, (cells, cells, 3)), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(grid).resize((w, w), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * w
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * w
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=fill)

    # Pose: the face lives in its own units (half head width = 1), mapped onto the canvas.
    angle = math.radians(rng.uniform(-10, 10))
    unit = w * 0.25 * p.head * rng.uniform(0.9, 1.08)
    cx = w * (0.5 + rng.uniform(-0.06, 0.06))
    cy = w * (0.43 + rng.uniform(-0.05, 0.05))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    yaw = rng.uniform(-0.14, 0.14)  # features slide sideways as the head turns

    def poly(pts, fill, outline=None, width=0):
        xy = (np.asarray(pts) * unit) @ rot.T + (cx, cy)
        draw.polygon(xy.ravel().tolist(), fill=fill, outline=outline, width=width)

    b = p.aspect
    smiling = bool(rng.random() < 0.45)
    mouth_open = bool(rng.random() < (0.55 if smiling else 0.15))
    hair_dark = _mix(p.hair, (0, 0, 0), 0.25)

    # Hair behind the head (long and medium styles fall beside the face).
    if p.style in ("long", "medium"):
        top = _ellipse(0, -0.05 * b, p.volume, b * 1.06 + 0.05, math.pi, 2 * math.pi, 24)
        end = p.hair_len * b
        bottom_w = p.volume * rng.uniform(0.95, 1.1)
        xs = np.linspace(bottom_w, -bottom_w, 7)
        ragged = end + rng.uniform(-0.12, 0.12, 7) * b
        poly(np.concatenate([top, [(bottom_w, end)], np.stack([xs, ragged], 1),
                             [(-bottom_w, end)]]), p.hair)

    # Shoulders and neck.
    sw = p.shoulders
    poly(_ellipse(0, 2.1 * b, sw, 0.85 * b, math.pi, 2 * math.pi, 24).tolist()
         + [(sw, 3 * b), (-sw, 3 * b)], p.clothes)
    neck_shade = _mix(p.skin, (0, 0, 0), 0.12)
    poly([(-p.neck, 0.5 * b), (p.neck, 0.5 * b), (p.neck * 1.1, 1.6 * b),
          (-p.neck * 1.1, 1.6 * b)], neck_shade)
    if p.necktie is not None:  # shirt collar and tie
        shirt, tie = p.necktie
        nb = 1.3 * b  # neckline
        poly([(-p.neck * 1.6, nb - 0.1), (0, nb + 0.25), (p.neck * 1.6, nb - 0.1),
              (p.neck * 1.8, nb + 0.5), (-p.neck * 1.8, nb + 0.5)], shirt)
        poly([(-0.1, nb + 0.05), (0.1, nb + 0.05), (0.07, nb + 0.2), (-0.07, nb + 0.2)], tie)
        poly([(-0.07, nb + 0.2), (0.07, nb + 0.2), (0.16, nb + 1.2), (-0.16, nb + 1.2)], tie)
    if p.necklace is not None:
        poly(_band(np.linspace(-p.neck * 1.3, p.neck * 1.3, 12),
                   1.12 * b + 0.25 * (1 - np.linspace(-1, 1, 12) ** 2), np.full(12, 0.08)),
             p.necklace)

    # Ears, then the head: an ellipse above, a superellipse jaw below.
    for side in (-1, 1):
        poly(_ellipse(side * 0.98, 0.05 * b, 0.15, 0.26, k=16), _mix(p.skin, (0, 0, 0), 0.08))
    t = np.linspace(0, 2 * math.pi, 72)
    c, s = np.cos(t), np.sin(t)
    lower = s > 0
    e = 2 / p.square
    x = np.where(lower, np.sign(c) * np.abs(c) ** e, c)
    y = np.where(lower, np.sign(s) * np.abs(s) ** e, s) * b
    x = np.where(lower, x * (1 - (1 - p.jaw) * np.abs(s) ** 1.5), x)
    outline = np.stack([x, y], axis=1)
    poly(outline, p.skin)

    # Hair on top of the head, down to the hairline.
    if p.style != "bald":
        ry, cy0 = b * 1.06, -0.04 * b
        hairline = (p.hairline + (0.18 if p.bangs else 0.0)) * b
        alpha = math.asin(min(1.0, abs((hairline - cy0) / ry)))
        cap = _ellipse(0, cy0, p.volume * 0.96 if p.style != "short" else 1.06, ry,
                       math.pi + alpha, 2 * math.pi - alpha, 24)
        poly(cap, p.hair)
        if p.front_locks:
            for side in (-1, 1):
                poly([(side * 0.78, hairline - 0.05), (side * 1.06, hairline - 0.1),
                      (side * 1.04, 0.35 * b), (side * 0.9, 0.2 * b)], p.hair)
    else:  # a fringe of hair above the ears
        for side in (-1, 1):
            poly(_ellipse(side * 0.93, -0.2 * b, 0.12, 0.22, k=12), p.hair)

    # Eyes, brows and make-up; `sx` shifts the features for the head's turn.
    sx = yaw
    eye_y = -0.04 * b
    for side in (-1, 1):
        ex = sx + side * (0.37 + p.eye_gap)
        rx, ry = 0.16 * p.eye, 0.085 * p.eye * p.eye_open * (0.8 if smiling else 1.0)
        if p.makeup is not None:
            poly(_ellipse(ex, eye_y - 0.06, rx * 1.3, ry * 1.6, math.pi, 2 * math.pi, 12)
                 .tolist() + [(ex + rx * 1.3, eye_y)], _mix(p.skin, p.makeup, 0.6))
        poly(_ellipse(ex, eye_y, rx, ry, k=20), (236, 234, 228))
        poly(_ellipse(ex + yaw * 0.05, eye_y, ry * 0.95, ry * 0.95, k=14), p.iris)
        poly(_ellipse(ex + yaw * 0.05, eye_y, ry * 0.45, ry * 0.45, k=10), (15, 12, 12))
        liner = 0.05 if p.makeup is not None else 0.015
        xs = ex + np.linspace(-rx, rx, 10)
        poly(_band(xs, eye_y - ry * np.sqrt(np.clip(1 - ((xs - ex) / rx) ** 2, 0, 1)),
                   np.full(10, liner)), (30, 22, 20))
        # Brows: thickness is a gender cue; colour follows the hair (dark if bald).
        brow_rgb = _mix(p.hair if p.style != "bald" else (60, 45, 35), (0, 0, 0), 0.2)
        bx = sx + side * np.linspace(0.13, 0.62, 9)
        u = np.linspace(0, 1, 9)
        by = eye_y - 0.24 - p.arch * np.sin(math.pi * (u * 0.8 + 0.1)) - (0.03 if smiling else 0)
        thick = (0.05 + 0.12 * p.brow) * (1 - 0.45 * u)
        poly(_band(bx, by, thick), brow_rgb)

    # Cheeks, nose.
    if p.blush:
        for side in (-1, 1):
            poly(_ellipse(sx + side * 0.55, 0.3 * b, 0.17, 0.1, k=14),
                 _mix(p.skin, (232, 110, 125), 0.3))
    tip_y = eye_y + 0.42 * p.nose_len * b
    nx = sx * 1.4
    shade = _mix(p.skin, (0, 0, 0), 0.22)
    poly([(nx - 0.02, eye_y + 0.08), (nx + 0.03, eye_y + 0.08),
          (nx + 0.05 + yaw * 0.3, tip_y), (nx - 0.01, tip_y)], _mix(p.skin, (0, 0, 0), 0.1))
    poly(_ellipse(nx, tip_y, 0.13 * p.nose_w, 0.06, 0, math.pi, 12), shade)
    for side in (-1, 1):
        poly(_ellipse(nx + side * 0.07 * p.nose_w, tip_y + 0.01, 0.035, 0.022, k=8),
             _mix(p.skin, (0, 0, 0), 0.5))

    # Facial hair (men only, by construction of `_draw_person`).
    mouth_y = tip_y + 0.14 + 0.05 * b
    if p.beard in ("stubble", "beard"):
        cheek = outline[(outline[:, 1] > 0.08 * b) & lower]
        area = np.concatenate([cheek * 1.03, [(-0.86, 0.08 * b), (-p.lip_w - 0.14, tip_y + 0.03),
                                              (p.lip_w + 0.14, tip_y + 0.03), (0.86, 0.08 * b)]])
        if p.beard == "beard":
            poly(area, hair_dark)
        else:  # a shadow over the beard area, speckled with hairs
            poly(area, _mix(p.skin, hair_dark, 0.3))
            k = int(1500 * (ss / 4) ** 2)
            pts = np.stack([rng.uniform(-1, 1, k), rng.uniform(tip_y, b, k)], 1)
            inside = (pts[:, 0] / (p.jaw * 0.95)) ** 2 + (pts[:, 1] / (b * 0.98)) ** 2 < 1
            xy = (pts[inside] * unit) @ rot.T + (cx, cy)
            draw.point(xy.ravel().tolist(), fill=_mix(p.skin, hair_dark, 0.7))
    if p.beard in ("goatee", "goatee+mustache"):
        gy = (mouth_y + b) / 2 + 0.04
        poly(_ellipse(sx * 0.8, gy, p.lip_w * 0.75, (b - mouth_y) * 0.45, k=20), hair_dark)
    if p.beard in ("mustache", "goatee+mustache"):
        xs = sx + np.linspace(-p.lip_w * 1.15, p.lip_w * 1.15, 11)
        droop = 0.06 * ((xs - sx) / (p.lip_w * 1.15)) ** 2
        poly(_band(xs, mouth_y - 0.1 + droop, np.full(11, 0.09)), hair_dark)

    # Mouth: lips around a centre line that curls up at the corners when smiling.
    lw = p.lip_w * (1.15 if smiling else 1.0)
    xs = np.linspace(-lw, lw, 15)
    r = np.sqrt(np.clip(1 - (xs / lw) ** 2, 0, 1))
    centre = mouth_y - (0.07 if smiling else 0.0) * (xs / lw) ** 2
    gap = (0.07 if mouth_open else 0.0) * r
    fill = 1.25 if p.lipstick else 1.0  # lipstick is drawn a little over the lip line
    up_h, lo_h = 0.06 * p.lip_h * fill * r, 0.08 * p.lip_h * fill * r
    xs = xs + sx
    if mouth_open:
        poly(np.concatenate([np.stack([xs, centre - gap], 1), np.stack([xs, centre + gap], 1)
                             [::-1]]), (70, 22, 28))
        poly(np.concatenate([np.stack([xs, centre - gap], 1), np.stack([xs, centre], 1)[::-1]]),
             (238, 236, 226))
    poly(np.concatenate([np.stack([xs, centre - gap - up_h], 1),
                         np.stack([xs, centre - gap], 1)[::-1]]), p.lips)
    poly(np.concatenate([np.stack([xs, centre + gap], 1),
                         np.stack([xs, centre + gap + lo_h], 1)[::-1]]), p.lips)

    # Accessories.
    if p.earrings is not None:
        for side in (-1, 1):
            poly(_ellipse(side * 1.0, 0.34, 0.08, 0.08, k=10), p.earrings)
    if p.glasses is not None:
        kind, frame = p.glasses
        for side in (-1, 1):
            ring = _ellipse(sx + side * 0.38, eye_y, 0.25, 0.2, k=24)
            lens = _mix(frame, (10, 10, 10), 0.6) if kind == "sun" else None
            poly(ring, lens, outline=frame, width=max(1, int(0.035 * unit)))
        poly(_band(sx + np.linspace(-0.13, 0.13, 3), np.full(3, eye_y - 0.05), np.full(3, 0.04)),
             frame)

    # Downsample, then light, blur and noise at the final size.
    image = canvas.resize((size, size), Image.Resampling.LANCZOS)
    blurry = bool(rng.random() < 0.05)
    if blurry:
        image = image.filter(ImageFilter.GaussianBlur(radius=0.7 * size / 64))
    arr = np.asarray(image, dtype=np.float32)
    grid = np.linspace(-1, 1, size, dtype=np.float32)
    phi = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.35) * (grid[None, :] * math.cos(phi)
                                        + grid[:, None] * math.sin(phi)) / 2
    gain = rng.uniform(0.75, 1.2) * (1 + rng.normal(0, 0.05, 3)).astype(np.float32)
    arr = arr * light[..., None] * gain + rng.normal(0, rng.uniform(1.5, 5), arr.shape)
    image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    return image, _Shot(smiling=smiling, mouth_open=mouth_open, blurry=blurry)


# ---------------------------------------------------------------- attributes

def _attributes(p: _Person, shot: _Shot, male_label: bool) -> list[int]:
    """The 40 CelebA attributes (-1/1) of one image; those not drawn stay -1."""
    hair_attr = _HAIR[p.hair_name][1] if p.style != "bald" else None
    on = {
        "5_o_Clock_Shadow": p.beard == "stubble",
        "Arched_Eyebrows": p.arch > 0.08,
        "Bald": p.style == "bald",
        "Bangs": p.bangs,
        "Big_Lips": p.lip_h > 1.2,
        "Big_Nose": p.nose_w > 1.15,
        "Blurry": shot.blurry,
        "Bushy_Eyebrows": p.brow > 1.1,
        "Eyeglasses": p.glasses is not None,
        "Goatee": p.beard in ("goatee", "goatee+mustache"),
        "Heavy_Makeup": p.makeup is not None,
        "Male": male_label,
        "Mouth_Slightly_Open": shot.mouth_open,
        "Mustache": p.beard in ("mustache", "goatee+mustache"),
        "Narrow_Eyes": p.eye_open < 0.8,
        "No_Beard": p.beard in ("none", "stubble"),
        "Pale_Skin": p.skin_t < 0.12,
        "Receding_Hairline": p.receding,
        "Rosy_Cheeks": p.blush,
        "Smiling": shot.smiling,
        "Wearing_Earrings": p.earrings is not None,
        "Wearing_Lipstick": p.lipstick,
        "Wearing_Necklace": p.necklace is not None,
        "Wearing_Necktie": p.necktie is not None,
    }
    if hair_attr is not None:
        on[hair_attr] = True
    return [1 if on.get(a, False) else -1 for a in CELEBA_ATTRIBUTES]


def default_data_dir() -> Path:
    """`data/synthetic`, drawn on first use so every command works out of the box.

    An earlier default drawn with other arguments is redrawn (synthesize only replaces
    its own outputs, never a user's folder)."""
    if synth_args(DEFAULT_DATA) != DEFAULT_SYNTH:
        why = "first use" if not DEFAULT_DATA.exists() else "the default set changed"
        print(f"gender: drawing synthetic faces into {DEFAULT_DATA} ({why})", file=sys.stderr)
        synthesize(DEFAULT_DATA, **DEFAULT_SYNTH)
    return DEFAULT_DATA


def resolve_data(path: str | None) -> Path:
    """The folder `--data` names, or the default synthetic set when it is not given."""
    return default_data_dir() if path is None else Path(path)
