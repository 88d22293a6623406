"""Upload limits and safe zip extraction (fer_hf.app.uploads), the Batch tab with zip files (function and real page
in headless Chromium), and model loading without pickle (fer_hf.models.load_fer_model, the classical baseline)."""

import _pickle
import contextlib
import pickle
import stat
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_hf.image_io import IMAGE_EXTENSIONS
from fer_hf.app.uploads import (MB, check_image_upload, extract_zip_safely, gradio_max_file_size,
                                temporary_batch_folder, upload_limits)

from conftest import CKPLUS, SAMPLES, app_page, needs_chromium, running_app

LIMIT_VARIABLES = ("FER_HF_MAX_IMAGE_MB", "FER_HF_MAX_IMAGE_PIXELS", "FER_HF_MAX_BATCH_FILES", "FER_HF_MAX_ZIP_MB",
                   "FER_HF_MAX_ZIP_UNCOMPRESSED_MB", "FER_HF_MAX_ZIP_ENTRIES", "FER_HF_MAX_UPLOAD_MB",
                   "FER_HF_MAX_VIDEO_MB")


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    for variable in LIMIT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


# ------------------------------------------------------------------------------------------------ pickle guard
_UNPICKLED = []  # (module, name) of every global a pickle looked up while a guard was on


def _audit(event, args):
    if event == "pickle.find_class" and _GUARD_ON:
        _UNPICKLED.append(args)
        raise RuntimeError(f"unpickling {args} refused by the test's guard")


_GUARD_ON = False
sys.addaudithook(_audit)  # audit hooks cannot be removed; this one acts only while a test turns it on


@contextlib.contextmanager
def refusing_unpickling():
    """Within the block any unpickling raises: ``pickle.load`` / ``loads`` / ``Unpickler`` are replaced, and
    the ``pickle.find_class`` audit event (raised by the C unpickler too, whoever calls it) is refused.
    Yields the list of (module, name) lookups that were refused."""
    global _GUARD_ON

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was called")

    saved = {name: getattr(pickle, name) for name in ("load", "loads", "Unpickler")}
    for name in saved:
        setattr(pickle, name, refuse)
    _UNPICKLED.clear()
    _GUARD_ON = True
    try:
        yield _UNPICKLED
    finally:
        _GUARD_ON = False
        for name, function in saved.items():
            setattr(pickle, name, function)


def test_the_pickle_guard_catches_unpickling():
    import sklearn.preprocessing

    blob = pickle.dumps(sklearn.preprocessing.StandardScaler())
    with refusing_unpickling() as refused:
        with pytest.raises(AssertionError, match="pickle was called"):
            pickle.loads(blob)
        with pytest.raises(RuntimeError, match="refused by the test's guard"):
            _pickle.loads(blob)  # the C implementation, as used by e.g. torch.load
    assert refused == [("sklearn.preprocessing._data", "StandardScaler")]
    assert type(pickle.loads(blob)).__name__ == "StandardScaler"  # restored


# ------------------------------------------------------------------------------------------------ limits
def test_limits_from_environment_with_defaults(monkeypatch):
    assert upload_limits() == {"max_image_mb": 25, "max_image_pixels": 50e6, "max_batch_files": 500,
                               "max_zip_mb": 200, "max_zip_uncompressed_mb": 1000, "max_zip_entries": 1000}
    assert gradio_max_file_size() == 500 * MB  # the largest per-file limit of any tab: the video's 500 MB
    monkeypatch.setenv("FER_HF_MAX_ZIP_MB", "800")
    assert gradio_max_file_size() == 800 * MB
    monkeypatch.setenv("FER_HF_MAX_UPLOAD_MB", "2.5")
    assert gradio_max_file_size() == 2_500_000
    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "1e6")
    assert upload_limits()["max_image_pixels"] == 1e6
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("FER_HF_MAX_BATCH_FILES", bad)
        with pytest.raises(ValueError, match=f"FER_HF_MAX_BATCH_FILES='{bad}': expected a positive number"):
            upload_limits()


