"""`gender serve` as a user runs it: a real subprocess on a free loopback port, a real
local Ray and Ray Serve (two replicas), a real headless browser. One server is shared by
the tests of this module, in order; the last one stops it with SIGTERM."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from PIL import Image

from gender.predict import Predictor
from tests.browser import chromium_page

GENDER = [sys.executable, "-m", "gender_cli"]
REPLICA = "ServeReplica:gender:GenderApp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Nothing listens there and a new server can (with SO_REUSEADDR, as every server
    binds: connections of the old one may linger in TIME_WAIT)."""
    if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
           for c in psutil.net_connections("tcp")):
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def post(url: str, data: bytes, timeout: float = 60) -> tuple[int, dict]:
    req = urllib.request.Request(url + "api/predict", data=data, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode(errors="replace")[:300]}


class Server:
    """`gender serve` in its own session; its output is read by a thread."""

    def __init__(self, model: Path, *extra: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*GENDER, "serve", str(model), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_url(timeout=420)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line)
            self.lines.put(line)

    def _wait_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("ready: "):
                return line.split()[1]
        self.kill()
        raise AssertionError("gender serve did not print its URL:\n" + "".join(self.log)[-3000:])

    def family(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def replicas(self) -> list[psutil.Process]:
        out = []
        for p in self.family():
            try:
                if REPLICA in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    def kill(self) -> None:
        procs = self.family()
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)


@pytest.fixture(scope="module")
def server(tiny_model):
    s = Server(tiny_model, "--replicas", "2", "--max-batch-size", "8")
    yield s
    if s.proc.poll() is None:  # the SIGTERM test did not run (or failed)
        s.kill()


@pytest.fixture(scope="module")
def faces(synth_data) -> list[Path]:
    return sorted((synth_data / "img_align_celeba").iterdir())[:32]


@pytest.fixture(scope="module")
def expected(tiny_model, faces) -> dict[Path, dict]:
    """What `gender predict` says for each face (same default engine)."""
    predictor = Predictor(tiny_model)
    return {f: {k: r[k] for k in ("label", "prob_male")}
            for f, r in zip(faces, predictor.predict_files(faces), strict=True)}


def test_serve_prints_its_url_and_serves_page_api_and_schema(server, tiny_model):
    assert server.url == f"http://127.0.0.1:{server.port}/"
    with urllib.request.urlopen(server.url, timeout=30) as r:
        assert r.status == 200 and b"Drop photos here" in r.read()
    with urllib.request.urlopen(server.url + "api/model", timeout=30) as r:
        info = json.loads(r.read())
    assert info["image_size"] == 32 and info["device"] == "cpu"
    assert info["name"] == f"{tiny_model.parent.name}/{tiny_model.name}"
    with urllib.request.urlopen(server.url + "openapi.json", timeout=30) as r:
        assert "/api/predict" in json.loads(r.read())["paths"]
    assert len(server.replicas()) == 2
    listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}  # loopback only


def test_concurrent_requests_are_each_answered_correctly(server, faces, expected):
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda f: post(server.url, f.read_bytes()), faces))
    for f, (status, body) in zip(faces, answers, strict=True):
        assert status == 200, body
        assert {k: body[k] for k in ("label", "prob_male")} == expected[f], f.name


def test_a_person_uploads_a_photo_and_reads_its_label(server, faces, expected, tmp_path):
    face = faces[0]
    want = expected[face]
    p = want["prob_male"] if want["label"] == "male" else 1 - want["prob_male"]
    with chromium_page() as page:
        page.goto(server.url)
        page.locator("#model", has_text="test accuracy").wait_for()
        # A loopback server without a token asks for none.
        assert not page.locator("#token-form").is_visible()
        page.set_input_files("#files", str(face))
        card = page.locator('.card[data-state="done"]')
        card.wait_for()
        assert card.locator(".label").inner_text() == \
            f"{want['label'].capitalize()}, {round(p * 100)} %"
        assert card.locator(".name").inner_text() == face.name
        assert card.evaluate("c => c.querySelector('img').naturalWidth") > 0
        page.screenshot(path=str(tmp_path / "page.png"))
        assert page.problems == []


