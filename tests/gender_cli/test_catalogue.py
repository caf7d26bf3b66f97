"""Runs every row of the bad-input catalogue (`catalogue.py`) and holds `gender` to the
README's promise: the expected exit code, one short line on stderr naming the culprit and
the rule, no traceback, and every file that existed before left byte-for-byte as it was
(with no new files, unless the row allows them).

Rows run in-process through `gender_cli.main` (the same code path as the command, without
a torch import per row); one row per subcommand also runs as a real process, and so does
every row that needs one (Ray connections, resource checks). Every row has a time bound.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gender_cli import badfiles as bf
from tests.gender_cli.catalogue import CASES, IN_A_PROCESS, UNWRITABLE, Case

REPO = Path(__file__).resolve().parents[2]
BY_NAME = {c.name: c for c in CASES}
COMMANDS = ("data", "train", "predict", "tune", "retrain", "report", "dashboard")


# ------------------------------------------------------------------ shared inputs

@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, str]:
    """Valid inputs rows point at; checked for changes like every other input."""
    root = tmp_path_factory.mktemp("shared")
    return {"data": str(bf.labels_csv_dataset(root / "data", 25)),
            "celeba": str(bf.celeba_dataset(root / "celeba")),
            "model": str(bf.model_file(root / "model" / "model.pt").parent),
            "image": str(bf.face(root / "image.png", 1, False))}


@pytest.fixture(scope="module")
def places():
    """Addresses for the Ray rows: a closed port, a port that accepts connections and
    never answers, and a private Ray temp folder whose "current cluster" file names the
    closed port (a `ray start` head that has since died)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    from ray._private.services import resolve_ip_for_localhost

    silent = socket.socket()
    # Bound where Ray dials for 127.0.0.1 (the machine's own address), for the test's length.
    silent.bind((resolve_ip_for_localhost("127.0.0.1"), 0))
    silent.listen(16)  # the kernel completes handshakes; nothing ever replies
    # Ray's unix socket paths must stay short: a folder directly under /tmp.
    raytmp = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))
    (raytmp / "ray").mkdir()
    (raytmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{closed}")
    try:
        yield {"closed_port": str(closed), "silent_port": str(silent.getsockname()[1]),
               "raytmp": str(raytmp)}
    finally:
        silent.close()
        shutil.rmtree(raytmp, ignore_errors=True)


# ------------------------------------------------------------------ one row, prepared

def _digest(path: Path) -> str:
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO must never be opened: it would block
        return f"special {stat.S_IFMT(st.st_mode)}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(roots: list[Path]) -> dict[str, str]:
    out = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = _digest(root)
        for folder, _, files in os.walk(root):
            for name in files:
                out[os.path.join(folder, name)] = _digest(Path(folder, name))
    return out


@dataclass
class Prepared:
    case: Case
    tmp: Path
    argv: list[str]
    env: dict
    expect: list[str]
    roots: list[Path]
    before: dict


def prepare(case: Case, tmp: Path, shared: dict, places: dict) -> Prepared:
    values = {"tmp": str(tmp), **shared, **places}
    fill = lambda s: s.format(**values)  # noqa: E731
    if case.setup is not None:
        case.setup(tmp)
    argv = [fill(w) for w in case.argv.split(" ")] if case.argv else []
    roots = [tmp, *map(Path, shared.values())]
    return Prepared(case, tmp, argv, {k: fill(v) for k, v in case.env.items()},
                    [fill(w) for w in case.expect], roots, snapshot(roots))


def check_answer(p: Prepared, rc, out: str, err: str) -> None:
    """The promise, for every row."""
    case = p.case
    assert "Traceback" not in err + out, err[-4000:]
    assert rc == case.rc, f"exit code {rc}, expected {case.rc}; stderr:\n{err[-3000:]}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert (1 if case.rc else 0) <= len(lines) <= case.lines, \
        f"{len(lines)} lines on stderr, expected at most {case.lines}:\n{err[-3000:]}"
    assert all(len(ln) < 1000 for ln in lines), "a line on stderr is not short"
    missing = [w for w in p.expect if w not in err]
    assert not missing, f"stderr lacks {missing}:\n{err}"
    after = snapshot(p.roots)
    changed = sorted(f for f, h in p.before.items() if after.get(f) != h)
    assert not changed, f"changed or removed: {changed}"
    allowed = [str(p.tmp / g) for g in case.creates]
    new = sorted(f for f in set(after) - set(p.before)
                 if not any(fnmatch.fnmatch(f, g) for g in allowed))
    assert not new, f"new files: {new}"
    if case.check is not None:
        case.check(p.tmp, out, err)


# ------------------------------------------------------------------ in-process runner

class Hung(BaseException):
    """A row ran past its bound (BaseException: no `except Exception` may swallow it)."""


@contextlib.contextmanager
def bounded(seconds: float, what: str):
    def fire(signum, frame):
        raise Hung(f"{what} still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_in_process(p: Prepared, capfd, monkeypatch) -> tuple[object, str, str]:
    from gender_cli import main

    monkeypatch.chdir(p.tmp)  # a row that fell back to data/synthetic would draw it here
    for k, v in p.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE", "token"))
    capfd.readouterr()
    started_ray = False
    try:
        with bounded(p.case.timeout, f"gender {' '.join(p.argv)}"):
            try:
                rc = main(p.argv)
            except SystemExit as e:  # argparse exits; a real process would too
                rc = e.code if isinstance(e.code, int) else 1
            except Exception:  # what the interpreter would print, and its exit code
                traceback.print_exc()
                rc = 1
    finally:
        if "ray" in sys.modules:  # also after a failed start, which leaves processes behind
            started_ray = sys.modules["ray"]._private.worker._global_node is not None
            sys.modules["ray"].shutdown()
    out, err = capfd.readouterr()
    # Bad input is refused before the slow work: no row run in-process may start Ray.
    assert not started_ray, f"gender {' '.join(p.argv)} started Ray before refusing:\n{err}"
    return rc, out, err


@pytest.mark.parametrize("case", [c for c in CASES if not c.process_only],
                         ids=lambda c: c.name)
def test_bad_input_gets_one_clear_line(case, shared, places, tmp_path, capfd, monkeypatch):
    p = prepare(case, tmp_path, shared, places)
    rc, out, err = run_in_process(p, capfd, monkeypatch)
    check_answer(p, rc, out, err)


# ------------------------------------------------------------------ real processes

def start_process(p: Prepared) -> subprocess.Popen:
    env = {**os.environ, **p.env,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # Its own session, so a row that outlives its bound is killed with every child.
    return subprocess.Popen([sys.executable, "-m", "gender_cli", *p.argv], cwd=p.tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish_process(p: Prepared, proc: subprocess.Popen) -> tuple[object, str, str]:
    try:
        out, err = proc.communicate(timeout=p.case.timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"gender {' '.join(p.argv)}: still running after {p.case.timeout:.0f} s"
                    f"\n{err[-3000:]}")


@pytest.fixture(scope="module")
def launched(shared, places, tmp_path_factory):
    """The one-row-per-subcommand set, started together (each is mostly a torch import)."""
    runs = {}
    for name in IN_A_PROCESS:
        p = prepare(BY_NAME[name], tmp_path_factory.mktemp(name), shared, places)
        runs[name] = p
    procs = {name: start_process(p) for name, p in runs.items()}
    yield {name: (runs[name], procs[name]) for name in runs}
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_bad_input_gets_one_clear_line_from_the_real_command(name, launched):
    p, proc = launched[name]
    check_answer(p, *finish_process(p, proc))


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.process_only], ids=lambda c: c.name)
def test_nothing_waits_forever(case, shared, places, tmp_path):
    p = prepare(case, tmp_path, shared, places)
    check_answer(p, *finish_process(p, start_process(p)))


# ------------------------------------------------------------------ the table itself

def test_the_catalogue_covers_every_subcommand_and_defect_class():
    commands = {c.argv.split(" ")[0] for c in CASES if c.argv}
    assert set(COMMANDS) <= commands
    kinds = {c.kind for c in CASES}
    assert {"hostile", "hang", "lost-work", "silent", "corrupt", "flag", "path"} == kinds
    assert len(CASES) > 100
    # Every failing row names what stderr must say.
    assert all(c.expect for c in CASES if c.rc == 2)


def test_the_unwritable_folder_really_refuses_writes():
    # The lost-work rows rely on it; root may write nearly anywhere else.
    with pytest.raises(OSError):
        Path(UNWRITABLE).mkdir()
