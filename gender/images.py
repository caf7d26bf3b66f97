"""One picture in, one upright RGB picture out: the only place this project decodes images.

Training, `gender predict` and the web app all go through `open_image` and `to_array`, so
a photo is seen the same way everywhere. What a user may bring and how it is read:

- phone photos: turned upright by their EXIF orientation;
- any mode Pillow reads: 16-bit grayscale is scaled (not clipped to white), palette images
  are expanded, transparency (RGBA, LA, palette) is laid over white as a viewer shows it,
  CMYK and other colour spaces are converted;
- hostile files: an image claiming more than `MAX_IMAGE_PIXELS` is refused from its
  header, before any pixel is decoded (a decompression bomb states a huge size in a few
  bytes); truncated or non-image data is refused with the reason.
"""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gender.constants import MAX_IMAGE_PIXELS

__all__ = ["ImageError", "open_image", "to_array", "decode_image", "PREPROCESS",
           "PREPROCESS_VERSION"]

# How an image becomes a tensor; saved into every model so every path does the same.
# The fraction of the shorter side the square keeps is the model's `crop` hyperparameter.
PREPROCESS = {"orientation": "exif", "background": "white", "crop": "center-square",
              "resize": "bilinear-antialias", "scale": "0-255 uint8"}
# Bumped whenever decoding or cropping changes: it keys the decoded-image cache.
PREPROCESS_VERSION = 2

# Pillow's own bomb check warns above this and raises above twice this. Ours (in
# `open_image`, from the header, before any pixel is decoded) comes first and names the
# limit, so Pillow's warning is silenced once here: it would only print a second, noisy
# line about a picture we refuse anyway. Never toggled per call: decoding runs in threads.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """Not a picture we can read (message: why, without the file name)."""


Source = str | Path | bytes | BinaryIO


def _too_many_pixels(limit: int) -> str:
    return (f"more than the limit of {limit:,} pixels (a decompression bomb, or a picture far "
            "larger than a photo)")


def _open(source: Source) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        try:
            mode = os.stat(source).st_mode
        except FileNotFoundError:
            raise ImageError("no such file") from None
        except OSError as e:
            raise ImageError(f"cannot open: {e.strerror}") from None
        if not stat.S_ISREG(mode):  # opening a pipe would wait for a writer forever
            raise ImageError("not a regular file (a folder, pipe or device)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check, from the header, for sizes far beyond ours.
        raise ImageError(_too_many_pixels(MAX_IMAGE_PIXELS)) from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (JPEG, PNG, WebP, BMP, ...)") from None
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("cannot open: permission denied") from None
    except OSError as e:  # Pillow's own read errors ("Truncated File Read", ...)
        raise ImageError(f"corrupt or truncated image ({e})") from None


def _white_background(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        # 16-bit data (I;16, or I from a 16-bit PNG) spans 0..65535; float images 0..1.
        top = 1.0 if mode == "F" and a.max(initial=0) <= 1.0 else (
            255.0 if a.max(initial=0) <= 255 else 65535.0)
        grey = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        return _white_background(im.convert("RGBA"))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _white_background(im)
    if mode == "RGB":
        return im
    return im.convert("RGB")


def open_image(source: Source, draft_size: int | None = None,
               max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """-> the upright RGB picture. Raises ImageError (why, not which file).

    `draft_size`: a JPEG much larger than needed is decoded at a reduced scale (at least
    twice this on its shorter side), which makes a 12-megapixel photo cheap to read.
    """
    im = _open(source)
    try:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError(f"{w} x {h} pixels: " + _too_many_pixels(max_pixels))
        if draft_size and im.format == "JPEG" and min(w, h) > 4 * draft_size:
            scale = min(w, h) / (2 * draft_size)
            im.draft("RGB", (int(w / scale), int(h / scale)))
        try:
            im.load()
            upright = ImageOps.exif_transpose(im)
            return _to_rgb(upright if upright is not None else im)
        except ImageError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ImageError(f"corrupt or truncated image ({e})") from None
    finally:
        im.close()


def to_array(im: Image.Image, size: int, crop: float = 1.0) -> np.ndarray:
    """An RGB picture -> uint8 3 x size x size: the central square, resized.

    The square's side is `crop` times the picture's shorter side. Aligned CelebA faces are
    178x218 with the face in the middle, so the centre square keeps the face and drops
    background above and below; a crop below 1 also drops background beside the face,
    which gives the face more of the `size` pixels.
    """
    w, h = im.size
    side = max(1, round(min(w, h) * crop))
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_image(source: Source, size: int, crop: float = 1.0) -> np.ndarray:
    """`open_image` then `to_array`: a file or bytes -> uint8 3 x size x size."""
    # A JPEG decoded at reduced scale must still give the kept square `size` pixels.
    return to_array(open_image(source, draft_size=math.ceil(size / crop)), size, crop)