def test_the_page_shows_a_phone_photo_upright_and_lists_photos_in_the_order_chosen(
        server, faces):
    face = Image.open(faces[1]).convert("RGB").resize((120, 160))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; the viewer must turn it back to portrait
    phone = io.BytesIO()
    face.transpose(Image.Transpose.ROTATE_90).save(phone, "JPEG", exif=exif)
    files = [{"name": "phone.jpg", "mimeType": "image/jpeg", "buffer": phone.getvalue()},
             {"name": faces[2].name, "mimeType": "image/jpeg", "buffer": faces[2].read_bytes()}]
    status, api = post(server.url, phone.getvalue())
    assert status == 200
    with chromium_page() as page:
        page.goto(server.url)
        page.set_input_files("#files", files)
        # A locator, not wait_for_function: the page's CSP forbids the eval it may use.
        page.locator('.card[data-state="done"]').nth(1).wait_for()
        card = page.locator(".card", has_text="phone.jpg")
        w, h = card.evaluate("c => [c.querySelector('img').naturalWidth, "
                             "c.querySelector('img').naturalHeight]")
        assert (w, h) == (120, 160)  # upright: portrait, as taken
        assert float(card.get_attribute("data-prob-male")) == api["prob_male"]
        names = page.locator(".card .name")
        assert names.all_inner_texts() == ["phone.jpg", faces[2].name]
        # A later choice goes on top of the earlier ones.
        page.set_input_files("#files", [{"name": faces[3].name, "mimeType": "image/jpeg",
                                         "buffer": faces[3].read_bytes()}])
        page.locator('.card[data-state="done"]').nth(2).wait_for()
        assert names.all_inner_texts() == [faces[3].name, "phone.jpg", faces[2].name]


def test_html_in_a_file_name_is_shown_as_text_never_run(server, faces):
    name = '<img src=x onerror="window.pwned=1">.jpg'
    with chromium_page() as page:
        page.goto(server.url)
        page.set_input_files("#files", [{"name": name, "mimeType": "image/jpeg",
                                         "buffer": faces[3].read_bytes()}])
        page.locator('.card[data-state="done"]').wait_for()
        assert page.locator(".card .name").inner_text() == name
        assert page.locator(".card img").count() == 1  # the photo only, nothing injected
        assert page.evaluate("window.pwned") is None


def test_a_killed_replica_is_replaced_and_later_requests_succeed(server, faces, expected):
    before = {p.pid for p in server.replicas()}
    assert len(before) == 2
    victim = sorted(before)[0]
    stop, answers = threading.Event(), []

    def traffic():
        i = 0
        while not stop.is_set():
            f = faces[i % len(faces)]
            answers.append((f, *post(server.url, f.read_bytes(), timeout=120)))
            i += 1

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(traffic)
        time.sleep(2)
        os.kill(victim, signal.SIGKILL)  # the replica's process dies mid-traffic
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = {p.pid for p in server.replicas()}
            if len(now) == 2 and victim not in now:
                break
            time.sleep(1)
        stop.set()
    assert victim not in {p.pid for p in server.replicas()}
    assert len(server.replicas()) == 2, "Serve did not start a replacement replica"
    assert any(status == 200 for _, status, _ in answers)
    later = [post(server.url, f.read_bytes()) for f in faces[:8]]
    for f, (status, body) in zip(faces[:8], later, strict=True):
        assert status == 200, body
        assert {k: body[k] for k in ("label", "prob_male")} == expected[f]


def test_sigterm_stops_serve_frees_the_port_and_leaves_no_process(server):
    family = server.family()
    assert len(family) > 3  # the CLI, Ray's processes, the replicas
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=120) == 0, "".join(server.log)[-2000:]
    gone, alive = psutil.wait_procs(family, timeout=60)
    assert alive == [], [p.pid for p in alive]
    assert port_free(server.port)


# -- refusals, before anything starts -----------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0: listening beyond this machine needs a token"),
    (["--token", "short"], "--token: must be at least 16 characters"),
    (["--replicas", "0"], "--replicas"),
    (["--gpus-per-replica", "0.3"], "--gpus-per-replica 0.3: must be"),
    (["--max-batch-size", "0"], "--max-batch-size"),
])
def test_bad_serve_flags_exit_2_with_one_line(tiny_model, args, needle):
    p = subprocess.run([*GENDER, "serve", str(tiny_model), *args], capture_output=True,
                       text=True, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr


def test_a_port_in_use_or_a_missing_model_exits_2(tiny_model, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([*GENDER, "serve", str(tiny_model), "--port", str(port)],
                           capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and f"--port {port}: cannot listen" in p.stderr
    p = subprocess.run([*GENDER, "serve", str(tmp_path / "nothing")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "no model.pt there" in p.stderr and "Traceback" not in p.stderr