def _png_header_only(path, width, height):
    """A PNG whose header says width x height (8-bit gray) but whose pixel data is cut short: opening it
    reads the size; decoding it would fail."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000)))
                     + chunk(b"IEND", b""))
    return path


def test_check_image_upload_size_and_pixels_from_the_header(tmp_path, monkeypatch):
    assert check_image_upload(SAMPLES / "group.jpeg") == (1280, 853)
    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "1e6")
    with pytest.raises(ValueError, match=r"group\.jpeg is 1280x853 pixels \(1\.1 megapixels\); images up to 1\.0 "
                                         r"megapixels are accepted"):
        check_image_upload(SAMPLES / "group.jpeg")
    monkeypatch.delenv("FER_HF_MAX_IMAGE_PIXELS")
    monkeypatch.setenv("FER_HF_MAX_IMAGE_MB", "0.1")
    with pytest.raises(ValueError, match=r"group\.jpeg is 0\.2 MB; images up to 0\.1 MB are accepted"):
        check_image_upload(SAMPLES / "group.jpeg")
    monkeypatch.delenv("FER_HF_MAX_IMAGE_MB")
    # 60 megapixels in a 1 kB file: refused from the header alone (decoding would fail on the cut data)
    big = _png_header_only(tmp_path / "huge.png", 10_000, 6_000)
    assert big.stat().st_size < 2000
    with pytest.raises(OSError):
        Image.open(big).load()
    with pytest.raises(ValueError, match=r"huge\.png is 10000x6000 pixels \(60\.0 megapixels\); images up to "
                                         r"50\.0 megapixels"):
        check_image_upload(big)
    # past PIL's own decompression-bomb guard (2 x 89.5 megapixels): still our ValueError, naming the file
    with pytest.raises(ValueError, match=r"bomb\.png: Image size \(400000000 pixels\) exceeds limit"):
        check_image_upload(_png_header_only(tmp_path / "bomb.png", 20_000, 20_000))


def test_image_tab_refuses_too_many_pixels(monkeypatch):
    from fer_hf.app.handlers import analyze_image

    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "1e6")
    photo = Image.open(SAMPLES / "surprised.jpeg")  # what Gradio passes: a PIL image
    with pytest.raises(ValueError, match=r"The image is 1280x853 pixels \(1\.1 megapixels\); images up to 1\.0 "
                                         r"megapixels are accepted\. Downscale it first\."):
        analyze_image(photo)
    with pytest.raises(ValueError, match="1280x853"):
        analyze_image(np.asarray(photo))
    with pytest.raises(ValueError, match=r"surprised\.jpeg is 1280x853"):
        analyze_image(SAMPLES / "surprised.jpeg")


# ------------------------------------------------------------------------------------------------ zip files
def _entry(name, mode=stat.S_IFREG | 0o644):
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _files_under(folder):
    return sorted(p for p in Path(folder).rglob("*") if not p.is_dir())


def test_zip_traversal_absolute_symlink_and_junk_entries_are_skipped(tmp_path):
    photo = (SAMPLES / "happy-baby.jpeg").read_bytes()
    zip_path = tmp_path / "upload" / "mixed.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(_entry("photos/happy-baby.jpeg"), photo)
        archive.writestr(_entry("../evil.jpg"), photo)
        archive.writestr(_entry("photos/../../evil2.jpg"), photo)
        archive.writestr(_entry("/tmp/abs.jpg"), photo)
        archive.writestr(_entry("..\\win.jpg"), photo)
        archive.writestr(_entry("link.jpg", stat.S_IFLNK | 0o777), str(tmp_path / "target.jpg"))
        archive.writestr(_entry("fifo.jpg", stat.S_IFIFO | 0o644), b"")
        archive.writestr(_entry("notes.txt"), b"hello")
        archive.writestr(_entry("__MACOSX/photos/._happy-baby.jpeg"), b"\x00\x05\x16\x07")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(_entry("photos/happy-baby.jpeg"), b"second copy")
        archive.writestr(_entry("empty/", stat.S_IFDIR | 0o755), b"")
    with zipfile.ZipFile(zip_path) as archive:  # the names are stored as written, not sanitised by zipfile
        assert {"../evil.jpg", "/tmp/abs.jpg", "..\\win.jpg"} <= set(archive.namelist())
    dest = tmp_path / "dest"
    dest.mkdir()
    extracted = extract_zip_safely(zip_path, dest)
    assert extracted == [dest / "photos" / "happy-baby.jpeg"]
    assert extracted[0].read_bytes() == photo and extracted.bytes_written == len(photo)
    reasons = dict(extracted.skipped)
    assert reasons == {"../evil.jpg": "'..' in the path", "photos/../../evil2.jpg": "'..' in the path",
                       "/tmp/abs.jpg": "absolute path", "..\\win.jpg": "'..' in the path",
                       "link.jpg": "symbolic link", "fifo.jpg": "not a regular file",
                       "notes.txt": f"not an image ({'/'.join(IMAGE_EXTENSIONS)})",
                       "__MACOSX/photos/._happy-baby.jpeg": "macOS metadata", "photos/happy-baby.jpeg": "duplicate name"}
    # nothing outside the destination, no link anywhere
    assert _files_under(tmp_path) == sorted([zip_path, dest / "photos" / "happy-baby.jpeg"])
    assert not Path("/tmp/abs.jpg").exists() and not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_zip_with_too_many_entries_is_refused_before_extraction(tmp_path):
    zip_path = tmp_path / "many.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for i in range(5000):
            archive.writestr(f"img{i:04d}.jpg", b"x")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ValueError, match="many.zip lists 5000 entries; zip files with up to 1000 entries are accepted"):
        extract_zip_safely(zip_path, dest)
    assert _files_under(dest) == []


def test_zip_over_its_file_size_or_the_batch_file_count_is_refused(tmp_path, monkeypatch):
    zip_path = tmp_path / "photos.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in ("happy-baby.jpeg", "surprised.jpeg", "sad-baby.jpeg"):
            archive.write(SAMPLES / name, name)
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.setenv("FER_HF_MAX_BATCH_FILES", "2")
    with pytest.raises(ValueError, match=r"photos\.zip holds 3 images; a batch takes up to 2 files"):
        extract_zip_safely(zip_path, dest)
    monkeypatch.setenv("FER_HF_MAX_ZIP_MB", "0.2")
    with pytest.raises(ValueError, match=r"photos\.zip is 0\.\d MB; zip files up to 0\.2 MB are accepted"):
        extract_zip_safely(zip_path, dest)
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="fake.zip is not a readable zip file"):
        extract_zip_safely(tmp_path / "fake.zip", dest)
    assert _files_under(dest) == []


def test_zip_bomb_is_never_extracted(tmp_path, monkeypatch):
    """1 GiB of zeros compressed to a few MB: refused from the central directory, nothing written."""
    zip_path = tmp_path / "bomb.zip"
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.write(SAMPLES / "happy-baby.jpeg", "happy-baby.jpeg")
        with archive.open("bomb.jpg", "w", force_zip64=True) as entry:
            for _ in range(1024):
                entry.write(chunk)
    assert zip_path.stat().st_size < 10 * MB
    dest = tmp_path / "dest"
    dest.mkdir()
    extracted = extract_zip_safely(zip_path, dest)  # the bomb is larger than one image may be: skipped unread
    assert [p.name for p in extracted] == ["happy-baby.jpeg"]
    assert extracted.skipped == [("bomb.jpg", "1073.7 MB uncompressed; images up to 25 MB are accepted")]
    assert _files_under(dest) == [dest / "happy-baby.jpeg"]
    monkeypatch.setenv("FER_HF_MAX_IMAGE_MB", "2000")  # even where one image may be that large:
    dest2 = tmp_path / "dest2"
    dest2.mkdir()
    with pytest.raises(ValueError, match=r"bomb\.zip would extract to 1073\.9 MB of images; 1000 MB are allowed "
                                         r"\(FER_HF_MAX_ZIP_UNCOMPRESSED_MB = 1000 MB per batch\)"):
        extract_zip_safely(zip_path, dest2)
    assert _files_under(dest2) == []


def _patch_declared_size(zip_path, name, size):
    """Make the local header and the central directory of entry ``name`` declare ``size`` uncompressed bytes."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(name)
        start_dir = archive.start_dir
    data = bytearray(zip_path.read_bytes())
    assert data[info.header_offset:info.header_offset + 4] == b"PK\x03\x04"
    data[info.header_offset + 22:info.header_offset + 26] = struct.pack("<I", size)
    offset = start_dir
    while data[offset:offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[offset + 28:offset + 34])
        if data[offset + 46:offset + 46 + name_len].decode() == name:
            data[offset + 24:offset + 28] = struct.pack("<I", size)
        offset += 46 + name_len + extra_len + comment_len
    zip_path.write_bytes(bytes(data))


