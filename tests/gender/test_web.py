"""The web app without Ray: an ASGI test client on `create_app` over a `LocalBackend`
(the tiny trained model, the default engine). Status codes, formats, EXIF, multipart,
and the same numbers as `gender predict --json` for the same files."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from gender.constants import MAX_UPLOAD_BYTES
from gender.export import file_sha256
from gender.predict import Predictor
from gender.web import LocalBackend, create_app
from gender.web.app import MAX_FILES

TOKEN = "a-long-random-test-token"


@pytest.fixture(scope="module")
def backend(tiny_model):
    return LocalBackend(Predictor(tiny_model))


@pytest.fixture(scope="module")
def client(backend):
    return TestClient(create_app(backend))


@pytest.fixture(scope="module")
def guarded(backend):
    return TestClient(create_app(backend, token=TOKEN))


@pytest.fixture(scope="module")
def photos(synth_data, tmp_path_factory):
    """One face in every format and mode a user may bring, as files."""
    face = Image.open(sorted((synth_data / "img_align_celeba").iterdir())[3]).convert("RGB")
    out = tmp_path_factory.mktemp("photos")
    variants = {
        "face.jpg": (face, {}), "face.png": (face, {}), "face.bmp": (face, {}),
        "face.webp": (face, {"lossless": True}), "grey.png": (face.convert("L"), {}),
        "alpha.png": (face.convert("RGBA"), {}), "cmyk.jpg": (face.convert("CMYK"), {}),
        "deep.png": (Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257),
                     {}),  # 16-bit grayscale
    }
    for name, (im, kw) in variants.items():
        im.save(out / name, **kw)
    return out


def _predict_cli(model, files) -> dict[str, dict]:
    p = subprocess.run([sys.executable, "-m", "gender_cli", "predict", str(model),
                        *map(str, files), "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return {json.loads(line)["path"]: json.loads(line) for line in p.stdout.splitlines()}


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with almost no data: what a
    decompression bomb looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _rotated_with_exif(face: Image.Image, orientation: int) -> bytes:
    """The face stored turned, with the EXIF orientation that turns it back (a phone's
    way of saving a photo taken in portrait)."""
    stored = face.transpose(Image.Transpose.ROTATE_90 if orientation == 6
                            else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif)
    return buf.getvalue()


# -- answers --------------------------------------------------------------------------------

def test_every_format_gets_the_numbers_gender_predict_gives(client, photos, tiny_model):
    files = sorted(photos.iterdir())
    cli = _predict_cli(tiny_model, files)
    for f in files:
        r = client.post("/api/predict", content=f.read_bytes())
        assert r.status_code == 200, (f.name, r.text)
        body = r.json()
        assert {k: body[k] for k in ("label", "prob_male")} == \
            {k: cli[str(f)][k] for k in ("label", "prob_male")}, f.name


def test_multipart_answers_each_file_in_order_and_reports_the_broken_one(client, photos,
                                                                         tiny_model):
    files = [photos / "face.jpg", photos / "grey.png", photos / "face.webp"]
    cli = _predict_cli(tiny_model, files)
    parts = [("files", (f.name, f.read_bytes(), "image/*")) for f in files]
    parts.insert(1, ("files", ("notes.txt", b"not a picture", "text/plain")))
    r = client.post("/api/predict", files=parts)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["filename"] for x in results] == ["face.jpg", "notes.txt", "grey.png", "face.webp"]
    assert "cannot read image" in results[1]["error"]
    for f, x in zip(files, [results[0], results[2], results[3]], strict=True):
        assert (x["label"], x["prob_male"]) == (cli[str(f)]["label"], cli[str(f)]["prob_male"])


def test_multipart_with_no_readable_image_is_422(client):
    r = client.post("/api/predict", files=[("files", ("a.txt", b"nope", "text/plain"))])
    assert r.status_code == 422 and "cannot read image" in r.json()["results"][0]["error"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied_before_classifying(client, photos, orientation):
    face = Image.open(photos / "face.png")
    upright = client.post("/api/predict", content=(photos / "face.png").read_bytes()).json()
    tagged = client.post("/api/predict", content=_rotated_with_exif(face, orientation)).json()
    buf = io.BytesIO()
    Image.open(io.BytesIO(_rotated_with_exif(face, orientation))).save(buf, "PNG")  # no EXIF
    sideways = client.post("/api/predict", content=buf.getvalue()).json()
    assert tagged["prob_male"] == upright["prob_male"]
    assert sideways["prob_male"] != upright["prob_male"]  # the turn matters to the model


def test_model_endpoint_names_the_model_and_its_test_metrics(client, tiny_model):
    info = client.get("/api/model").json()
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert info["sha256"] == file_sha256(tiny_model / "model.pt")
    assert info["test_accuracy"] == metrics["accuracy"] and info["image_size"] == 32
    assert info["config"]["width"] == 0.125 and info["engine"] in ("torch", "onnx")
    assert info["provenance"]["environment"]["torch"]


def test_every_answer_names_the_model_that_gave_it(client, photos):
    info = client.get("/api/model").json()
    one = client.post("/api/predict", content=(photos / "face.png").read_bytes()).json()
    assert one["model"] == {"id": info["sha256"][:12], "trial_id": info["trial_id"],
                            "test_accuracy": info["test_accuracy"]}


def test_health_and_openapi_schema(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"image/*", "multipart/form-data"} <= set(body)


# -- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, needle", [
    (b"", 400, "empty body"),
    (b"plain text, not a picture", 422, "not an image"),
    (None, 422, "runcated"),  # a JPEG cut in half
    (_png_claiming(9_000, 9_000), 422, "more than the limit of 64,000,000 pixels"),  # a bomb
    (_png_claiming(40_000, 40_000), 422, "more than the limit of 64,000,000 pixels"),  # bigger
])
def test_bad_bodies_get_a_4xx_with_a_clear_message(client, photos, body, status, needle):
    if body is None:
        data = (photos / "face.jpg").read_bytes()
        body = data[:len(data) // 2]
    r = client.post("/api/predict", content=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_an_upload_over_10_mb_is_refused_from_its_content_length(client):
    r = client.post("/api/predict", content=b"\xff" * (MAX_UPLOAD_BYTES + 1))
    assert r.status_code == 413 and "10 MB" in r.json()["error"]


@pytest.mark.parametrize("content_type", [b"image/jpeg", b"multipart/form-data; boundary=xyz"])
def test_an_endless_body_is_refused_once_it_passes_10_mb(backend, content_type):
    """No Content-Length and a body that never ends: the app stops reading at the limit."""
    app = create_app(backend)
    pulled, sent = 0, []
    first = b"--xyz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\n"

    async def receive():
        nonlocal pulled
        pulled += 1
        head = first if pulled == 1 and content_type.startswith(b"multipart") else b""
        return {"type": "http.request", "body": head + b"\xff" * 2**20, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/predict", "raw_path": b"",
             "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1), "headers": [(b"content-type", content_type)]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    assert sent[0]["status"] == 413
    assert pulled <= MAX_UPLOAD_BYTES // 2**20 + 2  # read up to the limit, not beyond


def test_the_token_guards_every_api_call_and_nothing_else(guarded, photos):
    face = (photos / "face.jpg").read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        r = guarded.post("/api/predict", content=face, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["error"]
        assert guarded.get("/api/model", headers=headers).status_code == 401
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.post("/api/predict", content=face, headers=ok).status_code == 200
    assert guarded.get("/api/model", headers=ok).status_code == 200
    for path in ("/", "/static/app.js", "/healthz", "/openapi.json"):
        assert guarded.get(path).status_code == 200, path


def test_the_token_is_compared_in_constant_time(guarded, photos, monkeypatch):
    import hmac

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    r = guarded.post("/api/predict", content=(photos / "face.jpg").read_bytes(),
                     headers={"Authorization": "Bearer a-wrong-guess"})
    assert r.status_code == 401 and seen == [(b"a-wrong-guess", TOKEN.encode())]


def test_more_than_32_files_in_one_request_are_refused(client):
    parts = [("files", (f"{i}.png", b"x", "image/png")) for i in range(MAX_FILES + 1)]
    r = client.post("/api/predict", files=parts)
    assert r.status_code == 400 and "32" in r.json()["error"]


def test_errors_are_json_without_a_stack_trace(backend, client):
    class Broken:
        info, image_size, crop = backend.info, backend.image_size, backend.crop

        async def predict(self, images):
            raise RuntimeError("secret internals /etc/passwd")

    broken = TestClient(create_app(Broken()), raise_server_exceptions=False)
    buf = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buf, "PNG")
    r = broken.post("/api/predict", content=buf.getvalue())  # decodes; the backend fails
    assert r.status_code == 500
    for resp in (r, client.get("/nope"), client.get("/api/predict"),
                 client.post("/api/predict", content=b"--x\r\n",
                             headers={"content-type": "multipart/form-data; boundary=x"})):
        assert resp.status_code in (400, 404, 405, 500), resp.status_code
        assert set(resp.json()) == {"error"}
        assert "Traceback" not in resp.text and "secret" not in resp.text


# -- the page -------------------------------------------------------------------------------

def test_the_page_needs_nothing_from_another_origin(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    for path in ("/", "/static/app.js", "/static/app.css", "/static/icon.svg"):
        # An SVG's xmlns names a namespace; nothing is fetched from it.
        text = client.get(path).text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text
    assert ".innerHTML" not in client.get("/static/app.js").text
