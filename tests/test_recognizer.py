import json

import numpy as np
import pytest
from PIL import Image

from fer_hf import FER2013_LABELS, FaceExpressionRecognizer

from conftest import SAMPLES


def check_schema(face, image_size):
    assert set(face) == {"box", "score", "emotions", "top_emotion", "top_score"}
    x, y, w, h = face["box"]
    assert all(isinstance(v, int) for v in face["box"]) and w > 0 and h > 0
    assert 0 <= x and 0 <= y and x + w <= image_size[0] and y + h <= image_size[1]
    assert isinstance(face["score"], float) and 0 <= face["score"] <= 1
    assert list(face["emotions"]) == FER2013_LABELS
    assert abs(sum(face["emotions"].values()) - 1) < 1e-3
    assert face["top_emotion"] == max(face["emotions"], key=face["emotions"].get)
    assert face["top_score"] == face["emotions"][face["top_emotion"]]
    json.dumps(face)  # plain JSON types


def test_group_photo_has_at_least_four_faces(default_recognizer):
    image = Image.open(SAMPLES / "group.jpeg")
    faces = default_recognizer.predict(SAMPLES / "group.jpeg")
    assert len(faces) >= 4
    for face in faces:
        check_schema(face, image.size)
    xs = [f["box"][0] for f in faces]
    assert xs == sorted(xs)
    annotated = default_recognizer.annotate(image, faces)
    assert annotated.size == image.size and annotated.mode == "RGB"
    assert not np.array_equal(np.asarray(annotated), np.asarray(image.convert("RGB")))


def test_blank_image_gives_empty_list(default_recognizer):
    assert default_recognizer.predict(Image.new("RGB", (640, 480), (200, 200, 200))) == []
    assert default_recognizer.predict(np.zeros((120, 160), dtype=np.uint8)) == []
    annotated = default_recognizer.annotate(Image.new("L", (64, 64)), [])
    assert annotated.size == (64, 64)


# Expressions as described in ../shared/data/README.md. surprised.jpeg (a man in a Santa costume): the first
# release said fear (0.31) over surprise (0.23), the distilled FER2013 model says surprise (0.43) over fear (0.26).
SAMPLE_EXPRESSIONS = [("happy-baby.jpeg", "happy"), ("image-2-women-on-phones.jpg", "happy"), ("angry.jpg", "angry"),
                      ("sad-baby.jpeg", "sad"), ("neutral.jpeg", "neutral"), ("surprised.jpeg", "surprise")]


@pytest.mark.parametrize("name, expected", SAMPLE_EXPRESSIONS)
def test_clear_expressions_in_real_photos(fer2013_recognizer, name, expected):
    """The FER2013 release through the whole recognizer reads each sample photo's expression."""
    faces = fer2013_recognizer.predict(SAMPLES / name)
    assert faces, name
    assert all(f["top_emotion"] == expected for f in faces), [(f["top_emotion"], f["top_score"]) for f in faces]



def test_inputs_path_pil_numpy_and_modes_agree(default_recognizer):
    path = SAMPLES / "happy-baby.jpeg"
    image = Image.open(path)
    reference = default_recognizer.predict(path)
    assert default_recognizer.predict(image) == reference
    assert default_recognizer.predict(np.asarray(image.convert("RGB"))) == reference
    rgba = default_recognizer.predict(image.convert("RGBA"))
    assert [f["box"] for f in rgba] == [f["box"] for f in reference]
    gray = default_recognizer.predict(image.convert("L"))
    assert len(gray) == len(reference) and gray[0]["top_emotion"] == reference[0]["top_emotion"] == "happy"


def test_exif_rotated_photo_gives_boxes_in_displayed_orientation(default_recognizer, tmp_path):
    image = Image.open(SAMPLES / "happy-baby.jpeg").convert("RGB")
    stored = image.transpose(Image.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the tag that says "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    faces = default_recognizer.predict(path)
    upright = default_recognizer.predict(image)
    assert len(faces) == len(upright) == 1
    assert np.abs(np.subtract(faces[0]["box"], upright[0]["box"])).max() <= 8
    assert faces[0]["top_emotion"] == upright[0]["top_emotion"]


def test_haar_detector_and_min_face_size(tmp_path):
    recognizer = FaceExpressionRecognizer.from_pretrained(detector="haar", min_face_size=40)
    faces = recognizer.predict(SAMPLES / "group.jpeg")
    assert len(faces) >= 3
    for face in faces:
        check_schema(face, Image.open(SAMPLES / "group.jpeg").size)
    recognizer.set_options(min_face_size=400)
    assert recognizer.predict(SAMPLES / "group.jpeg") == []
    with pytest.raises(ValueError, match="Unknown detector"):
        recognizer.set_options(detector="yolo")


def test_bad_inputs(default_recognizer, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(Exception, match="cannot identify image file"):
        default_recognizer.predict(bad)
    with pytest.raises(FileNotFoundError):
        default_recognizer.predict(tmp_path / "missing.jpg")
    with pytest.raises(OSError):
        FaceExpressionRecognizer.from_pretrained(str(tmp_path / "no-such-model"))


def test_a_folder_with_custom_code_is_refused_without_running_it(tmp_path):
    """A model folder that is not a fer_hf model type, shipping code that would write a file when
    imported, is refused with a clear error, and its code never runs (the app passes typed names here)."""
    import json
    import shutil

    from fer_hf import FaceExpressionRecognizer
    from fer_hf.models.hub import MODEL_CARDS_DIR

    from conftest import FER2013_MODEL

    folder = tmp_path / "evil"
    shutil.copytree(MODEL_CARDS_DIR / FER2013_MODEL, folder)  # a fer_vgg folder: its code files are named so
    marker = tmp_path / "code_ran"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("configuration_fer_vgg.py", "modeling_fer_vgg.py"):
        (folder / name).write_text(payload + (folder / name).read_text())
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil_model"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a fer_hf model"):
        FaceExpressionRecognizer.from_pretrained(str(folder))
    assert not marker.exists()
