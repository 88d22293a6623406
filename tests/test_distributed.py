"""The Ray Data runner (``fer-hf predict --engine ray``, `fer_hf.distributed.annotate`) on a real local Ray
cluster (loopback, 2 CPUs), and the ``datasets.Dataset.map`` function: each must give the single-process
``fer-hf predict`` rows for the same real photos, a corrupt file and the sample video."""

import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, SAMPLES
from test_predict import _assert_same_rows, _env, _predict, _read, _small

# Ray's token authentication with a token of this test session's own (nothing read from or written to
# ~/.ray); set before Ray is imported, since Ray reads its auth mode then; the CLI gets it in its environment
RAY_TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
os.environ.update(RAY_TOKEN)
ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
PHOTOS = ("angry.jpg", "group.jpeg", "sad-baby.jpeg")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Real photos (downscaled), a truncated JPEG, and the sample video; sampled at 1 frame/s, cut in 3 s
    segments, the video spans three segments."""
    root = tmp_path_factory.mktemp("inputs")
    for name in PHOTOS:
        _small(name, 480).save(root / name)
    buffer = io.BytesIO()
    _small("neutral.jpeg").save(buffer, "JPEG")
    (root / "corrupt.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    shutil.copy(SAMPLES / "cc0_faces_slideshow.mp4", root / "slideshow.mp4")
    return root


OPTIONS = ["--sample-fps", "1", "--batch-size", "2"]


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory, default_recognizer):
    """The single-process run (the reference)."""
    out = tmp_path_factory.mktemp("single") / "rows.csv"
    _predict([inputs, "--output", out, *OPTIONS], recognizer=default_recognizer)
    return _read(out)


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` on this machine (2 CPUs, its own temporary folder; the dashboard serves Ray's state
    API), joined by this process; stopped afterwards, and no Ray process may be left."""
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = dict(_env(), **RAY_TOKEN)
    started = subprocess.run([RAY, "start", "--head", "--port=0", "--num-cpus=2", "--node-ip-address=127.0.0.1",
                              "--include-dashboard=true", "--dashboard-host=127.0.0.1", "--dashboard-port=0",
                              "--disable-usage-stats", f"--temp-dir={temp}",
                              "--object-store-memory=300000000"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        address = Path(temp, "ray_current_cluster").read_text().strip()
        # "auto" + the cluster's folder: this process finds the address there
        ray.init(address="auto", _temp_dir=temp, log_to_driver=False)
        yield address, env
    finally:
        ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline and _ray_processes(temp):
            time.sleep(0.5)
        left = _ray_processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def _ray_processes(temp):
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    running = [line for line in listing if "<defunct>" not in line]  # zombies wait for init to reap them
    return [line for line in running if temp in line or "ray::" in line or "raylet" in line or "gcs_server" in line]


def test_cli_on_a_cluster_equals_single_process(inputs, single, cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "rows.parquet"
    done = subprocess.run([sys.executable, "-m", "fer_hf", "predict", str(inputs), "--engine", "ray", "--address", address,
                           "--num-workers", "2", "--segment-seconds", "3", "--output", str(out), *OPTIONS],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Ray workers: 2" in done.stdout and "errors (unreadable files): 1" in done.stdout
    from fer_hf.inference.results import read_rows

    rows = read_rows(out)
    header = list(rows[0])
    assert header == single[0]
    ray_rows = (header, [["" if r[k] is None else str(r[k]) for k in header] for r in rows])
    # parquet holds numbers where CSV holds their text: compare through the same reader
    csv_out = tmp_path / "rows.csv"
    from fer_hf.inference.results import write_rows

    write_rows(rows, header, csv_out)
    # Segments put video frames into other batches than the single pass does, and oneDNN picks kernels by
    # batch size: on an AVX-512 machine probabilities then differ by up to a few 1e-4 (boxes and labels do
    # not), so scores are compared to 1e-3 here, not to the CSV's last digit.
    _assert_same_rows(_read(csv_out), single, atol=1e-3)
    assert len(ray_rows[1]) == len(single[1])
    video = [r for r in rows if r["file"].endswith("slideshow.mp4")]
    assert len({r["frame_index"] for r in video}) == 8  # 8 s at 1 frame/s, over three segments
    assert any(r["track_id"] == 2 for r in video), "tracks continue across segments as in one pass"
    corrupt = [r for r in rows if r["file"].endswith("corrupt.jpg")]
    assert len(corrupt) == 1 and corrupt[0]["status"].startswith("error:")


def test_python_api_annotates_a_ray_dataset(cluster, default_recognizer):
    from fer_hf.distributed import annotate
    from fer_hf.inference.results import face_rows

    items = []
    for name in PHOTOS:
        buffer = io.BytesIO()
        _small(name, 480).save(buffer, "JPEG", quality=95)
        items.append({"name": name, "image": buffer.getvalue()})
    items.append({"name": "broken", "image": b"not an image"})
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    rows = annotate(ray.data.from_items(items), image_column="image", batch_size=2, num_workers=2).take_all()
    expected = []
    for item in items:
        try:
            result = default_recognizer.predict_batch([io.BytesIO(item["image"])]).__next__()[1]
        except StopIteration:  # pragma: no cover
            result = []
        expected.extend(dict(row, name=item["name"]) for row in face_rows(item["name"], result))
    assert [r["name"] for r in rows] == [r["name"] for r in expected]
    for got, want in zip(rows, expected):
        assert "image" not in got and got["status"].split(":")[0] == want["status"].split(":")[0]
        if want["status"] == "ok":
            assert [got[k] for k in ("face_index", "box_x", "box_y", "box_w", "box_h", "top_emotion")] == \
                   [want[k] for k in ("face_index", "box_x", "box_y", "box_w", "box_h", "top_emotion")]
            # batches of 2 against batches of 1: kernel choice by batch size moves the last digits (see above)
            assert all(abs(got[label] - want[label]) <= 1e-3 for label in default_recognizer.labels)
    assert sum(r["status"] == "ok" for r in rows) >= 5  # the group photo holds several faces


def test_a_worker_killed_mid_run_loses_and_repeats_nothing(inputs, single, cluster, tmp_path):
    """SIGKILL one recognizer actor (pid from Ray's state API) while units are in flight: Ray restarts it and
    runs its unit again; the table still has every row exactly once."""
    from ray.util.state import list_actors

    from fer_hf.distributed import predict_files
    from fer_hf.inference.results import read_rows

    many = tmp_path / "many"
    many.mkdir()
    copies = 80  # 240 one-image units: a few seconds of work for each actor once both have loaded the model
    for copy in range(copies):
        for name in PHOTOS:
            _small(name, 480).save(many / f"{copy}-{name}")
    out = tmp_path / "rows.jsonl"
    outcome = {}

    def run():
        try:
            outcome["summary"] = predict_files([str(many)], out, batch_size=1, num_workers=2, quiet=True)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.time() + 600
    while time.time() < deadline and thread.is_alive() and killed is None:
        alive = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "FaceWorker" in a.class_name]
        if len(alive) == 2:
            time.sleep(1)  # both loaded (ALIVE follows the constructor) and working on their first units
            if thread.is_alive():
                killed, killed_id = alive[0].pid, alive[0].actor_id
                os.kill(killed, signal.SIGKILL)
        else:
            time.sleep(0.5)
    thread.join(900)
    assert killed is not None, "the run ended before a worker could be killed"
    assert "error" not in outcome, outcome.get("error")
    actor = list_actors(filters=[("actor_id", "=", killed_id)], detail=True)[0]
    assert actor.num_restarts >= 1, actor
    rows = read_rows(out)
    keys = [(r["file"], r["face_index"]) for r in rows]
    assert len(keys) == len(set(keys)), "a row came back twice"
    names = sorted({Path(r["file"]).name for r in rows})
    assert names == sorted(f"{c}-{n}" for c in range(copies) for n in PHOTOS)
    faces_per_photo = {}
    for row in single[1]:
        faces_per_photo[Path(row[0]).name] = faces_per_photo.get(Path(row[0]).name, 0) + 1
    for name in PHOTOS:
        for copy in range(copies):
            assert sum(Path(r["file"]).name == f"{copy}-{name}" for r in rows) == faces_per_photo[name]
    assert outcome["summary"]["files"] == 3 * copies


def test_datasets_map_two_processes_equal_one(tmp_path, default_recognizer):
    """``Dataset.map(recognizer.as_map_function(), batched=True, num_proc=2)`` over an image folder equals one
    process and `predict`; with undecoded images (paths), a broken file is one error status, the rest go on."""
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS + ("happy-baby.jpeg",):
        _small(name, 480).save(folder / name)
    function = default_recognizer.as_map_function(image_column="image", batch_size=4)
    dataset = load_dataset("imagefolder", data_dir=str(folder), split="train")
    one = dataset.map(function, batched=True, batch_size=2, load_from_cache_file=False)
    two = dataset.map(function, batched=True, batch_size=2, num_proc=2, load_from_cache_file=False)
    assert one["faces_status"] == two["faces_status"] == ["ok"] * 4
    for faces_one, faces_two, image in zip(one["faces"], two["faces"], dataset["image"]):
        direct = default_recognizer.predict(image)
        assert [f["box"] for f in faces_one] == [f["box"] for f in faces_two] == [f["box"] for f in direct]
        for a, b in zip(faces_one, faces_two):
            assert a["top_emotion"] == b["top_emotion"]
            assert all(abs(a["emotions"][k] - b["emotions"][k]) <= 1e-5 for k in a["emotions"])

    (folder / "zzz-broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    paths = load_dataset("imagefolder", data_dir=str(folder), split="train").cast_column("image",
                                                                                         ImageFeature(decode=False))
    mapped = paths.map(function, batched=True, batch_size=2, num_proc=2, load_from_cache_file=False)
    assert mapped["faces_status"][:4] == ["ok"] * 4 and mapped["faces_status"][4].startswith("error:")
    assert mapped["faces"][4] == [] and [len(f) for f in mapped["faces"][:4]] == [len(f) for f in one["faces"]]
