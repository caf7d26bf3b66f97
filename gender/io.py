"""Files in and out: every write is atomic, every read of a user's file fails with one line.

`atomic_path` is the one way this project writes a file: the content goes to a temporary
name in the same folder and is renamed over the target only when complete, so a crash or
Ctrl-C never leaves a truncated model, table or page behind, and a reader never sees half
a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gender.constants import MODEL_FILE
from gender.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["atomic_path", "write_text", "write_bytes", "write_json", "read_json",
           "read_text", "read_table", "check_writable_dir", "plain", "one_line",
           "resolve_model_path"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _plain(obj):
    """JSON has no NaN or infinity: write them as null so every JSON reader accepts the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return _plain(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays
        return _plain(obj.tolist())
    return obj


plain = _plain  # for JSON written elsewhere (the web API): the same rules as our files


def write_json(obj, path: str | Path) -> Path:
    return write_text(path, json.dumps(_plain(obj), indent=2) + "\n")


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file as UTF-8, or one line naming it and what is wrong."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a {what}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); expected a {what}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def read_json(path: str | Path, what: str = "JSON file") -> dict:
    """A JSON object from `path`; anything else is a UserError naming the file."""
    text = read_text(path, what)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def check_writable_dir(path: str | Path, flag: str) -> Path:
    """Fail now, before any work, if outputs cannot be written under `path`.

    The folder need not exist: the nearest existing parent must be a folder where a file
    can be created. Tried for real (a file made and removed), not judged from permission
    bits: root passes every `os.access` check, yet cannot write to a read-only mount.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "exists and is not a folder" if probe == path else f"{probe} is a file"
        raise UserError(f"{flag} {path}: {what}")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".gender-write-check.")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise UserError(f"{flag} {path}: {probe} is not writable ({e.strerror})") from None
    return path


def read_table(path: str | Path, what: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV table this project wrote (trials.csv, splits.csv ...), checked on the way in:
    UTF-8, parseable, not empty, holding `columns`. Anything else is one UserError line."""
    import pandas as pd

    path = Path(path)
    text = read_text(path, what)
    if not text.strip():
        raise UserError(f"{path}: empty file, no {what} rows")
    try:
        table = pd.read_csv(io.StringIO(text), dtype={"trial_id": str})
    except (pd.errors.ParserError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path}: not a valid CSV table ({first[:200]})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (a {what} has "
                        f"{', '.join(columns)})")
    return table


def one_line(text: str) -> str:
    """`text` as one printable line: newlines and other control characters (from a file
    name a hostile sender chose, say) are shown escaped, never sent to the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def resolve_model_path(path: str | Path) -> Path:
    """MODEL may be `model.pt` or a folder holding one (e.g. results/<name>/best)."""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise UserError(f"{path}: no {MODEL_FILE} there")
    return p