def test_zip_entry_whose_header_lies_about_its_size_is_cut_off(tmp_path):
    """An entry declaring 1,000 bytes that inflates to 50 MB: at most the declared bytes are read, the entry is
    reported as corrupt and removed, the other entries are extracted."""
    zip_path = tmp_path / "liar.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("liar.jpg", bytes(50 * MB))
        archive.write(SAMPLES / "surprised.jpeg", "surprised.jpeg")
    _patch_declared_size(zip_path, "liar.jpg", 1000)
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.getinfo("liar.jpg").file_size == 1000
    dest = tmp_path / "dest"
    dest.mkdir()
    extracted = extract_zip_safely(zip_path, dest)
    assert extracted == [dest / "surprised.jpeg"]
    (entry, reason), = extracted.skipped
    assert entry == "liar.jpg" and reason.startswith("corrupt entry")
    assert _files_under(dest) == [dest / "surprised.jpeg"]
    assert extracted.bytes_written <= 1000 + (SAMPLES / "surprised.jpeg").stat().st_size


def test_temporary_batch_folder_is_always_removed(tmp_path):
    with temporary_batch_folder(dir=tmp_path) as folder:
        (folder / "a.jpg").write_bytes(b"x")
        assert folder.is_dir() and folder.parent == tmp_path
    assert not folder.exists()
    with pytest.raises(RuntimeError, match="boom"):
        with temporary_batch_folder(dir=tmp_path) as folder:
            (folder / "sub").mkdir()
            (folder / "sub" / "b.jpg").write_bytes(b"y")
            raise RuntimeError("boom")
    assert not folder.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ Batch tab
