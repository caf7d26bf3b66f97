"""The one image decoder against reference pictures: every mode Pillow reads becomes the
RGB picture a viewer shows, EXIF orientations are undone, and decompression bombs are
refused from their header."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gender.constants import MAX_IMAGE_PIXELS
from gender.images import ImageError, decode_image, open_image
from tests.gender_cli.badfiles import jpeg_bomb, png_bomb


def _reference() -> Image.Image:
    """32 x 24, no symmetry (a rotation or mirror shows), smooth enough for JPEG."""
    y, x = np.mgrid[0:24, 0:32]
    a = np.stack([x * 8, y * 10, np.where((x < 12) & (y < 8), 230, 40)], axis=-1)
    return Image.fromarray(a.astype(np.uint8))


REF = _reference()


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def rgb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def grey(im: Image.Image) -> np.ndarray:
    """The grey picture as RGB: what a viewer shows for one channel."""
    return np.repeat(np.asarray(im, dtype=np.int16)[..., None], 3, axis=-1)


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float64) / 255
    return np.rint(colour * a + 255 * (1 - a)).astype(np.int16)


def _alpha() -> np.ndarray:
    """Transparent left third, half-transparent middle, opaque right."""
    a = np.full((24, 32), 255, dtype=np.uint8)
    a[:, :10], a[:, 10:20] = 0, 128
    return a


def _png16(a: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 48-bit RGB)."""
    h, w = a.shape[:2]
    raw = b"".join(b"\0" + a[r].astype(">u2").tobytes() for r in range(h))
    chunk = lambda t, d: (struct.pack(">I", len(d)) + t + d  # noqa: E731
                          + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16,
                                                               colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


LOSSY = "lossy"  # compared on average
L = REF.convert("L")
L16 = np.asarray(L, dtype=np.uint16) * 257  # 16-bit grey spanning the same range
ALPHA = _alpha()
P = REF.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)


def _transparent_palette() -> tuple[bytes, np.ndarray]:
    p = P.copy()
    index = int(np.asarray(p)[0, 0])  # the top-left colour becomes transparent
    expected = rgb(p)
    expected[np.asarray(p) == index] = 255
    return encode(p, "PNG", transparency=index), expected, 0


def _mode(im: Image.Image, mode: str) -> Image.Image:
    return im.convert(mode)


def _lab() -> tuple[bytes, np.ndarray, int]:
    """A CIELAB TIFF; expected: what LittleCMS (a colour-managed viewer) makes of it. 8-bit
    LAB cannot hold every sRGB colour exactly, so the file itself is not REF."""
    from PIL import ImageCms

    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    data = encode(ImageCms.applyTransform(REF, ImageCms.buildTransform(srgb, lab, "RGB", "LAB")),
                  "TIFF")
    shown = ImageCms.applyTransform(Image.open(io.BytesIO(data)),
                                    ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
    return data, rgb(shown), 1


# name -> (file bytes, the RGB picture expected, largest difference allowed per channel;
# LOSSY: the mean difference instead, as JPEG smears sharp edges but keeps the picture)
CASES = {
    "RGB PNG": (encode(REF, "PNG"), rgb(REF), 0),
    "RGB BMP": (encode(REF, "BMP"), rgb(REF), 0),
    "RGB WebP lossless": (encode(REF, "WEBP", lossless=True), rgb(REF), 0),
    "RGB JPEG": (encode(REF, "JPEG", quality=95), rgb(REF), LOSSY),
    "L (8-bit grey) PNG": (encode(L, "PNG"), grey(L), 0),
    "1 (bilevel) PNG": (encode(REF.convert("1"), "PNG"), rgb(REF.convert("1")), 0),
    "P (palette) PNG": (encode(P, "PNG"), rgb(P), 0),
    "P (palette) GIF": (encode(P, "GIF"), rgb(P), 0),
    "P with a transparent colour PNG": _transparent_palette(),
    "RGBA PNG": (encode(Image.fromarray(np.dstack([np.asarray(REF), ALPHA])), "PNG"),
                 over_white(rgb(REF), ALPHA), 1),
    "LA (grey + alpha) PNG": (encode(Image.fromarray(np.dstack([np.asarray(L), ALPHA])),
                                     "PNG"), over_white(grey(L), ALPHA), 1),
    "PA (palette + alpha) TIFF": (
        encode(Image.merge("PA", [P, Image.fromarray(ALPHA)]), "TIFF"),
        over_white(rgb(P), ALPHA), 1),
    "CMYK TIFF": (encode(_mode(REF, "CMYK"), "TIFF"), rgb(REF), 0),
    "CMYK JPEG": (encode(_mode(REF, "CMYK"), "JPEG", quality=95), rgb(REF), LOSSY),
    "YCbCr TIFF": (encode(_mode(REF, "YCbCr"), "TIFF"), rgb(REF), 3),
    "LAB TIFF": _lab(),
    "I;16 (16-bit grey) PNG": (encode(Image.fromarray(L16), "PNG"), grey(L), 0),
    "I;16B (16-bit big-endian grey) TIFF": (
        encode(Image.frombytes("I;16B", L.size, L16.astype(">u2").tobytes()), "TIFF"), grey(L), 0),
    "I (32-bit grey of 16-bit data) TIFF": (
        encode(Image.fromarray(L16.astype(np.int32)), "TIFF"), grey(L), 0),
    "F (float grey 0-1) TIFF": (
        encode(Image.fromarray(np.asarray(L, np.float32) / 255), "TIFF"), grey(L), 0),
    "16-bit grey PNG written by hand": (_png16(L16, 0), grey(L), 0),
    "48-bit RGB PNG": (_png16(np.asarray(REF, np.uint16) * 257, 2), rgb(REF), 0),
}


@pytest.mark.parametrize("name", CASES)
def test_every_mode_decodes_to_the_picture_a_viewer_shows(name):
    data, expected, tolerance = CASES[name]
    got = open_image(data)
    assert got.mode == "RGB" and got.size == (expected.shape[1], expected.shape[0])
    diff = np.abs(np.asarray(got, dtype=np.int16) - expected)
    if tolerance == LOSSY:
        assert diff.mean() <= 4, f"{name}: differs by {diff.mean():.1f} on average"
    else:
        assert diff.max() <= tolerance, f"{name}: differs by up to {diff.max()}"


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white():
    got = np.asarray(open_image(encode(Image.fromarray(L16), "PNG")))
    assert got.min() < 50 and got.max() > 200  # the whole range, not a blank picture


# EXIF orientation (EXIF 2.3, tag 0x0112): how the stored pixels must be turned for display.
# The file holds the upright picture turned the opposite way.
STORED = {
    2: lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),  # mirrored
    3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
    4: lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    5: lambda im: im.transpose(Image.Transpose.TRANSPOSE),  # mirrored along the diagonal
    6: lambda im: im.transpose(Image.Transpose.ROTATE_90),  # display turns it 90 clockwise
    7: lambda im: im.transpose(Image.Transpose.TRANSVERSE),
    8: lambda im: im.transpose(Image.Transpose.ROTATE_270),  # display turns it 90 anticlockwise
}


