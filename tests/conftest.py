import contextlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FER_HF_DATA", REPO.parent / "shared" / "data")).resolve()
SAMPLES = DATA / "samples"
FER2013_ZIP = DATA / "fer2013" / "fer2013_images.zip"
CKPLUS = DATA / "ckplus" / "CK+48"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module, imported as when it runs as a script (its folder on sys.path)."""
    import importlib

    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module(name)


def pytest_collection_modifyitems(config, items):
    if not DATA.is_dir():
        skip = pytest.mark.skip(reason=f"real data folder {DATA} not found (set FER_HF_DATA)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def default_recognizer():
    from fer_hf import FaceExpressionRecognizer

    return FaceExpressionRecognizer.from_pretrained()


#: The most accurate FER2013-only release: the tests of FER2013 tooling (ensembles, distillation, Grad-CAM
#: evidence, ONNX int8 bars) were measured on it, and it was the default before fer-mobilenet-real.
FER2013_MODEL = "fer-vgg-44-distilled-ft"


@pytest.fixture(scope="session")
def fer2013_recognizer():
    from fer_hf import FaceExpressionRecognizer

    return FaceExpressionRecognizer.from_pretrained(FER2013_MODEL)


@pytest.fixture(scope="session")
def fer2013():
    from fer_hf.data import load_fer2013

    return load_fer2013(FER2013_ZIP)


# ------------------------------------------------------------------ the app as a server, and the browser
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} not installed (apt-get install chromium)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: the app's upload limits; `server` runs with their defaults whatever the caller's environment says
LIMIT_VARIABLES = ("FER_HF_MAX_VIDEO_MB", "FER_HF_MAX_VIDEO_SECONDS", "FER_HF_MAX_VIDEO_PIXELS",
                   "FER_HF_MAX_VIDEO_FRAMES", "FER_HF_MAX_IMAGE_MB", "FER_HF_MAX_IMAGE_PIXELS",
                   "FER_HF_MAX_BATCH_FILES", "FER_HF_MAX_ZIP_MB", "FER_HF_MAX_ZIP_ENTRIES",
                   "FER_HF_MAX_ZIP_UNCOMPRESSED_MB", "FER_HF_MAX_UPLOAD_MB")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(log_dir: Path, **env):
    """app.py as a subprocess on a free loopback port, with the default upload limits plus ``env``;
    yields its URL; the server is stopped on exit."""
    import subprocess
    import time
    import urllib.request

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in LIMIT_VARIABLES}
    environment.update(GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **env)
    log = open(Path(log_dir) / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=environment, stdout=log,
                               stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except Exception:
                if process.poll() is not None:
                    raise RuntimeError(open(log.name).read()[-3000:])
                time.sleep(1)
        else:
            raise RuntimeError("app.py did not start in 180 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The app, started once for the whole test session (default limits)."""
    with running_app(tmp_path_factory.mktemp("server")) as url:
        yield url


def launch_chromium(playwright, *extra_args):
    """Headless Debian Chromium through Playwright (its own browser download cannot work offline)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + list(extra_args))


REMOTE_CODE_SCRIPT = r"""
import sys, json
sys.modules["fer_hf"] = None  # fer_hf is not importable: everything must come from the folder
from PIL import Image
import torch
from transformers import AutoModelForImageClassification, AutoImageProcessor, pipeline
folder, face = sys.argv[1], sys.argv[2]
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(**processor(Image.open(face), return_tensors="pt")).logits
top = pipeline("image-classification", model=folder, trust_remote_code=True)(face)[0]
print(json.dumps({"module": type(model).__module__, "logits": logits[0].tolist(), "top": top,
                  "labels": [model.config.id2label[i] for i in range(model.config.num_labels)]}))
"""


def run_without_fer_hf(folder: Path, face: Path, cwd: Path) -> dict:
    """Load a saved model folder in a fresh Python where ``fer_hf`` cannot be imported (trust_remote_code:
    its code comes from the folder) and classify ``face``: ``{"module", "logits", "top", "labels"}``
    (the model class's module, the face's logits, the pipeline's top answer, the id2label names)."""
    import json
    import subprocess

    result = subprocess.run([sys.executable, "-c", REMOTE_CODE_SCRIPT, str(folder), str(face)],
                            capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


APP_TITLE = "fer_hf: facial expression recognition"


@contextlib.contextmanager
def app_page(url: str, tmp_path: Path, name: str, *chromium_args, viewport=(1280, 1000)):
    """The app's page at ``url`` in headless Chromium, loaded (title visible), as a Playwright ``Page``.

    On any failure inside the block a full-page screenshot goes to ``tmp_path / f"{name}_failure.png"`` (its
    path printed) before the error propagates; the browser is always closed. ``chromium_args`` are extra
    Chromium switches (e.g. the fake camera's)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p, *chromium_args)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            page.goto(url)
            expect(page.get_by_text(APP_TITLE).first).to_be_visible(timeout=60_000)
            yield page
        except BaseException:
            shot = tmp_path / f"{name}_failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            raise
        finally:
            browser.close()