def _photo_zip(path, names=("happy-baby.jpeg", "surprised.jpeg"), corrupt=True, extra=()):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.write(SAMPLES / name, f"photos/{name}")
        if corrupt:
            archive.writestr("photos/corrupt.jpg", (SAMPLES / "neutral.jpeg").read_bytes()[:200])  # truncated JPEG
        for name, data in extra:
            archive.writestr(name, data)
    return path


def test_batch_with_a_zip_of_photos(tmp_path, monkeypatch):
    """Real photos in a zip plus a corrupt one, an over-limit one and a traversal entry, next to a plain image:
    one error row per bad image, a skipped row for the unsafe entry, faces for the others; the extraction
    folder is gone afterwards, the outputs are elsewhere."""
    import tempfile

    from fer_hf.app.handlers import analyze_batch

    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "3e6")  # image-2-women-on-phones.jpg is 3458x2282
    zip_path = _photo_zip(tmp_path / "photos.zip", names=("happy-baby.jpeg", "surprised.jpeg",
                                                          "image-2-women-on-phones.jpg"),
                          extra=[("../evil.jpg", b"x")])
    work_tmp = tmp_path / "tmp"
    work_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work_tmp))
    seen_during = []

    def progress(fraction, desc=None):
        seen_during.append(sorted(p.name[:11] for p in work_tmp.iterdir()))

    gallery, csv_path, table, summary = analyze_batch([str(SAMPLES / "sad-baby.jpeg"), str(zip_path)],
                                                      output_dir=tmp_path / "out", progress=progress)
    rows = {}
    for row in table.to_dict("records"):
        rows.setdefault(row["file"], []).append(row)
    assert set(rows) == {"sad-baby.jpeg", "photos.zip/photos/happy-baby.jpeg", "photos.zip/photos/surprised.jpeg",
                         "photos.zip/photos/image-2-women-on-phones.jpg", "photos.zip/photos/corrupt.jpg",
                         "photos.zip/../evil.jpg"}
    assert rows["photos.zip/photos/happy-baby.jpeg"][0]["top_emotion"] == "happy"
    assert all(r["status"] == "ok" for name in ("sad-baby.jpeg", "photos.zip/photos/happy-baby.jpeg",
                                                "photos.zip/photos/surprised.jpeg") for r in rows[name])
    (corrupt,) = rows["photos.zip/photos/corrupt.jpg"]
    assert corrupt["status"].startswith("error: ")
    (big,) = rows["photos.zip/photos/image-2-women-on-phones.jpg"]
    assert big["status"] == ("error: ValueError: image-2-women-on-phones.jpg is 3458x2282 pixels (7.9 megapixels); "
                             "images up to 3.0 megapixels are accepted. Downscale it first.")
    assert rows["photos.zip/../evil.jpg"][0]["status"] == "skipped: '..' in the path"
    assert summary == ("5 file(s): 3 face(s), 2 unreadable or refused file(s). 1 zip file(s) extracted, "
                       "1 entry skipped.")
    assert len(gallery) == 3 and all(Path(p).parent == tmp_path / "out" for p, _ in gallery)
    assert Path(csv_path).parent == tmp_path / "out"
    assert ["fer_hf_zip_"] == seen_during[0]  # extracted in a temporary folder while the batch ran ...
    assert [p.name for p in work_tmp.iterdir()] == []  # ... removed afterwards
    assert not (tmp_path / "evil.jpg").exists() and not (work_tmp / "evil.jpg").exists()