def _with_orientation(im: Image.Image, orientation: int, fmt: str, **kw) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, fmt, exif=exif.tobytes(), **kw)


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_is_undone(orientation):
    data = _with_orientation(STORED[orientation](REF), orientation, "PNG")
    assert np.array_equal(np.asarray(open_image(data)), np.asarray(REF))


def test_a_phone_photo_turned_on_its_side_comes_out_upright():
    data = _with_orientation(STORED[6](REF), 6, "JPEG", quality=95)
    got = np.asarray(open_image(data), dtype=np.int16)
    assert got.shape == (24, 32, 3) and np.abs(got - rgb(REF)).mean() <= 4


# ---------------------------------------------------------------- hostile files

@pytest.mark.parametrize("side", [8001, 11_000, 100_000])  # just over, between, far over
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, side):
    for path in (png_bomb(tmp_path / "bomb.png", side), jpeg_bomb(tmp_path / "bomb.jpg", side)):
        assert path.stat().st_size < 2000  # a few bytes that claim a huge picture
        with pytest.raises(ImageError, match="limit of 64,000,000 pixels"):
            decode_image(path, 32)


def test_the_limit_is_the_projects_own_and_can_be_lowered():
    data = encode(REF, "PNG")
    assert open_image(data, max_pixels=32 * 24).size == (32, 24)
    with pytest.raises(ImageError, match="32 x 24 pixels: more than the limit of 100 pixels"):
        open_image(data, max_pixels=100)
    assert MAX_IMAGE_PIXELS == 64_000_000


NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))


@pytest.mark.parametrize("data,why", [
    (b"", "not an image"), (b"<html><script>alert(1)</script></html>", "not an image"),
    (encode(NOISE, "PNG")[:2000], "truncated"), (encode(NOISE, "JPEG")[:300], "truncated"),
    (encode(NOISE, "JPEG")[:3000], "truncated"),
])
def test_broken_files_are_refused_with_the_reason(data, why):
    with pytest.raises(ImageError, match=why):
        open_image(data)


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match="not a regular file"):
        open_image(tmp_path / "pipe.png")


# ---------------------------------------------------------------- the crop

def _framed(w: int, h: int, inner: int) -> Image.Image:
    """Red, with a green central square `inner` pixels a side."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = 255
    top, left = (h - inner) // 2, (w - inner) // 2
    a[top:top + inner, left:left + inner] = (0, 255, 0)
    return Image.fromarray(a)


def test_crop_keeps_the_central_square_of_that_fraction_of_the_shorter_side():
    data = encode(_framed(100, 140, 70), "PNG")
    inner = decode_image(data, 32, crop=0.7)
    assert inner.shape == (3, 32, 32)
    assert (inner[1] == 255).all() and (inner[0] == 0).all()  # all green: the frame is gone
    whole = decode_image(data, 32)  # crop 1.0: the 100 x 100 square, frame and all
    assert whole[0, 0, 0] == 255 and whole[1, 16, 16] == 255


def test_a_large_jpeg_read_at_reduced_scale_still_fills_the_cropped_square():
    # The draft scale is chosen for the kept square, so it is no blurrier than decoding
    # the whole photo and cropping it.
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (60, 60, 3), np.uint8)).resize(
        (1200, 1200), Image.Resampling.NEAREST)
    data = encode(big, "JPEG", quality=95)
    got = decode_image(data, 64, crop=0.5).astype(np.int16)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    want = np.asarray(full.crop((300, 300, 900, 900)).resize(
        (64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0)).transpose(2, 0, 1)
    assert np.abs(got - want).mean() < 6