def test_batch_file_count_and_bad_zips(tmp_path, monkeypatch):
    import tempfile

    from fer_hf.app.handlers import analyze_batch

    work_tmp = tmp_path / "tmp"
    work_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work_tmp))
    zip_path = _photo_zip(tmp_path / "photos.zip", corrupt=False)
    monkeypatch.setenv("FER_HF_MAX_BATCH_FILES", "3")
    with pytest.raises(ValueError, match=r"4 images \(2 of them from zip files\); a batch takes up to 3 files"):
        analyze_batch([str(SAMPLES / "sad-baby.jpeg"), str(SAMPLES / "angry.jpg"), str(zip_path)])
    with pytest.raises(ValueError, match="4 files were uploaded; a batch takes up to 3 files"):
        analyze_batch([str(SAMPLES / "sad-baby.jpeg")] * 4)
    assert list(work_tmp.iterdir()) == []  # the extraction folder went with the error
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(1001):
            archive.writestr(f"x{i}.jpg", b"x")
    _, _, table, summary = analyze_batch([str(many), str(SAMPLES / "happy-baby.jpeg")],
                                         output_dir=tmp_path / "out")
    refused = "error: ValueError: many.zip lists 1001 entries; zip files with up to 1000 entries are accepted."
    assert table["status"].tolist() == [refused, "ok"]
    assert summary.startswith("1 file(s): 1 face(s), 1 unreadable or refused")
    assert [p.name for p in work_tmp.iterdir()] == []


# ------------------------------------------------------------------------------------------------ model loading
@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pth"])
def test_pickle_weights_are_refused_and_never_unpickled(tmp_path, weights):
    """A fer_vgg folder whose only weights are a pickle that would create a file when unpickled: refused with
    the explanation by the loader, the Python API and the app's model box; never unpickled."""
    import shutil

    from fer_hf import FaceExpressionRecognizer
    from fer_hf.app.handlers import get_recognizer
    from fer_hf.models import load_fer_model
    from fer_hf.models.hub import DEFAULT_MODEL_DIR

    folder = tmp_path / "pickled_model"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):  # a genuine fer_vgg config
        shutil.copy(DEFAULT_MODEL_DIR / name, folder / name)
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    payload = pickle.dumps(Payload())
    (folder / weights).write_bytes(payload)
    message = (r"has no model.safetensors, only " + weights.replace(".", r"\.") + r"\. fer_hf loads weights from "
               r"safetensors only; a \.bin/\.pth file is a pickle that can run code when loaded\. Convert it")
    with refusing_unpickling() as refused:
        with pytest.raises(OSError, match=message):
            load_fer_model(folder)
        with pytest.raises(OSError, match=message):  # the Python API, trust_remote_code left off
            FaceExpressionRecognizer.from_pretrained(folder)
        with pytest.raises(OSError, match=message):  # what the app's model box calls with the typed text
            get_recognizer(str(folder))
    assert not marker.exists() and refused == []
    pickle.loads(payload).close()  # the payload is live: unpickling it does create the file
    assert marker.exists()


def test_classical_baseline_loads_without_pickle(tmp_path):
    """A classical model (LBP + Gabor, SVM) fitted on ~120 CK+ faces, saved, then loaded and run while any
    unpickling raises: same probabilities as the fitted model."""
    from fer_hf.training.classical import ClassicalFERPipeline, _labels
    from fer_hf.data import load_ckplus

    data = load_ckplus(CKPLUS)["train"]
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    subset = data.select(range(0, len(data), 8))  # ~120 faces, every class
    model = ClassicalFERPipeline(label_names=names)
    features = model.extract_features(subset["image"])
    model.fit_features(features, _labels(subset, names), groups=np.asarray(subset["subject"][:]))
    folder = model.save_pretrained(tmp_path / "classical")
    images = subset.select(range(10))["image"]
    expected = model.predict_proba_features(features[:10])
    with refusing_unpickling() as refused:
        loaded = ClassicalFERPipeline.from_pretrained(folder)
        probabilities = loaded.predict_proba(images)
    assert refused == []
    np.testing.assert_allclose(probabilities, expected, atol=1e-12)
    assert loaded.label_names == names


# ------------------------------------------------------------------------------------------------ the real page
@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """app.py with Gradio's upload limit at 1 MB and its own temporary folder, to see what the batch leaves behind."""
    tmp = tmp_path_factory.mktemp("server_tmp")
    with running_app(tmp_path_factory.mktemp("server"), FER_HF_MAX_UPLOAD_MB="1", TMPDIR=str(tmp),
                     GRADIO_TEMP_DIR=str(tmp / "gradio")) as url:
        yield url, tmp


@pytest.mark.slow
def test_gradio_refuses_uploads_over_its_limit(limited_server, tmp_path):
    import httpx

    url, _ = limited_server
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(1_500_000))
    response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.jpg", big.read_bytes())}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size of 1000000 bytes" in response.text
    small = httpx.post(f"{url}gradio_api/upload", files={"files": ("a.jpg", (SAMPLES / "surprised.jpeg").read_bytes())},
                       timeout=60)
    assert small.status_code == 200


@pytest.mark.slow
@needs_chromium
def test_zip_in_the_batch_tab_in_headless_chromium(limited_server, tmp_path):
    from playwright.sync_api import expect

    url, server_tmp = limited_server
    zip_path = _photo_zip(tmp_path / "photos.zip")
    with app_page(url, tmp_path, "batch", viewport=(1280, 1200)) as page:
        page.get_by_role("tab", name="Batch").click()
        expect(page.get_by_text("zip files up to 200 MB, 1000 entries")).to_be_visible(timeout=30_000)
        page.locator("#batch-files input[type=file]").set_input_files(str(zip_path))
        expect(page.locator("#batch-files").get_by_text("photos.zip")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Process all").click()
        summary = page.locator("#batch-summary")
        expect(summary).to_contain_text("3 file(s): 2 face(s), 1 unreadable or refused file(s). 1 zip file(s) "
                                        "extracted, 0 entries skipped.", timeout=180_000)
        table = page.locator("#batch-table")
        expect(table).to_contain_text("photos.zip/photos/happy-baby.jpeg", timeout=30_000)
        text = table.inner_text()
        assert "photos.zip/photos/surprised.jpeg" in text and "photos.zip/photos/corrupt.jpg" in text
        assert "happy" in text and "error: " in text and "ok" in text
    assert list(server_tmp.glob("fer_hf_zip_*")) == []  # the extraction folder is gone
    assert list(server_tmp.glob("fer_hf_batch_*"))  # the outputs stay (Gradio serves them)
